"""Model families by name: a family is a config dataclass plus a builder.

Adding a family is one file: define `FooConfig` (a dataclass with a `check()` that raises
`ConfigError` naming the key) and `@register_model("foo", FooConfig)` on its builder, then
import that module in `models/__init__.py`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Mapping, Protocol, cast

from .errors import ConfigError


class FamilyConfig(Protocol):
    """What the registry asks of a family's config dataclass."""

    def check(self) -> None: ...


_FAMILIES: dict[str, tuple[type, Callable[[Any], Any]]] = {}


def register_model(name: str, config_cls: type) -> Callable:
    def wrap(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if name in _FAMILIES:
            warnings.warn(f"model family {name!r} registered twice; the later one wins", stacklevel=2)
        _FAMILIES[name] = (config_cls, build)
        return build

    return wrap


def list_models() -> list[str]:
    return sorted(_FAMILIES)


def _as_dict(model_cfg: Mapping | Any) -> dict:
    if dataclasses.is_dataclass(model_cfg) and not isinstance(model_cfg, type):
        return dataclasses.asdict(model_cfg)
    try:  # an OmegaConf node: resolve interpolations, plain containers out
        from omegaconf import DictConfig, OmegaConf

        if isinstance(model_cfg, DictConfig):
            return OmegaConf.to_container(model_cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(model_cfg, Mapping):
        return dict(model_cfg)
    raise ConfigError(f"model: a mapping of settings expected, not {type(model_cfg).__name__}")


def resolve_model_config(model_cfg: Mapping | Any):
    """The family's config dataclass for a `model` node, checked; raises ConfigError."""
    if dataclasses.is_dataclass(model_cfg) and not isinstance(model_cfg, type):
        cast(FamilyConfig, model_cfg).check()
        return model_cfg
    values = _as_dict(model_cfg)
    name = values.pop("name", None)
    if name not in _FAMILIES:
        raise ConfigError(f"model.name: unknown family {name!r} (known: {', '.join(list_models())})")
    config_cls, _ = _FAMILIES[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(
            f"model.{unknown[0]}: not a setting of the {name} family (settings: {', '.join(sorted(fields - {'name'}))})"
        )
    cfg = config_cls(**values)
    cfg.check()
    return cfg


def create_model(model_cfg: Mapping | Any):
    """Build the nn.Module for a `model` node (on the current default device)."""
    cfg = resolve_model_config(model_cfg)
    return _FAMILIES[cfg.name][1](cfg)
