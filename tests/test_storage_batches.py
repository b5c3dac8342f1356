"""A trial's storage calls in one SQLite transaction (`SweepStorage.batched`): what other
processes see and when, what commits at once, and what a failure does to the rest."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from sqlalchemy import event

from budgetsweep.lockfile import locked
from budgetsweep.sweeper.errors import SweeperError
from budgetsweep.sweeper.optuna_storage import SweepStorage, batched, make_storage

from helpers import ROOT


def open_twice(tmp_path: Path) -> tuple[SweepStorage, SweepStorage, int]:
    """The sweeper's storage and another connection to the same SQLite file (another process's
    view), and a study in it."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    ours = make_storage(url)
    study_id = ours.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    return ours, make_storage(url, existing=True), study_id


def commits(storage: SweepStorage) -> list[int]:
    """A list that grows by one at each transaction the storage commits."""
    seen: list[int] = []
    event.listen(storage.engine, "commit", lambda conn: seen.append(1))
    return seen


def test_writes_in_a_batch_are_one_transaction_that_others_see_as_it_ends(tmp_path):
    ours, theirs, study_id = open_twice(tmp_path)
    trial_id = ours.create_new_trial(study_id)
    counted = commits(ours)
    with ours.batched():
        ours.set_trial_param(trial_id, "x", 0.5, FloatDistribution(0, 1))
        for key in ("params", "flops", "status"):
            ours.set_trial_user_attr(trial_id, key, key)
        ours.set_trial_system_attr(trial_id, "slot", True)
        ours.record_heartbeat(trial_id)
        assert ours.get_trial(trial_id).user_attrs["status"] == "status"  # the batch reads its own writes
        assert theirs.get_trial(trial_id).user_attrs == {}  # nobody else does yet
    assert len(counted) == 1
    seen = theirs.get_trial(trial_id)
    assert seen.params == {"x": 0.5}
    assert seen.user_attrs == {"params": "params", "flops": "flops", "status": "status"}
    assert seen.system_attrs["slot"] is True


def test_a_batch_reads_what_it_wrote_since_it_last_read(tmp_path):
    """The batch's session keeps what it loaded; each call must still see the trial as written
    since (Optuna's cache keeps a finished trial as first read: a stale read would stay)."""
    ours, theirs, study_id = open_twice(tmp_path)
    trial_id = ours.create_new_trial(study_id)
    ours.set_trial_system_attr(trial_id, "slot", None)
    with ours.batched():
        assert ours.get_trial(trial_id).system_attrs == {"slot": None}
        ours.set_trial_system_attr(trial_id, "slot", True)
        ours.set_trial_user_attr(trial_id, "status", "completed")
        ours.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
        seen = ours.get_trial(trial_id)
        assert (seen.system_attrs, seen.user_attrs) == ({"slot": True}, {"status": "completed"})
        assert (seen.state, seen.values) == (TrialState.COMPLETE, [0.5])
    assert theirs.get_trial(trial_id).values == [0.5]


def test_without_a_batch_each_call_commits(tmp_path):
    ours, _, study_id = open_twice(tmp_path)
    trial_id = ours.create_new_trial(study_id)
    counted = commits(ours)
    for key in ("params", "flops", "status"):
        ours.set_trial_user_attr(trial_id, key, key)
    assert len(counted) == 3


def test_a_new_trial_is_written_with_the_batch_or_not_at_all(tmp_path):
    """A trial created but never claimed would stay RUNNING with no heartbeat to go stale (a full
    disk failing the batch's commit left one): it is part of the batch."""
    ours, theirs, study_id = open_twice(tmp_path)
    first = ours.create_new_trial(study_id)
    ours.set_trial_param(first, "x", 0.5, FloatDistribution(0, 1))
    with ours.batched():
        second = ours.create_new_trial(study_id)
        ours.set_trial_system_attr(second, "owner", "me")
        assert [t.number for t in theirs.get_all_trials(study_id)] == [0]
    assert theirs.get_trial(second).system_attrs == {"owner": "me"}
    with pytest.raises(SweeperError):
        with ours.batched():
            ours.create_new_trial(study_id)
            ours.set_trial_param(first, "x", 0.25, FloatDistribution(0, 1))  # fails, undoing the batch
    assert [t.number for t in theirs.get_all_trials(study_id)] == [0, 1]


def test_a_claim_commits_the_batch_before_waiting_for_the_claim_lock(tmp_path):
    """A worker waiting for the claim lock while holding SQLite's write lock would deadlock with
    the lock's holder waiting to write: what the batch wrote is committed before the wait."""
    ours, theirs, study_id = open_twice(tmp_path)
    asked = ours.create_new_trial(study_id)
    queued = ours.create_new_trial(study_id, optuna.trial.create_trial(state=TrialState.WAITING))
    took: list[bool] = []

    def worker() -> None:
        with ours.batched():
            ours.set_trial_user_attr(asked, "sized", True)
            took.append(ours.set_trial_state_values(queued, TrialState.RUNNING))

    with locked(ours.claim_lock):  # another worker holds the claim lock
        thread = threading.Thread(target=worker)
        thread.start()
        deadline = time.monotonic() + 10
        while "sized" not in theirs.get_trial(asked).user_attrs and time.monotonic() < deadline:
            time.sleep(0.05)
        committed = theirs.get_trial(asked).user_attrs
        assert thread.is_alive() and not took  # the claim still waits for the lock
        theirs.set_trial_user_attr(asked, "theirs", 1)  # and the lock's holder can write
    thread.join(timeout=10)
    assert committed == {"sized": True}
    assert took == [True]
    assert theirs.get_trial(queued).state == TrialState.RUNNING


def test_an_error_in_the_block_keeps_what_was_written_before_it(tmp_path):
    ours, theirs, study_id = open_twice(tmp_path)
    trial_id = ours.create_new_trial(study_id)
    with pytest.raises(RuntimeError, match="the block's own"):
        with ours.batched():
            ours.set_trial_user_attr(trial_id, "status", "invalid")
            raise RuntimeError("the block's own error")
    assert theirs.get_trial(trial_id).user_attrs == {"status": "invalid"}
    ours.set_trial_user_attr(trial_id, "later", 1)  # the storage goes on as before
    assert theirs.get_trial(trial_id).user_attrs["later"] == 1


def test_a_failed_write_that_undid_the_batch_is_not_silent(tmp_path):
    """RDBStorage rolls back a write that breaks a unique key and goes on without a word: in a
    batch that rollback undoes the earlier writes too, so the batch's end says so."""
    ours, theirs, study_id = open_twice(tmp_path)
    trial_id = ours.create_new_trial(study_id)
    ours.set_trial_param(trial_id, "x", 0.5, FloatDistribution(0, 1))
    with pytest.raises(SweeperError, match="undid the writes"):
        with ours.batched():
            ours.set_trial_user_attr(trial_id, "status", "sized")
            ours.set_trial_param(trial_id, "x", 0.25, FloatDistribution(0, 1))  # x is set already
    assert theirs.get_trial(trial_id).user_attrs == {}
    with ours.batched():  # the next batch starts clean
        ours.set_trial_user_attr(trial_id, "status", "sized")
    assert theirs.get_trial(trial_id).user_attrs == {"status": "sized"}


def test_nested_batches_are_one(tmp_path):
    ours, theirs, study_id = open_twice(tmp_path)
    trial_id = ours.create_new_trial(study_id)
    counted = commits(ours)
    with ours.batched():
        ours.set_trial_user_attr(trial_id, "a", 1)
        with batched(ours):
            ours.set_trial_user_attr(trial_id, "b", 2)
        assert theirs.get_trial(trial_id).user_attrs == {}
    assert len(counted) == 1 and theirs.get_trial(trial_id).user_attrs == {"a": 1, "b": 2}


def test_a_journal_is_not_batched(tmp_path):
    """Only SQLite batches (its commits are disk syncs; a server's calls stay retried one by one
    through an outage): elsewhere `batched` is nothing."""
    journal = make_storage(f"journal:{tmp_path / 'study.journal'}")
    study_id = journal.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    trial_id = journal.create_new_trial(study_id)
    with batched(journal):
        journal.set_trial_user_attr(trial_id, "a", 1)
        assert journal.get_trial(trial_id).user_attrs == {"a": 1}


COUNTING = """
import os, runpy, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine
seen = []
event.listen(Engine, "commit", lambda conn: seen.append(1))
sys.argv = [sys.argv[1], *sys.argv[2:]]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("COMMITS", len(seen))
"""


def sweep_commits(tmp_path: Path, script: Path, *args: str) -> int:
    counter = tmp_path / "count.py"
    counter.write_text(COUNTING)
    done = subprocess.run(
        [sys.executable, str(counter), str(script), "-m", *args, f"hydra.sweeper.dir={tmp_path / 'study'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("COMMITS")]
    assert lines, done.stderr[-3000:]
    return int(lines[0].split()[1])


def test_an_over_budget_suggestion_is_a_few_transactions(tmp_path):
    """Before batches, each of some 38 storage calls of an over-budget suggestion was its own
    transaction (each a disk sync on SQLite: most of what the suggestion cost)."""
    n = 12
    total = sweep_commits(
        tmp_path,
        ROOT / "run.py",
        "hydra/sweeper=optuna",
        "experiment=quick",
        "budget.max_params=100",
        f"hydra.sweeper.max_suggestions={n}",
        f"hydra.sweeper.n_trials={n}",
    )
    assert total / n <= 6, total
