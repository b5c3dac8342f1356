"""Is a suggestion trainable? Compose the trial's config, size it under the budget.

Every suggestion is composed here, in the sweeper's process, exactly as its job will be
(`ConfigLoader.load_sweep_config`, as Hydra's launchers do), and sized by `budgetsweep.sweeper.sizing`
(a registry family's `models.check_budget`, a `_target_` model on the meta device, or the
user's size function; no weights allocated). Without a budget nothing is sized. The verdict
is written on the trial for the samplers: Optuna 5 constraints (what `Trial.set_constraint` writes, a
value > 0 is infeasible), from `violations`:

    params   log2(n_params / budget.max_params)   (> 0: over budget; 1: twice the budget)
    flops    log2(flops / budget.max_flops)       (only with a FLOPs budget)
    valid    INVALID (100) when the model cannot be built from this config, else 0

Samplers rank infeasible trials by the sum of their violations (TPE puts the least violating
ones among its "good" trials), so the scale matters: an over-budget config is told how far it
is from the budget, and an invalid one is told it is worse than any over-budget one (2^100
times a budget is not a size), never "nearly feasible". Otherwise, with a tight budget, TPE
walks into the invalid corner of the space instead of toward small models (benchmarks/
RESULTS.md, "feasible suggestions"). The loop then tells an infeasible trial PRUNED (it has no
objective value; samplers without constraints skip pruned trials) without launching it, and it
does not count in n_trials. A bug in a model family (any other exception) propagates.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any, cast

from hydra.core.override_parser.types import OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

from .composed import ComposedOnce
from .errors import SweeperError
from .job_templates import ParsedOverrides, group_keys, is_group
from .sizing import WAYS_OUT, Sizer, Unsizable
from .trial_attrs import set_attrs

INVALID = 100.0  # the `valid` violation of a config that cannot build a model: beyond any log2 size ratio


def compose(hydra_context: Any, config: DictConfig, overrides: list[str]) -> DictConfig:
    """The job's config for these overrides (kept for the launch when the context's loader is a
    `ComposedOnce`); raises what Hydra raises for a key or type it refuses."""
    loader = hydra_context.config_loader
    if isinstance(loader, ComposedOnce):
        return loader.compose(config, overrides)
    return loader.load_sweep_config(config, list(overrides))


class Patcher:
    """What a compose would give for sizing, at a fraction of its cost, where that is safe.

    Composing a trial's config is most of what an over-budget suggestion costs. Hydra composes in
    two steps: the config groups chosen are merged (the defaults list), then each plain override
    sets its key on the result. The patcher does the first step once per combination of group
    choices among a trial's overrides (`optimizer=choice(adam,sgd)`: two composes in a whole
    sweep) through `compose`, keeps the result (its `hydra` node left out), and does the second
    step itself: the same model and budget, so an over-budget suggestion is told so without a
    compose. An override it cannot apply the same way (an addition, a deletion, a key the config
    lacks, a value the key's type refuses) gives None: the trial is composed.

    The trial's values are set on the kept config itself and its own values put back as the block
    ends (`with patcher.patched(params) as cfg`): a copy of the whole config took longer than all
    the rest of the patch. A key whose own value is a node (a list, a dict) is set on a copy."""

    MAX_BASES = 32  # group combinations kept; past them every trial is composed

    def __init__(self, config: DictConfig, compose: Any) -> None:
        self.groups = group_keys(config)
        self.config, self.compose = config, compose  # compose(group overrides) -> the composed config
        # group overrides -> (the composed config, its values as written: interpolations unresolved)
        self.bases: dict[tuple[str, ...], tuple[DictConfig, dict] | None] = {}
        self.parse = ParsedOverrides()

    def base(self, groups: tuple[str, ...]) -> tuple[DictConfig, dict] | None:
        """The config composed with these group overrides (the sweep's own config for none), and
        its values as written."""
        if groups not in self.bases:
            if len(self.bases) >= self.MAX_BASES:
                return None
            try:
                cfg = copy.deepcopy(self.compose(list(groups)) if groups else self.config)
            except Exception:  # the trial's compose says what is wrong, in Hydra's words
                cfg = None
            if cfg is not None:
                with open_dict(cfg):
                    cfg.pop("hydra", None)
            written = None if cfg is None else OmegaConf.to_container(cfg, resolve=False)
            self.bases[groups] = None if cfg is None else (cfg, cast(dict, written))
        return self.bases[groups]

    @contextlib.contextmanager
    def patched(self, params: list[str]) -> Iterator[DictConfig | None]:
        """The config a compose of these overrides would give, for the block (None: compose it)."""
        try:
            overrides = [self.parse(p) for p in params]
        except Exception:
            yield None
            return
        if any(o.type != OverrideType.CHANGE or o.package is not None or o.is_sweep_override() for o in overrides):
            yield None
            return
        chosen = [is_group(o, self.groups) for o in overrides]
        groups = tuple(p for p, group in zip(params, chosen) if group)
        base = self.base(groups)
        keys = [o for o, group in zip(overrides, chosen) if not group]
        if base is None or any(OmegaConf.select(base[0], o.key_or_group, default=_ABSENT) is _ABSENT for o in keys):
            yield None
            return
        cfg: DictConfig | None
        cfg, written = base
        own = [_written_value(written, o.key_or_group) for o in keys]
        if any(value is _ABSENT for value in own):  # a node: patched on a copy
            cfg, own = copy.deepcopy(cfg), []
        patched = []
        try:
            for o in keys:
                patched.append(o.key_or_group)
                OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
        except Exception:  # a type the key refuses: the compose says so in its own words
            cfg = None
        try:
            yield cfg
        finally:
            self._put_back(groups, base[0], patched[: len(own)], own)

    def _put_back(self, groups: tuple[str, ...], cfg: DictConfig, keys: list[str], own: list[Any]) -> None:
        try:
            for key, value in reversed(list(zip(keys, own))):
                OmegaConf.update(cfg, key, value, merge=False)
        except Exception:  # not as it was: composed again when next needed
            self.bases.pop(groups, None)


def _written_value(written: dict, key: str) -> Any:
    """A key's value as the config writes it (an interpolation as its text); _ABSENT for a node
    or a key not found this way."""
    value: Any = written
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return _ABSENT if isinstance(value, (dict, list)) else value


_ABSENT = object()


def violations(sizing: Any, max_params: int | None, max_flops: int | None = None) -> dict[str, float]:
    """The constraint values of a sized config (`models.Sizing`): > 0 is infeasible, and the
    larger the farther from feasible (see the module's docstring)."""
    values = {}
    if max_params is not None:
        values["params"] = math.log2(sizing.params / max_params) if sizing.params else 0.0
    if max_flops is not None:
        values["flops"] = math.log2(sizing.flops / max_flops) if sizing.flops else 0.0
    values["valid"] = INVALID if sizing.status == "invalid" else 0.0
    if sizing.status == "over_budget" and not any(v > 0 for v in values.values()):
        values["valid"] = 1.0  # over a limit it could not measure: infeasible all the same
    return values


def size_trial(trial: Any, cfg: DictConfig, sizer: Sizer) -> Any:
    """Size the trial's config under its budget (`budgetsweep.sweeper.sizing`); the result is recorded on the
    trial (user attributes `params`, `flops`, `max_params`, `max_flops`, `status`/`error` when
    infeasible; the constraints). Returns the `models.Sizing`, or None when there is no budget
    (nothing recorded). Raises SweeperError when the config cannot be sized at all."""
    try:
        sizing = sizer.size(cfg)
    except Unsizable as e:
        raise SweeperError(f"trial {trial.number}: cannot size the config for the budget: {e}; {WAYS_OUT}") from None
    if sizing is None:
        return None
    (max_params, _), (max_flops, _) = sizer.budget(cfg), sizer.flops_budget(cfg)
    known = {"params": sizing.params, "flops": sizing.flops, "max_params": max_params, "max_flops": max_flops}
    attrs = {key: value for key, value in known.items() if value is not None}
    if not sizing.fits:
        attrs.update(status=sizing.status, error=sizing.error)
    set_attrs(trial, attrs, constraints=violations(sizing, max_params, max_flops))
    return sizing
