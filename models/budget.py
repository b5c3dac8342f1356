"""The one feasibility check: does this model config build, and does it fit the budget?

The trainer (before training), both sweepers (before launching) and analysis' combine step
(before proposing a config) all call `check_budget`, so "over budget" and "invalid" mean the
same thing everywhere. Only the family's own `ConfigError` makes a config invalid: any other
exception is a bug in the family and propagates, instead of being told to a sampler as an
infeasible region.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .count import count_flops, count_params
from .errors import ConfigError
from .registry import resolve_model_config

FITS, OVER_BUDGET, INVALID = "fits", "over_budget", "invalid"


@dataclass(frozen=True)
class Sizing:
    """The verdict on one model config. `params`/`flops` are None when it cannot be built."""

    status: str  # FITS | OVER_BUDGET | INVALID
    params: int | None
    flops: int | None
    error: str | None  # one line: why it is over budget or invalid

    @property
    def fits(self) -> bool:
        return self.status == FITS


def check_budget(model_cfg: Any, max_params: int | None = None, max_flops: int | None = None) -> Sizing:
    """Size `model_cfg` (a `model` node, dict or family dataclass) without allocating weights
    and hold it to the budget; a limit of None is no limit.

    Example:
        >>> check_budget({"name": "resnet", "N": 3, "B": 3, "C": 68, "P": 7, "stem_kernel": 2},
        ...              max_params=5_000_000).params
        4883906
        >>> check_budget({"name": "resnet", "N": 4, "P": 9}).status
        'invalid'
    """
    try:
        spec = resolve_model_config(model_cfg)
    except ConfigError as e:
        return Sizing(INVALID, None, None, str(e))
    return judge(count_params(spec), count_flops(spec), max_params, max_flops)


def judge(params: int, flops: int | None = None, max_params: int | None = None, max_flops: int | None = None) -> Sizing:
    """The verdict on a model already sized (any model, not only a registry family's): the
    same words as `check_budget`, so every sizer says "over budget" the same way.

    Example:
        >>> judge(12_000, max_params=10_000).error
        '12,000 parameters > budget.max_params=10,000'
    """
    if max_params is not None and params > max_params:
        return Sizing(OVER_BUDGET, params, flops, f"{params:,} parameters > budget.max_params={max_params:,}")
    if max_flops is not None and flops is not None and flops > max_flops:
        return Sizing(OVER_BUDGET, params, flops, f"{flops:,} FLOPs > budget.max_flops={max_flops:,}")
    return Sizing(FITS, params, flops, None)
