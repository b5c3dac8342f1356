"""Heartbeats of the trials this process runs, and re-queuing the trials of processes that died.

The sweeper records a heartbeat (`RDBStorage.record_heartbeat`, the database's clock) every
`heartbeat.interval` seconds for each trial it runs, from a background thread. A RUNNING trial
whose heartbeat is older than `heartbeat.grace_period` was left by a process that died: any
worker (or the rerun) puts it back in the queue (`Slots.requeue`), to run again with the same
trial number in the same folder, where the trainer resumes from its checkpoint. Ctrl-C (or any
error) puts this process's own trials back at once, each only while it is still under this
process's claim (`Slots.owns`): a worker that was paused past the grace period and wakes up
finds its trial taken by another worker, and neither beats for it nor queues it again.

Why not Optuna's `optuna.storages.RetryHeartbeatStaleTrialCallback` (checked in optuna 5.0.0,
`optuna/storages/_callbacks.py` and `_heartbeat.py`): it is run by `fail_stale_trials`, which
first sets the stale trial to FAIL and then `study.add_trial`s a *copy* as a new WAITING trial.
For us that breaks both guarantees:

- the copy gets a new trial number, so it would run in a new folder `<study>/<new number>/`,
  not in the interrupted one: the checkpoint there is never found, the trial trains from epoch
  1, and the old folder stays behind, half done, for analysis to find;
- the copy inherits the original's system attributes (our SLOT included) while the FAIL'd
  original keeps its own: two trials hold one slot, so the study ends with fewer than n_trials
  trained (or the accounting must learn to follow `retried_trial_number` chains), and the
  sampler sees a failure that never happened;
- and it only runs when `get_heartbeat_interval()` is set, which makes `Study.ask` warn that
  heartbeats belong to `Study.optimize` (we ask and tell ourselves).

Moving the same trial from RUNNING back to WAITING keeps its number, folder, parameters and
slot; no public Optuna call lists stale trials without failing them, so that one query goes
through `budgetsweep.sweeper._compat.stale_trial_ids`.

Storages without Optuna's heartbeats (a journal file, the gRPC proxy, another `_target_`
storage) get the same from a trial system attribute (HEARTBEAT): the time of the last beat on
the beating worker's clock. Across machines that needs clocks that agree within the grace
period, as NTP keeps them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from budgetsweep.contract.sweep import HEARTBEAT

from ._compat import stale_trial_ids
from .slots import Slots

log = logging.getLogger(__name__)


def beat(storage: Any, trial_id: int) -> None:
    """One heartbeat of a trial: Optuna's own on a database, else the HEARTBEAT attribute."""
    if isinstance(storage, RDBStorage):
        storage.record_heartbeat(trial_id)
    else:
        storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())


def stale(storage: Any, study_id: int, grace_period: float) -> list[int]:
    """The ids of RUNNING trials that beat once and not for `grace_period` seconds since."""
    if isinstance(storage, RDBStorage):
        return stale_trial_ids(storage, study_id)
    before = time.time() - grace_period
    return [
        storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        if isinstance(t.system_attrs.get(HEARTBEAT), (int, float)) and t.system_attrs[HEARTBEAT] < before
    ]


class Heartbeats:
    def __init__(self, storage: Any, slots: Slots, interval: int, grace_period: int, study_dir: Path) -> None:
        self.storage, self.slots = storage, slots
        self.interval, self.grace_period = interval, grace_period
        self.study_dir = study_dir
        self.beating: dict[int, str] = {}  # trial id -> this process's claim on it
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.beat_forever, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def watch(self, trial_id: int) -> str:
        """Claim this trial and beat for it from now on (the first beat at once); the claim token."""
        claim = self.slots.claim(trial_id)
        beat(self.storage, trial_id)
        with self.lock:
            self.beating[trial_id] = claim
        return claim

    def forget(self, trial_id: int) -> None:
        with self.lock:
            self.beating.pop(trial_id, None)

    def claim(self, trial_id: int) -> str | None:
        """This process's claim on a trial it runs; None once it lost it (or never had it)."""
        with self.lock:
            return self.beating.get(trial_id)

    def own(self) -> dict[int, str]:
        with self.lock:
            return dict(self.beating)

    def beat_forever(self) -> None:
        while not self.stopped.wait(self.interval):
            for trial_id, claim in self.own().items():
                try:
                    if self.slots.owns(trial_id, claim):
                        beat(self.storage, trial_id)
                    else:  # paused past the grace period: another worker runs it now (its job stops itself)
                        self.forget(trial_id)
                except Exception as e:  # a storage hiccup: the next beat may pass
                    log.debug("heartbeat of trial id %d failed: %s", trial_id, e)

    def reclaim_stale(self) -> None:
        """Trials of dead processes: slot holders back to the queue, the others (died while being
        sized) failed."""
        ours = self.own()
        for trial_id in stale(self.storage, self.slots.study_id, self.grace_period):
            if trial_id in ours:
                continue
            try:
                if self.slots.requeue(trial_id):
                    number = self.storage.get_trial_number_from_id(trial_id)
                    log.info(
                        "trial %d: its process stopped (no heartbeat for %d s); queued to run again in %s",
                        number,
                        self.grace_period,
                        self.study_dir / str(number),
                    )
            except UpdateFinishedTrialError:  # another worker finished or failed it meanwhile
                pass

    def requeue_own(self) -> int:
        """On the way out (Ctrl-C, an error): this process's trials go back to the queue now; how many."""
        queued = 0
        for trial_id, claim in self.own().items():
            try:
                queued += self.slots.requeue(trial_id, claim)
            except Exception:  # best effort; the heartbeat's grace period covers the rest
                pass
        return queued
