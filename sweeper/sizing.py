"""Sizing any app's model before launch, for both sweepers: does this config fit the budget?

The budget is `hydra.sweeper.budget.max_params`, else the app's own `budget.max_params`, and
likewise `max_flops` (forward FLOPs of one input; either limit or both); with neither, nothing is
sized (the sweepers say so in one line at the start). A config is sized by the first of these
that applies:

1. a function the user names, `hydra.sweeper.budget.size_fn: my_pkg.sizes.count` called as
   `fn(cfg) -> int` (the job's composed config): naming one says the automatic ways below do
   not fit this model, so it is not second-guessed (a FLOPs budget: `fn(cfg) -> (params, flops)`);
2. a family of our registry (`<model_key>.name` registered in `models`): `models.check_budget`,
   the verdict the trainer gives too;
3. a model node with `_target_`: `<model_key>`, else `<model_key>.net` (the
   lightning-hydra-template layout: a LightningModule around a `net`), instantiated inside
   `torch.device("meta")` (shapes only, no weights allocated), its trainable parameters counted.

Counts from 1 and 3 get the same verdict words as 2 (`models.judge`). FLOPs are counted for
registry families (their `flops()`); a FLOPs budget with a `_target_` model needs a size
function. A config whose own values are refused (the family's ConfigError, an exception from
the model's constructor or from the size function) is `invalid`: that config is not trained.
A sweep whose configs cannot be sized at all (no model node, a `_target_` that cannot be
imported, a size function that returns no int) gets `Unsizable`, which the sweepers report
once with the reason and the way out.

Imports Hydra and OmegaConf only: torch and `models` are loaded on the first sizing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from budgetsweep.contract import first_line

from .config import BudgetConf
from .errors import SweeperError

WAYS_OUT = (
    "set hydra.sweeper.budget.model_key to the model's node, name a sizing function "
    "(hydra.sweeper.budget.size_fn=module.fn, fn(cfg) -> int), or drop the budget (budget.max_params=null)"
)


class Unsizable(Exception):
    """This sweep's configs cannot be sized; the message says why."""


@dataclass
class Sizer:
    max_params: int | None  # the sweeper's setting; None: the app's budget.max_params
    model_key: str
    size_fn: Any  # a callable, or None
    size_fn_name: str | None
    max_flops: int | None = None  # the sweeper's setting; None: the app's budget.max_flops
    # sizes already measured, by the model node's values and the limits: the samplers suggest
    # the same architecture again and again (only its learning rate differs, say)
    known: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_settings(cls, budget: Any) -> Sizer:
        """`hydra.sweeper.budget` checked; SweeperError names the bad key."""
        budget = OmegaConf.to_container(budget) if OmegaConf.is_config(budget) else dict(budget or {})
        defaults = asdict(BudgetConf())
        unknown = sorted(set(budget) - set(defaults))
        if unknown:
            raise SweeperError(f"hydra.sweeper.budget.{unknown[0]}: not a setting ({', '.join(defaults)})")
        budget = {**defaults, **budget}
        max_params = _max_params("hydra.sweeper.budget.max_params", budget["max_params"])
        max_flops = _max_params("hydra.sweeper.budget.max_flops", budget["max_flops"])
        model_key = budget["model_key"] or defaults["model_key"]
        if not isinstance(model_key, str):
            raise SweeperError(f"hydra.sweeper.budget.model_key: expected a config key, got {model_key!r}")
        name = budget["size_fn"]
        fn = None
        if name:
            from hydra.utils import get_method

            try:
                fn = get_method(name)
            except Exception as e:
                raise SweeperError(f"hydra.sweeper.budget.size_fn: {first_line(e)}") from None
        return cls(max_params, model_key, fn, name, max_flops)

    def budget(self, cfg: DictConfig) -> tuple[int | None, str]:
        """(max_params, where it comes from) for this config; (None, ...) means no budget."""
        if self.max_params is not None:
            return self.max_params, "hydra.sweeper.budget.max_params"
        return _max_params("budget.max_params", OmegaConf.select(cfg, "budget.max_params", default=None)), (
            "budget.max_params"
        )

    def flops_budget(self, cfg: DictConfig) -> tuple[int | None, str]:
        """(max_flops, where it comes from) for this config; (None, ...) means no FLOPs limit."""
        if self.max_flops is not None:
            return self.max_flops, "hydra.sweeper.budget.max_flops"
        return _max_params("budget.max_flops", OmegaConf.select(cfg, "budget.max_flops", default=None)), (
            "budget.max_flops"
        )

    def describe(self, cfg: DictConfig) -> str:
        """One line for the start of a sweep: the budget and how configs are sized, or that they are not."""
        (max_params, source), (max_flops, flops_source) = self.budget(cfg), self.flops_budget(cfg)
        if max_params is None and max_flops is None:
            return (
                "no budget (no budget.max_params in the config, hydra.sweeper.budget.max_params unset; "
                "nor a max_flops): configs are not sized"
            )
        limits = [f"{max_params:,} parameters ({source})"] if max_params is not None else []
        limits += [f"{max_flops:,} FLOPs ({flops_source})"] if max_flops is not None else []
        how = f"by {self.size_fn_name}(cfg)" if self.size_fn else f"from {self.model_key}, on the meta device"
        return f"budget {' and '.join(limits)}: each config is sized {how} before launch"

    def size(self, cfg: DictConfig) -> Any:
        """The `models.Sizing` of this config under its budget; None when there is no budget.
        Raises Unsizable when no way of sizing applies."""
        (max_params, _), (max_flops, _) = self.budget(cfg), self.flops_budget(cfg)
        if max_params is None and max_flops is None:
            return None

        if self.size_fn is not None:  # it may read any key of the config: not cached
            return self._by_function(cfg, max_params, max_flops)
        node = OmegaConf.select(cfg, self.model_key, default=None)
        if not OmegaConf.is_dict(node):
            raise Unsizable(f"the config has no `{self.model_key}` node to size")
        key = _values_key(node, max_params, max_flops)
        if key is not None and key in self.known:
            return self.known[key]
        sizing = self._automatic(node, max_params, max_flops)
        if key is not None:
            self.known[key] = sizing
        return sizing

    def _automatic(self, node: DictConfig, max_params: int | None, max_flops: int | None) -> Any:
        from budgetsweep import models

        if node.get("name") in models.list_models():
            return models.check_budget(node, max_params, max_flops)
        if max_flops is not None:
            raise Unsizable(
                f"budget.max_flops: FLOPs are counted for the families of our registry only, and "
                f"`{self.model_key}` is a _target_ node; name a size function returning (params, flops)"
            )
        return self._by_target(node, max_params)

    def _by_function(self, cfg: DictConfig, max_params: int | None, max_flops: int | None) -> Any:
        from budgetsweep import models

        try:
            size = self.size_fn(cfg)
        except Exception as e:  # the function refuses this config's values
            return models.Sizing(models.budget.INVALID, None, None, f"{self.size_fn_name}: {first_line(e)}")
        params, flops = size if isinstance(size, (tuple, list)) and len(size) == 2 else (size, None)
        if not _is_count(params) or not (flops is None or _is_count(flops)):
            raise Unsizable(f"{self.size_fn_name}(cfg) returned {size!r}, not an int (or (params, flops) ints)")
        if max_flops is not None and flops is None:
            raise Unsizable(f"budget.max_flops: {self.size_fn_name}(cfg) returned no FLOPs; return (params, flops)")
        return models.judge(params, flops, max_params=max_params, max_flops=max_flops)

    def _by_target(self, node: DictConfig, max_params: int | None) -> Any:
        from budgetsweep import models

        candidates = [(self.model_key, node)]
        net = node.get("net") if "net" in node else None
        if isinstance(net, DictConfig) and "_target_" in net:
            candidates.append((f"{self.model_key}.net", net))
        if "_target_" not in node:
            candidates = candidates[1:]
        if not candidates:
            family = f" ({self.model_key}.name {node.get('name')!r} is not a family of our registry)"
            raise Unsizable(f"`{self.model_key}` has no _target_ and no net._target_{family if 'name' in node else ''}")
        refused = None
        for key, candidate in candidates:
            try:
                return models.judge(_count_on_meta(key, candidate), max_params=max_params)
            except _Refused as e:  # this config's values: try the next node, else it is invalid
                refused = e
            except Unsizable:
                if key == candidates[-1][0]:
                    raise
        return models.Sizing(models.budget.INVALID, None, None, str(refused))


def _values_key(node: DictConfig, max_params: int | None, max_flops: int | None) -> str | None:
    """The model node's resolved values and the limits, as one string; None when it does not
    resolve (then the sizing says why, uncached)."""
    try:
        values = OmegaConf.to_container(node, resolve=True)
    except Exception:
        return None
    return json.dumps([values, max_params, max_flops], sort_keys=True, default=repr)


class _Refused(Exception):
    """The model's constructor refused this config's values."""


def _count_on_meta(key: str, node: DictConfig) -> int:
    import torch
    from hydra.errors import InstantiationException
    from hydra.utils import UNSAFE_DISABLE_EXECUTION_CHECKS, instantiate

    try:
        with torch.device("meta"):
            # the app's own model node, which its job instantiates anyway: no narrower list to check it against
            model = instantiate(node, _execution_whitelist_=UNSAFE_DISABLE_EXECUTION_CHECKS)
    except InstantiationException as e:
        if _cannot_import(e):
            raise Unsizable(f"{key}: {first_line(e)}") from None
        raise _Refused(f"{key}: {_cause(e)}") from None
    except Exception as e:
        raise _Refused(f"{key}: {type(e).__name__}: {first_line(e)}") from None
    if not isinstance(model, torch.nn.Module):
        raise Unsizable(f"{key} builds a {type(model).__name__}, not a torch.nn.Module")
    try:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    except ValueError as e:  # lazy modules' parameters have no shape before the first forward
        raise Unsizable(f"{key}: cannot count its parameters on the meta device ({first_line(e)})") from None


def _cannot_import(e: BaseException) -> bool:
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ImportError) or str(seen).startswith("Error locating target"):
            return True
        seen = seen.__cause__
    return False


def _cause(e: BaseException) -> str:
    """The constructor's own exception under Hydra's InstantiationException, in one line."""
    cause = e.__cause__
    return f"{type(cause).__name__}: {first_line(cause)}" if cause is not None else first_line(e)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _max_params(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweeperError(f"{key}: expected a positive int or null, got {value!r}")
    return value
