"""The Optuna side of the study's storage: an RDBStorage with our heartbeat settings, and opening the study.

URLs, the password variable, masking and the connect URL are the run contract's
(`budgetsweep.contract.storage`): the sweeper, its jobs and analysis connect the same way. Imported only
once a sweep (or a job reporting to its trial) needs the storage, never at Hydra's start.

The sweeper's storage rides out a database outage (a restart, a network blip): every storage
call that fails because the connection failed is retried with back-off for up to
`RETRY_SECONDS` (`$BUDGETSWEEP_STORAGE_RETRY`), then the sweep ends with one line
(`StorageUnavailable`); its running trials come back to the queue once their heartbeats are
older than the grace period. A full disk is not waited for (`disk_full`): the sweep ends with
one line and the rerun resumes.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import TrialState
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from budgetsweep.contract import first_line
from budgetsweep.contract.storage import (
    JOURNAL,
    StorageSpecError,
    connect_url,
    is_database_url,
    journal_file,
    mask,
    optuna_storage,
    scrub,
)
from budgetsweep.contract.sweep import STORAGE_RETRY_ENV
from budgetsweep.lockfile import locked

from ._compat import OPTUNA_RDB_LOGGER, PRIVATE_STORAGE_CALLS, RDB_SESSIONS, rdb_session, rdb_tables
from .errors import SweeperError

if TYPE_CHECKING:
    from .config import Direction

log = logging.getLogger(__name__)

RETRY_SECONDS = 60.0  # how long the sweeper's storage calls wait out a database outage
_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DISK_FULL_TEXT = ("database or disk is full", "No space left on device", "File too large", "Disk quota exceeded")


class StorageUnavailable(SweeperError):
    """The storage stayed unreachable for longer than the retries wait."""


def retry_seconds() -> float:
    """How long the sweeper waits out a database outage: $BUDGETSWEEP_STORAGE_RETRY, else RETRY_SECONDS."""
    text = os.environ.get(STORAGE_RETRY_ENV, "").strip()
    try:
        return max(float(text), 0.0) if text else RETRY_SECONDS
    except ValueError:
        raise SweeperError(f"${STORAGE_RETRY_ENV}: expected a number of seconds, got {text!r}") from None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what it was raised from or during, and so on (Optuna wraps the database's
    errors in its own)."""
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def disk_full(error: BaseException | str | None) -> bool:
    """Whether an error (or its one-line text) says a disk is full or a file may grow no more."""
    if error is None:
        return False
    if isinstance(error, str):
        return any(text in error for text in _DISK_FULL_TEXT)
    return any(
        (isinstance(seen, OSError) and seen.errno in _DISK_FULL_ERRNOS)
        or any(text in str(seen) for text in _DISK_FULL_TEXT)
        for seen in _causes(error)
    )


def connection_lost(error: BaseException) -> str | None:
    """Why a storage call failed when it failed for its connection (server down or restarting,
    connection dropped, SQLite locked), directly or under Optuna's StorageInternalError (whose own
    text blames the data): the database's message, worth retrying. None for any other error."""
    import sqlalchemy.exc as sa

    for seen in _causes(error):
        if isinstance(seen, sa.DBAPIError):
            lost = seen.connection_invalidated or isinstance(seen, (sa.OperationalError, sa.InterfaceError))
            return first_line(seen.orig or seen) if lost and not disk_full(seen) else None
    return None


class _QuietLostConnection(logging.Filter):
    """Drops Optuna's warning for a trials query that failed because the connection was lost.

    RDBStorage's trials query takes any OperationalError for the database's limit on query
    variables: it logs the whole error (the driver's text, the SQL, a link: several lines on
    stderr) and runs a plainer query, which fails the same way when the server is gone. The
    retry then says it in one line of its own (`SweepStorage.retrying`). Optuna logs from inside
    its except block, so the error is `sys.exc_info()` here. What `connection_lost` does not
    count as a lost connection (a full disk) is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = sys.exc_info()[1]
        return error is None or connection_lost(error) is None


def quiet_lost_connection_warnings() -> None:
    """Install `_QuietLostConnection` on Optuna's RDB storage logger, once per process."""
    logger = logging.getLogger(OPTUNA_RDB_LOGGER)
    if not any(isinstance(f, _QuietLostConnection) for f in logger.filters):
        logger.addFilter(_QuietLostConnection())


class _CtrlCAfterTheCall:
    """Ctrl-C during a storage call takes effect as the call returns. Raised inside SQLite's
    commit, KeyboardInterrupt can leave that connection's write transaction open: the database
    stays locked for every later call of the process, handing its trials back included (seen
    with the basic launcher, whose jobs report from the sweep's own main thread). Only the main
    thread is concerned (signals go there), and only while Python's own SIGINT handler is in
    place: an app's handler is left alone."""

    def __init__(self) -> None:
        self.depth, self.pending = 0, False

    def handler(self, signum: int, frame: Any) -> None:
        if self.depth:
            self.pending = True
        else:
            signal.default_int_handler(signum, frame)

    @contextlib.contextmanager
    def after_the_call(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self.handler)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth:
                self.raise_pending()

    def raise_pending(self) -> None:
        if self.pending and signal.getsignal(signal.SIGINT) == self.handler:  # (a bound method: ==)
            self.pending = False
            raise KeyboardInterrupt

    def sleep(self, seconds: float) -> None:
        """A wait between two attempts of a call: no transaction is open, Ctrl-C acts at once."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if threading.current_thread() is threading.main_thread():
                self.raise_pending()
            time.sleep(min(left, 0.1))


_CTRL_C = _CtrlCAfterTheCall()


class _HeldSession:
    """The session a batch keeps open. Each RDBStorage call commits and closes its session when
    it returns (`_compat.RDB_SESSION_SCOPE`); inside a batch the commit only flushes (later calls
    of the batch read what earlier ones wrote) and the close does nothing, so the batch's calls
    are one transaction. A rollback (a failed call) undoes the whole batch: noted, so that the
    batch's end says so instead of committing the rest."""

    def __init__(self, session: Any, batch: _BatchState) -> None:
        self._session, self._batch = session, batch

    def commit(self) -> None:
        self._session.flush()
        # what the next call loads is read again (in this transaction), as a call with a session of
        # its own would: Optuna's trial queries refresh what they load (optuna 5.1.0), any other
        # must not see a trial as this session first loaded it either
        self._session.expire_all()

    def close(self) -> None:
        pass

    def rollback(self) -> None:
        self._session.rollback()
        self._batch.undone = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class _BatchState(threading.local):
    """A thread's batch: `open` while one runs, `paused` during a call that commits on its own,
    `undone` once a failed call rolled it back."""

    open = False
    paused = False
    undone = False


class _Batches:
    """Stands in for RDBStorage's session factory (a session per thread, `_compat.RDB_SESSIONS`):
    hands out a `_HeldSession` while this thread runs a batch (`SweepStorage.batched`), the
    session itself otherwise (other threads, such as the heartbeat's, are never part of one)."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.local = _BatchState()

    def __call__(self) -> Any:
        session = self.sessions()
        if self.holding():
            return _HeldSession(session, self.local)
        return session

    def holding(self) -> bool:
        return self.local.open and not self.local.paused

    def commit(self, failing: bool = False) -> None:
        """Commit what the batch wrote so far (its session stays this thread's). Where a failed
        call undid it, SweeperError, unless the block is `failing` with an error of its own."""
        session = self.sessions()
        if self.local.undone:
            self.local.undone = False
            session.close()
            if failing:
                return
            raise SweeperError(
                "a storage write failed and undid the writes made with it; rerun the same command to resume"
            )
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def __getattr__(self, name: str) -> Any:  # remove(), ...
        return getattr(self.sessions, name)


class SweepStorage(RDBStorage):
    """RDBStorage with three changes.

    Heartbeats are recorded by the sweeper for the jobs it runs, not by `Study.optimize`:
    `heartbeat_interval`/`grace_period` drive the stale-trial query (`budgetsweep.sweeper.heartbeat`), while
    `get_heartbeat_interval()` stays None so that `Study.ask` does not warn that heartbeats belong
    to `optimize`, and Optuna never fails a stale trial on its own.

    Taking a queued trial (WAITING -> RUNNING, by `Slots.claim_queued` or `Study.ask`) must succeed
    for one worker only. RDBStorage reads the state with `SELECT ... FOR UPDATE`, a row lock on
    PostgreSQL; SQLite ignores it, and two processes both read WAITING and both "win" (seen in
    tests/test_slots.py). On SQLite that transition is therefore serialized by a lock file beside
    the database (every process using a SQLite file runs on the machine that holds it). The same
    lock file makes workers that start together on a new database create its tables in turn.

    On SQLite each transaction is a disk sync, and RDBStorage makes one per call: a trial's
    creation, parameters, sizing, claim, heartbeat and slot are some 30 of them. `batched()` makes
    the calls of a block one transaction (`_Batches`): a new trial is written with its claim and
    heartbeat or not at all (a full disk that fails the commit leaves no trial that nobody claims).
    Taking a queued trial still commits at once, with what the block wrote before it: the claim is
    decided under the claim lock, which must never be waited for while holding the database's
    write lock (another worker may hold the claim lock and wait for that one). A batch that fails
    ends the sweep (`_Batches.commit`), so Optuna's cache never outlives a trial it holds.
    """

    claim_lock: Path | None = None  # SQLite: taken around WAITING -> RUNNING
    creation_lock: Path | None = None  # SQLite: taken around creating the tables and the study
    retry_for = 0.0  # seconds a call retries a lost connection (the sweeper's storage: RETRY_SECONDS)
    shown_url = ""  # password masked, for messages
    _inside = threading.local()  # a retried call's own storage calls are not retried again

    def _batches(self) -> _Batches | None:
        sessions = getattr(self, RDB_SESSIONS, None)
        return sessions if isinstance(sessions, _Batches) else None

    def in_batch(self) -> bool:
        """Whether this thread's calls are part of a batch (a call retried alone would lose the rest)."""
        batches = self._batches()
        return batches is not None and batches.local.open

    def retrying(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        with _CTRL_C.after_the_call():
            return self._retrying(method, *args, **kwargs)

    def _retrying(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.retry_for or getattr(self._inside, "active", False) or self.in_batch():
            return method(self, *args, **kwargs)
        deadline, delay = None, 0.5
        self._inside.active = True
        try:
            while True:
                try:
                    result = method(self, *args, **kwargs)
                except Exception as e:
                    why = connection_lost(e)
                    if why is None:
                        raise
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self.retry_for
                        log.warning(
                            "storage %s unreachable (%s): retrying for up to %.0f s",
                            self.shown_url,
                            scrub(why),
                            self.retry_for,
                        )
                    if now >= deadline:
                        raise StorageUnavailable(
                            f"storage {self.shown_url} unreachable for {self.retry_for:.0f} s "
                            f"({scrub(why)}): rerun the same command once it is back to resume the study"
                        ) from None
                    _CTRL_C.sleep(min(delay, max(deadline - now, 0.0)))  # between attempts: Ctrl-C at once
                    delay = min(delay * 2, 8.0)
                    continue
                if deadline is not None:
                    log.info("storage %s reachable again", self.shown_url)
                return result
        finally:
            self._inside.active = False

    def get_heartbeat_interval(self) -> int | None:
        return None

    @contextlib.contextmanager
    def batched(self) -> Iterator[None]:
        """The storage calls of this thread in the block: one transaction, committed as it ends
        (SQLite only: a server's connection may drop, and its calls must stay retried one by one).
        A nested block joins the outer one."""
        batches = self._batches()
        if batches is None or batches.local.open:
            yield
            return
        batches.local.open, failing = True, True
        try:
            yield
            failing = False
        finally:
            batches.local.open = False
            with _CTRL_C.after_the_call():
                batches.commit(failing)

    @contextlib.contextmanager
    def _committing(self) -> Iterator[None]:
        """A call that commits on its own: what the batch wrote before it is committed first."""
        batches = self._batches()
        if batches is None or not batches.holding():
            yield
            return
        batches.commit()
        batches.local.paused = True
        try:
            yield
        finally:
            batches.local.paused = False

    def set_trial_attrs(self, trial_id: int, user: dict[str, Any], system: dict[str, Any]) -> None:
        """Several attributes of one trial: one read of the trial and one statement per table,
        where RDBStorage spends a read and a write on each (`budgetsweep.sweeper.trial_attrs`).
        SQLite and PostgreSQL; another database gets them call by call."""
        insert = _UPSERTS.get(self.engine.name)
        if insert is None or (self.engine.name == "sqlite" and sqlite3.sqlite_version_info < (3, 24, 0)):
            set_trial_attrs_each(self, trial_id, user, system)
            return
        trials, user_table, system_table = rdb_tables()
        with rdb_session(self) as session:
            self.check_trial_is_updatable(trial_id, trials.find_or_raise_by_id(trial_id, session).state)
            for table, attrs in ((user_table, user), (system_table, system)):
                if attrs:
                    rows = insert(table).values(
                        [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in attrs.items()]
                    )
                    new_value = {"value_json": rows.excluded.value_json}
                    session.execute(
                        rows.on_conflict_do_update(index_elements=[table.trial_id, table.key], set_=new_value)
                    )

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state != TrialState.RUNNING:
            return super().set_trial_state_values(trial_id, state, values)
        with self._committing():
            if self.claim_lock is None:
                return super().set_trial_state_values(trial_id, state, values)
            with locked(self.claim_lock):  # committed before the next process reads the state
                return super().set_trial_state_values(trial_id, state, values)


def set_trial_attrs_each(storage: BaseStorage, trial_id: int, user: dict[str, Any], system: dict[str, Any]) -> None:
    """A trial's attributes through the storage API, a call each (any storage)."""
    for key, value in user.items():
        storage.set_trial_user_attr(trial_id, key, value)
    for key, value in system.items():
        storage.set_trial_system_attr(trial_id, key, value)


# The dialects whose INSERT takes ON CONFLICT DO UPDATE (an attribute written again replaces its value)
_UPSERTS: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}


def batched(storage: Any) -> contextlib.AbstractContextManager:
    """`SweepStorage.batched` where the storage is ours, else nothing."""
    return storage.batched() if isinstance(storage, SweepStorage) else contextlib.nullcontext()


# Every storage call the sweeper and Optuna's ask/tell make (BaseStorage's API, and the stale-trial query).
_RETRIED = (
    "create_new_study",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "get_trial_params",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "record_heartbeat",
    "set_trial_attrs",
    *PRIVATE_STORAGE_CALLS,
)


def _retried(name: str) -> Any:
    method = getattr(SweepStorage, name)

    @functools.wraps(method)
    def call(self: SweepStorage, *args: Any, **kwargs: Any) -> Any:
        return self.retrying(method, *args, **kwargs)

    return call


for _name in _RETRIED:
    if hasattr(SweepStorage, _name):
        setattr(SweepStorage, _name, _retried(_name))


# Creating Optuna's tables takes a second; a holder of the lock for longer is paused (Ctrl-Z,
# SIGSTOP) while it opened an existing study: the others go on without waiting for it.
CREATION_WAIT = 20.0


def _sqlite_lock(url: str, suffix: str = ".lock") -> Path | None:
    """A lock file beside an SQLite database file; None for a server or `:memory:`."""
    prefix = "sqlite:///"
    return Path(url[len(prefix) :] + suffix) if url.startswith(prefix) and ":memory:" not in url else None


def _creating(lock: Path | None) -> contextlib.AbstractContextManager:
    """`_locked(lock)` where a lock file can be made: around what creates Optuna's tables or the study.

    SQLite workers started together on a new folder all find the database empty: each creates
    Optuna's tables and writes their schema version, and all but one fail (`UNIQUE constraint
    failed: alembic_version.version_num`). Taken in turn, the later ones find them made. A folder
    that is missing or read-only gets no lock file: SQLite reports it in its own words."""
    if lock is None or not os.access(lock.parent, os.W_OK):
        return contextlib.nullcontext()
    return locked(lock, wait=CREATION_WAIT)


def make_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    retry_for: float = 0.0,
    existing: bool = False,
) -> BaseStorage:
    """The storage for a storage spec (`budgetsweep.contract.storage`). A database URL (password
    masked or not) gets a SweepStorage, with a long SQLite lock timeout so that parallel jobs
    reporting their epochs wait for each other instead of failing. `retry_for`: seconds each
    call waits out a lost connection (0: none, a job's reporter just warns). `existing`: the
    study is known to exist (a job's reporter), so its tables are made and the creation lock is
    not taken. A journal file, a gRPC proxy or a `_target_` node: Optuna's storage as it is (the
    journal takes its own lock for each write; heartbeats: `budgetsweep.sweeper.heartbeat`)."""
    if not is_database_url(url):
        return opened(url, create=not existing)
    kwargs: dict = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    quiet_lost_connection_warnings()
    shown = mask(url)
    url = connect_url(url)
    # Two lock files: a worker paused while it opened the database (holding the creation lock)
    # must not stall the claims of the other workers.
    creation_lock = _sqlite_lock(url, ".create.lock")
    # constructing it creates the tables of a new database
    with contextlib.nullcontext() if existing else _creating(creation_lock):
        storage = SweepStorage(url, engine_kwargs=kwargs)
    storage.retry_for, storage.shown_url = retry_for, shown
    storage.claim_lock, storage.creation_lock = _sqlite_lock(url), creation_lock
    # set after construction: passed to __init__ they raise Optuna's ExperimentalWarning
    storage.heartbeat_interval, storage.grace_period = heartbeat_interval, grace_period
    if url.startswith("sqlite"):
        setattr(storage, RDB_SESSIONS, _Batches(getattr(storage, RDB_SESSIONS)))
    return storage


class SweepJournal(JournalStorage):
    """Optuna's JournalStorage on a journal file, with the claim of a queued trial taken in turn.

    The journal orders every write, so of two workers that move one WAITING trial to RUNNING
    only the first counts; but the loser can still be told it won: JournalStorage answers from
    the last trial its worker created or claimed, and a worker that once held this trial (a
    paused worker whose trial was queued again) still has it on record (checked in optuna 5.1.0,
    `JournalStorage.set_trial_state_values`). Taken under a lock file beside the journal (an
    O_EXCL file, which NFS honours: Optuna's JournalFileOpenLock), the state is read after the
    previous claim was written, and a trial no longer WAITING is refused before that answer."""

    def __init__(self, path: Path) -> None:
        super().__init__(JournalFileBackend(str(path)))
        self.claim_lock = JournalFileOpenLock(f"{path}.claim")

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state != TrialState.RUNNING:
            return super().set_trial_state_values(trial_id, state, values)
        self.claim_lock.acquire()
        try:
            return super().set_trial_state_values(trial_id, state, values)
        finally:
            self.claim_lock.release()


PROXY_WAIT = 30.0  # seconds a worker waits for the gRPC proxy to answer (it may be starting too)


def opened(spec: str, create: bool = False) -> BaseStorage:
    """A storage that is not a database URL, opened; SweeperError (one line) when it cannot be."""
    try:
        if spec.startswith(JOURNAL):
            return SweepJournal(journal_file(spec, create=create))
        storage = optuna_storage(spec, create=create, wait=PROXY_WAIT)
    except ImportError as e:
        extra = " (pip install 'budgetsweep[grpc]')" if "grpc" in str(e) else ""
        raise SweeperError(f"hydra.sweeper.storage={spec}: {first_line(e)}{extra}") from None
    except StorageSpecError as e:
        raise SweeperError(f"hydra.sweeper.storage: {e}") from None
    except Exception as e:  # a _target_ node Hydra cannot instantiate, a folder that is missing
        raise SweeperError(f"hydra.sweeper.storage={spec}: {scrub(first_line(e))}") from None
    if isinstance(storage, str):  # a _target_ node that names a URL another way
        return make_storage(storage)
    return storage


# Workers starting together on an empty PostgreSQL database race to create Optuna's tables
# (SQLite workers take turns: `_creating`).
_RACES = ("duplicate key", "already exists", "database is locked")


def _race(error: BaseException) -> bool:
    """Whether opening the study failed because another worker was creating the same tables or
    study at that moment: said by the database (a duplicate key, a table that exists), under
    Optuna's StorageInternalError too ("An exception is raised during the commit")."""
    import sqlalchemy.exc as sa

    return any(
        isinstance(seen, sa.IntegrityError) or any(race in str(seen) for race in _RACES) for seen in _causes(error)
    )


def open_study(
    url: str,
    study_name: str,
    *,
    sampler: Any,
    pruner: Any,
    direction: Direction,
    heartbeat_interval: int,
    grace_period: int,
    attempts: int = 5,
) -> tuple[optuna.Study, BaseStorage]:
    """Create the study, or load it when it exists, and its storage; SweeperError (password
    masked) when the storage cannot be reached."""
    for attempt in range(attempts):
        try:
            storage = make_storage(url, heartbeat_interval, grace_period, retry_for=retry_seconds())
            # one SQLite worker creates the study, the others load it
            with _creating(getattr(storage, "creation_lock", None)):
                study = optuna.create_study(
                    study_name=study_name,
                    storage=storage,
                    sampler=sampler,
                    pruner=pruner,
                    direction=direction,
                    load_if_exists=True,
                )
            return study, storage
        except SweeperError:
            raise
        except Exception as e:
            # the database's own words ("too many clients already"), not Optuna's guess about the data
            msg = scrub(connection_lost(e) or first_line(e))
            if attempt < attempts - 1 and _race(e):
                time.sleep(0.5 + attempt)
                continue
            raise SweeperError(
                f"hydra.sweeper.storage: cannot open study {study_name!r} in {mask(url)}: {msg}"
            ) from None
    raise AssertionError("unreachable")
