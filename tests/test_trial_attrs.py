"""A trial's attributes written at once (`budgetsweep.sweeper.trial_attrs.set_attrs`) read back as
Optuna's own calls (`Trial.set_user_attr`, `set_trial_system_attr`, `Trial.set_constraint`) would
have left them, on each kind of storage, and cost one statement per table on a database."""

from __future__ import annotations

import contextlib
from typing import Iterator

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy import event

from budgetsweep.sweeper.optuna_storage import SweepJournal, batched, make_storage

from helpers import postgres_server

USER = {"params": 70_123, "max_params": 200_000, "status": "over_budget", "error": "70,123 > 200", "f": [1, 2]}
SYSTEM = {"launched": True, "slot": None}
CONSTRAINTS = {"params": 1.5, "valid": 0.0}


@contextlib.contextmanager
def storage_of(kind: str, tmp_path) -> Iterator[optuna.storages.BaseStorage]:
    if kind == "sqlite":
        yield make_storage(f"sqlite:///{tmp_path}/study.db")
    elif kind == "journal":
        yield SweepJournal(tmp_path / "journal.log")
    elif kind == "memory":
        yield optuna.storages.InMemoryStorage()
    else:
        with postgres_server("attrs") as url:
            yield make_storage(url)


KINDS = ["sqlite", "journal", "memory", pytest.param("postgresql", marks=[pytest.mark.slow, pytest.mark.postgres])]


def optunas_way(storage: optuna.storages.BaseStorage, trial: optuna.Trial) -> None:
    for key, value in USER.items():
        trial.set_user_attr(key, value)
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(trial.study.study_name), trial.number
    )
    for key, value in SYSTEM.items():
        storage.set_trial_system_attr(trial_id, key, value)
    for key, value in CONSTRAINTS.items():
        trial.set_constraint(key, value)


@pytest.mark.parametrize("kind", KINDS)
def test_attributes_written_at_once_read_back_as_optunas_own_writes(kind, tmp_path):
    from budgetsweep.sweeper.trial_attrs import set_attrs

    with storage_of(kind, tmp_path) as storage:
        study = optuna.create_study(storage=storage, study_name="attrs")
        theirs, ours = study.ask(), study.ask()
        optunas_way(storage, theirs)
        set_attrs(ours, USER, SYSTEM, CONSTRAINTS)
        # the Trial answers with them before anything is read again, as after set_user_attr
        assert ours.user_attrs == theirs.user_attrs == USER
        for trial in (theirs, ours):
            study.tell(trial, 1.0)
        first, second = optuna.load_study(study_name="attrs", storage=storage).trials
        assert (second.user_attrs, second.system_attrs) == (first.user_attrs, first.system_attrs)
        # the samplers read the constraints from there
        assert first.system_attrs["constraints:params"] == 1.5


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=[pytest.mark.slow, pytest.mark.postgres])])
def test_an_attribute_written_again_takes_the_new_value_and_a_finished_trial_refuses(kind, tmp_path):
    from budgetsweep.sweeper.trial_attrs import set_attrs

    with storage_of(kind, tmp_path) as storage:
        study = optuna.create_study(storage=storage, study_name="again")
        trial = study.ask()
        set_attrs(trial, {"status": "running", "n": 1}, {"slot": None})
        set_attrs(trial, {"status": "completed"}, {"slot": True})
        study.tell(trial, 0.5)
        (frozen,) = study.trials
        assert frozen.user_attrs == {"status": "completed", "n": 1} and frozen.system_attrs["slot"] is True
        with pytest.raises(UpdateFinishedTrialError):
            set_attrs(trial, {"status": "again"})


def test_a_constraint_must_be_a_number():
    from budgetsweep.sweeper.trial_attrs import set_attrs

    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="NaN"):
        set_attrs(trial, {"status": "x"}, constraints={"params": float("nan")})
    assert (study.trials[0].user_attrs, study.trials[0].system_attrs) == ({}, {})  # nothing written


def test_on_sqlite_the_attributes_are_one_read_and_one_statement_per_table(tmp_path):
    from budgetsweep.sweeper.trial_attrs import set_attrs

    storage = make_storage(f"sqlite:///{tmp_path}/study.db")
    study = optuna.create_study(storage=storage, study_name="count")
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement.split()[0])

    theirs, ours = study.ask(), study.ask()
    event.listen(storage.engine, "before_cursor_execute", count)
    try:
        with batched(storage):
            set_attrs(ours, USER, SYSTEM, CONSTRAINTS)
            ours_count = len(statements)
            statements.clear()
            optunas_way(storage, theirs)
    finally:
        event.remove(storage.engine, "before_cursor_execute", count)
    assert ours_count == 3  # the trial's state, the user attributes, the system attributes
    assert len(statements) > 3 * len(USER)  # what Optuna's calls took for the same
    for trial in (theirs, ours):
        study.tell(trial, state=TrialState.PRUNED)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
