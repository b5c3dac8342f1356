"""Model families and their exact sizes. A leaf package: imports nothing else of ours."""

from . import resnet  # noqa: F401  (registers the family)
from .budget import Sizing, check_budget, judge
from .count import count_flops, count_params
from .errors import ConfigError
from .registry import create_model, list_models, register_model, resolve_model_config

__all__ = [
    "ConfigError",
    "Sizing",
    "check_budget",
    "count_flops",
    "count_params",
    "create_model",
    "judge",
    "list_models",
    "register_model",
    "resolve_model_config",
]
