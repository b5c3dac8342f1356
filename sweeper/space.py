"""The search space: `hydra.sweeper.params` + command-line overrides -> Optuna distributions.

The grammar is the plugin's (`choice(...)`, `range(...)`, `interval(...)`, `tag(log, ...)`, a
plain value fixes a key), parsed by its own helper (`budgetsweep.sweeper._compat`); this module adds
one-line errors for a bad entry, the default study name, the grid sampler's choices, and the
way back: a trial's parameters as the overrides of its job. Pure functions: no Hydra state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from budgetsweep.contract import first_line
from budgetsweep.contract.values import canon, quote

from .errors import SweeperError
from .trial_attrs import set_attrs


@dataclass
class SearchSpace:
    distributions: dict[str, Any]  # key -> optuna BaseDistribution
    fixed: dict[str, Any]  # key -> value, the same in every trial
    deletions: list[str]  # `~key` overrides, passed through

    def plain(self) -> dict:
        """Everything that defines the search (not n_trials, the sampler or the pruner) as JSON
        data: kept in the study, so that a rerun under another space is noticed."""
        from optuna.distributions import distribution_to_json

        return {
            "space": {k: json.loads(distribution_to_json(d)) for k, d in sorted(self.distributions.items())},
            "fixed": {k: str(v) for k, v in sorted(self.fixed.items())},
            "deletions": sorted(self.deletions),
        }

    def fingerprint(self) -> str:
        """8 hex digits of `plain()`: the default study name ends with it."""
        return hashlib.sha256(json.dumps(self.plain(), sort_keys=True).encode()).hexdigest()[:8]


def space_changes(before: dict, now: dict) -> list[str]:
    """The keys whose range, fixed value or deletion differs between two `SearchSpace.plain()`."""
    changed = set()
    for part in ("space", "fixed"):
        old, new = before.get(part, {}), now.get(part, {})
        changed |= {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
    changed |= set(before.get("deletions", [])) ^ set(now.get("deletions", []))
    return sorted(changed)


def params_to_overrides(params: Any) -> list[str]:
    """`hydra.sweeper.params` (a mapping key -> override value) as override strings."""
    if not params:
        return []
    if not hasattr(params, "items"):
        raise SweeperError(f"hydra.sweeper.params: expected a mapping of key: values, got {params!r}")
    return [f"{k}={v}" for k, v in params.items()]


def parse_space(overrides: list[str]) -> SearchSpace:
    """Later overrides of a key replace earlier ones (the command line wins over the YAML)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from optuna.distributions import BaseDistribution

    from ._compat import distribution_from_override

    distributions: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    deletions: list[str] = []
    parser = OverridesParser.create()
    for line in overrides:
        try:
            (override,) = parser.parse_overrides([line])
        except Exception as e:
            raise SweeperError(f"search space: cannot parse {line!r}: {first_line(e)}") from None
        if override.is_delete():
            deletions.append(line)
            continue
        key = override.get_key_element()
        try:
            value = distribution_from_override(override)
        except (AssertionError, ValueError, TypeError, NotImplementedError) as e:
            raise SweeperError(f"search space: {line!r}: {e or 'not supported by the Optuna sweeper'}") from None
        distributions.pop(key, None)
        fixed.pop(key, None)
        if isinstance(value, BaseDistribution):
            distributions[key] = value
        else:
            fixed[key] = value
    return SearchSpace(distributions, fixed, deletions)


def default_study_name(space: SearchSpace, prefix: str | None) -> str:
    """`<experiment or "optuna">-<fingerprint>`: the same command gives the same study."""
    return f"{prefix or 'optuna'}-{space.fingerprint()}"


def grid_choices(space: SearchSpace) -> dict[str, list]:
    """The GridSampler's search space: each key's values (choice(...), or a range(...) of ints or floats)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    grid = {}
    for key, dist in space.distributions.items():
        if isinstance(dist, CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution):
            grid[key] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            low, step = Decimal(str(dist.low)), Decimal(str(dist.step))
            grid[key] = [float(low + i * step) for i in range(int((Decimal(str(dist.high)) - low) / step) + 1)]
        else:
            raise SweeperError(
                f"hydra.sweeper.sampler=grid: {key} is continuous ({dist}); give it choice(...) or "
                f"range(...), or fix it (hydra.sweeper.params=null drops the default space)"
            )
    return grid


def override_value(value: Any) -> str:
    """A suggested value as override text that Hydra reads back as that value.

    Strings come from choice(...) raw ("c,d", "1", "a b"): quoted unless they read back as
    themselves. The plugin's parser turns a non-primitive choice (null, a list) into its override
    text ("null", "[1, 2]"): that text goes out as it is."""
    if isinstance(value, str):
        return value if _reads_back(value) else quote(value)
    if isinstance(value, float):
        return repr(value)  # 3.0 stays a float; canon() would write 3
    return canon(value)


def _reads_back(text: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        value = OverridesParser.create().parse_override(f"x={text}").value()
    except Exception:  # Hydra's grammar errors share no base class
        return False
    return value == text if isinstance(value, str) else value is None or isinstance(value, (list, dict))


def trial_overrides(
    trial: Any, space: SearchSpace, custom: Callable[[Any, Any], None] | None = None, config: Any = None
) -> list[str]:
    """A trial's job overrides: its parameters (the space's, suggested at `Study.ask`, plus any
    that `custom(config, trial)` suggests), the fixed values, then the deletions. Fixed values
    are also recorded as the trial's user attributes, as the plugin does."""
    set_attrs(trial, space.fixed)
    if custom is not None:
        try:
            custom(config, trial)
        except Exception as e:
            raise SweeperError(f"hydra.sweeper.custom_search_space: {type(e).__name__}: {first_line(e)}") from None
    overlap = sorted(trial.params.keys() & space.fixed.keys())
    if overlap:
        raise SweeperError(f"hydra.sweeper: {', '.join(overlap)} both fixed and searched (custom_search_space)")
    params = [f"{key}={override_value(value)}" for key, value in trial.params.items()]
    return [*params, *(f"{key}={value}" for key, value in space.fixed.items()), *space.deletions]


def check_enqueued(space: SearchSpace, config: dict, where: str) -> tuple[dict, list[str]]:
    """An `enqueue` entry as the trial's fixed parameters, and the keys left out because the
    search fixes them (to another value: a plain value on the command line wins, as it does over
    the YAML's space). Each other key must be searched and its value inside its distribution;
    SweeperError names the first that is not."""
    from optuna.distributions import CategoricalDistribution

    params, dropped = {}, []
    for key, value in config.items():
        dist = space.distributions.get(key)
        if dist is None:
            if key in space.fixed:
                if canon(value) != canon(space.fixed[key]):
                    dropped.append(f"{key}={canon(value)} (fixed to {space.fixed[key]})")
                continue  # the same in every trial anyway
            searched = ", ".join(sorted(space.distributions)) or "none"
            raise SweeperError(f"{where}: {key} is not a searched key (searched: {searched})")
        if isinstance(dist, CategoricalDistribution):
            inside = any(canon(value) == canon(c) for c in dist.choices)
            value = next((c for c in dist.choices if canon(value) == canon(c)), value)
        else:
            ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
            inside = ok_type and dist.low <= value <= dist.high
            if inside and getattr(dist, "step", None) is not None:
                inside = abs((value - dist.low) / dist.step - round((value - dist.low) / dist.step)) < 1e-9
        if not inside:
            raise SweeperError(f"{where}: {key}={value!r} is outside its search space ({dist})")
        params[key] = value
    return params, dropped
