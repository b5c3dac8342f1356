"""The search space: `hydra.sweeper.params` + command-line overrides -> Optuna distributions.

The grammar is the plugin's (`choice(...)`, `range(...)`, `interval(...)`, `tag(log, ...)`, a
plain value fixes a key), parsed by its own `create_params_from_overrides`; this module adds
one-line errors for a bad entry and the default study name. Pure functions: no Hydra state.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .errors import SweeperError


@dataclass
class SearchSpace:
    distributions: dict[str, Any]  # key -> optuna BaseDistribution
    fixed: dict[str, Any]  # key -> value, the same in every trial
    deletions: list[str]  # `~key` overrides, passed through

    def fingerprint(self) -> str:
        """8 hex digits that change with anything that defines the search (not with n_trials,
        the sampler or the pruner): the default study name ends with it."""
        from optuna.distributions import distribution_to_json

        plain = {
            "space": {k: json.loads(distribution_to_json(d)) for k, d in sorted(self.distributions.items())},
            "fixed": {k: str(v) for k, v in sorted(self.fixed.items())},
            "deletions": sorted(self.deletions),
        }
        return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:8]


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
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override
    from optuna.distributions import BaseDistribution

    distributions: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    deletions: list[str] = []
    parser = OverridesParser.create()
    for line in overrides:
        try:
            (override,) = parser.parse_overrides([line])
        except Exception as e:
            raise SweeperError(f"search space: cannot parse {line!r}: {str(e).splitlines()[0]}") from None
        if override.is_delete():
            deletions.append(line)
            continue
        key = override.get_key_element()
        try:
            value = create_optuna_distribution_from_override(override)
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
