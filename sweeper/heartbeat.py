"""Heartbeats of the trials this process runs, and re-queuing the trials of processes that died.

The sweeper records a heartbeat (`RDBStorage.record_heartbeat`, the database's clock) every
`heartbeat.interval` seconds for each trial it runs, from a background thread. A RUNNING trial
whose heartbeat is older than `heartbeat.grace_period` was left by a process that died: any
worker (or the rerun) puts it back in the queue (`Slots.requeue`), to run again with the same
trial number in the same folder, where the trainer resumes from its checkpoint. Ctrl-C (or any
error) puts this process's own trials back at once.

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
through `sweeper._compat.stale_trial_ids`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError

from ._compat import stale_trial_ids
from .slots import Slots

log = logging.getLogger("sweeper.optuna")


class Heartbeats:
    def __init__(self, storage: Any, slots: Slots, interval: int, grace_period: int, study_dir: Path) -> None:
        self.storage, self.slots = storage, slots
        self.interval, self.grace_period = interval, grace_period
        self.study_dir = study_dir
        self.beating: set[int] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.beat_forever, name="heartbeat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def watch(self, trial_id: int) -> None:
        """Beat for this trial from now on (the first beat at once)."""
        self.storage.record_heartbeat(trial_id)
        with self.lock:
            self.beating.add(trial_id)

    def forget(self, trial_id: int) -> None:
        with self.lock:
            self.beating.discard(trial_id)

    def own(self) -> set[int]:
        with self.lock:
            return set(self.beating)

    def beat_forever(self) -> None:
        while not self.stopped.wait(self.interval):
            for trial_id in self.own():
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as e:  # a storage hiccup: the next beat may pass
                    log.debug("heartbeat of trial id %d failed: %s", trial_id, e)

    def reclaim_stale(self) -> None:
        """Trials of dead processes: slot holders back to the queue, the others (died while being
        sized) failed."""
        ours = self.own()
        for trial_id in stale_trial_ids(self.storage, self.slots.study_id):
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

    def requeue_own(self) -> None:
        """On the way out (Ctrl-C, an error): this process's trials go back to the queue now."""
        for trial_id in self.own():
            try:
                self.slots.requeue(trial_id)
            except Exception:  # best effort; the heartbeat's grace period covers the rest
                pass
