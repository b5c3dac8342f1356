"""A running trial's attributes and constraints, written at once.

A trial of the sweeper carries some ten attributes before it is launched or told infeasible
(the search's fixed values, its size and budget, its constraints, its status). Optuna writes
one a call, and each call first reads the trial (`Trial.set_constraint` reads the whole of it);
on a database that is most of what an over-budget suggestion costs after its sampling.
`set_attrs` writes them together (`SweepStorage.set_trial_attrs`: one read of the trial and one
statement per table); other storages get them call by call. Either way the `Trial` answers
`user_attrs` with them afterwards, as after `Trial.set_user_attr`.
"""

from __future__ import annotations

import math
from typing import Any

from ._compat import constraint_attr, trial_parts
from .optuna_storage import SweepStorage, set_trial_attrs_each


def set_attrs(
    trial: Any,
    user: dict[str, Any] | None = None,
    system: dict[str, Any] | None = None,
    constraints: dict[str, float] | None = None,
) -> None:
    """Write user attributes, system attributes and constraints (as `Trial.set_constraint`
    would: a value > 0 is infeasible) of a running `optuna.Trial`."""
    user, system = dict(user or {}), dict(system or {})
    for name, value in (constraints or {}).items():
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"constraint {name!r}: NaN is not a constraint value")
        system[constraint_attr(name)] = value
    if not user and not system:
        return
    storage, trial_id, kept = trial_parts(trial)
    if isinstance(storage, SweepStorage):
        storage.set_trial_attrs(trial_id, user, system)
    else:
        set_trial_attrs_each(storage, trial_id, user, system)
    kept.user_attrs.update(user)
    kept.system_attrs.update(system)
