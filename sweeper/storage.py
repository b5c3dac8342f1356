"""The Optuna side of the study's storage: an RDBStorage with our heartbeat settings, and opening the study.

URLs, the password variable, masking and the connect URL are the run contract's
(`contract.storage`): the sweeper, its jobs and analysis connect the same way. Imported only
once a sweep (or a job reporting to its trial) needs the storage, never at Hydra's start.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from contract import first_line
from contract.storage import connect_url, mask, scrub

from .errors import SweeperError


class SweepStorage(RDBStorage):
    """RDBStorage with two changes.

    Heartbeats are recorded by the sweeper for the jobs it runs, not by `Study.optimize`:
    `heartbeat_interval`/`grace_period` drive the stale-trial query (`sweeper.heartbeat`), while
    `get_heartbeat_interval()` stays None so that `Study.ask` does not warn that heartbeats belong
    to `optimize`, and Optuna never fails a stale trial on its own.

    Taking a queued trial (WAITING -> RUNNING, by `Slots.claim_queued` or `Study.ask`) must succeed
    for one worker only. RDBStorage reads the state with `SELECT ... FOR UPDATE`, a row lock on
    PostgreSQL; SQLite ignores it, and two processes both read WAITING and both "win" (seen in
    tests/test_slots.py). On SQLite that transition is therefore serialized by a lock file beside
    the database (every process using a SQLite file runs on the machine that holds it).
    """

    claim_lock: Path | None = None

    def get_heartbeat_interval(self) -> int | None:
        return None

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state != TrialState.RUNNING or self.claim_lock is None:
            return super().set_trial_state_values(trial_id, state, values)
        with _locked(self.claim_lock):  # committed before the next process reads the state
            return super().set_trial_state_values(trial_id, state, values)


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as f:  # a new open file per use: threads of one process exclude each other too
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def make_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None) -> SweepStorage:
    """The storage for `url` (password masked or not), with a long SQLite lock timeout so that
    parallel jobs reporting their epochs wait for each other instead of failing."""
    kwargs: dict = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    url = connect_url(url)
    storage = SweepStorage(url, engine_kwargs=kwargs)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        storage.claim_lock = Path(url[len("sqlite:///") :] + ".lock")
    # set after construction: passed to __init__ they raise Optuna's ExperimentalWarning
    storage.heartbeat_interval, storage.grace_period = heartbeat_interval, grace_period
    return storage


# Workers starting together on an empty database race to create Optuna's tables.
_RACES = ("duplicate key", "already exists", "database is locked")


def open_study(
    url: str,
    study_name: str,
    *,
    sampler: Any,
    pruner: Any,
    direction: str,
    heartbeat_interval: int,
    grace_period: int,
    attempts: int = 5,
) -> tuple[optuna.Study, SweepStorage]:
    """Create the study, or load it when it exists, and its storage; SweeperError (password
    masked) when the storage cannot be reached."""
    for attempt in range(attempts):
        try:
            storage = make_storage(url, heartbeat_interval, grace_period)
            study = optuna.create_study(
                study_name=study_name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction=direction,
                load_if_exists=True,
            )
            return study, storage
        except Exception as e:
            msg = scrub(first_line(e))
            if attempt < attempts - 1 and any(race in msg for race in _RACES):
                time.sleep(0.5 + attempt)
                continue
            raise SweeperError(
                f"hydra.sweeper.storage: cannot open study {study_name!r} in {mask(url)}: {msg}"
            ) from None
    raise AssertionError("unreachable")
