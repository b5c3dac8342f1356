"""`n_trials` across workers: which trials count, kept in the study's storage so every worker agrees.

`n_trials` is the number of trained trials the *study* should have (feasible ones, whatever
their end), so that rerunning a command continues it and several workers sharing one storage
stop together at exactly n_trials. Each trial carries a system attribute SLOT:

    True   it counts in n_trials (feasible, launched or queued to run again)
    False  it does not (infeasible, failed before launch, or surplus put back in the queue)
    absent (or None) it is being sized by some worker: not decided yet

A feasible trial takes a slot when fewer than n_trials trials numbered before it hold one.
Trial numbers are given out by the storage, so every worker ranks the same way; a worker waits
(up to `wait` seconds) for older trials another worker is still sizing. A feasible trial past
the quota (two workers asked for the last slot at once) goes back to the queue (WAITING)
untrained, where a longer run may pick it up. A slot-holding trial whose process stopped is
queued again (WAITING) and claimed by exactly one worker: `set_trial_state_values(RUNNING)`
succeeds only from WAITING, under the database's row lock.

Each time a worker gets a trial (asked or claimed from the queue) it writes a fresh claim token
(system attribute OWNER) that its job also receives. A worker that was paused past the grace
period (Ctrl-Z, a suspended laptop) finds on waking that its trial was queued and claimed by
another: `owns` is False, so neither it nor its job may write to that trial or its folder again.
Queuing a trial clears the token first, so no moment shows the old claim on a re-queued trial.

Reads: the loop reads the whole study once per trial it ends and hands that read here (`look`).
It answers `full` for FRESH seconds, and gives the next new trial's rank where it decides it
(`settled_rank`: every older trial is in it, each holding a slot or finished without one);
otherwise `rank` reads again.

Public Optuna storage calls only; no Hydra. Unit-tested against SQLite (tests/test_slots.py).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from budgetsweep.contract.sweep import OWNER, SLOT

# How long a read of the study may answer `full` instead of a new one (seconds). `full` only spares
# asking for a suggestion that cannot run; the slot itself is given by `rank`, on a read that decides it.
FRESH = 1.0


class Slots:
    def __init__(self, storage: Any, study_name: str, n_trials: int, wait: float = 30.0) -> None:
        self.storage = storage
        # The study's trials are read through a Study, whose storage caches them (for a database:
        # finished trials are read once, then only the unfinished and new ones): a read costs the
        # same in a long study as in a short one.
        self.reader = optuna.load_study(study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler())
        self.study_id = storage.get_study_id_from_name(study_name)
        self.n_trials = n_trials
        self.wait = wait
        self.process = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.claims = itertools.count(1)
        self.seen: list[FrozenTrial] | None = None  # the last read of the whole study (`look`)
        self.seen_at = 0.0

    # ------------------------------------------------------------------------------ reading
    def trials(self, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return self.reader.get_trials(deepcopy=False, states=states)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def holders(self, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
        """The trials that count in n_trials, finished or not (of `trials`, else of a read now)."""
        return [t for t in (self.trials() if trials is None else trials) if t.system_attrs.get(SLOT) is True]

    def taken(self) -> int:
        return len(self.holders())

    def look(self, trials: list[FrozenTrial] | None = None) -> list[FrozenTrial]:
        """The study's trials, read now (or as the caller just read them through the same storage),
        kept for `full` and for the next slot's `rank`: one read of the study serves a trial's end,
        the next suggestion's check and its slot."""
        self.seen = self.trials() if trials is None else trials
        self.seen_at = time.monotonic()
        return self.seen

    def full(self) -> bool:
        """Whether the study holds n_trials slots, by a read at most FRESH seconds old."""
        recent = self.seen if time.monotonic() - self.seen_at < FRESH else None
        return len(self.holders(self.look() if recent is None else recent)) >= self.n_trials

    def holds(self, trial_id: int) -> bool:
        return self.storage.get_trial_system_attrs(trial_id).get(SLOT) is True

    def owns(self, trial_id: int, claim: str) -> bool:
        """Whether the trial is still RUNNING under this claim (not re-queued and taken by another)."""
        trial = self.storage.get_trial(trial_id)
        return trial.state == TrialState.RUNNING and trial.system_attrs.get(OWNER) == claim

    def claimed(self, trial_id: int, claim: str) -> dict[str, Any] | None:
        """The system attributes of a slot holder this process runs, while its claim is still on it
        (None once it was queued again: `requeue` clears the claim before the trial leaves RUNNING).
        Cheaper than `owns`, which reads the whole trial."""
        attrs = self.storage.get_trial_system_attrs(trial_id)
        return attrs if attrs.get(OWNER) == claim else None

    def rank(self, number: int) -> int:
        """Slot holders numbered before `number`; waits (briefly) for older trials whose
        feasibility another worker is still deciding."""
        settled = self.settled_rank(number)
        if settled is not None:
            return settled
        deadline = time.monotonic() + self.wait
        while True:
            older = [t for t in self.trials() if t.number < number]
            pending = [t for t in older if t.state == TrialState.RUNNING and t.system_attrs.get(SLOT) is None]
            if not pending or time.monotonic() > deadline:
                return sum(1 for t in older if t.system_attrs.get(SLOT) is True)
            time.sleep(0.1)

    def settled_rank(self, number: int) -> int | None:
        """The rank of trial `number` from the kept read (`look`), used once, where that read decides
        it: it holds every older trial (it was made just before trial `number` was created) and
        each of them is a slot holder, which stays one, or finished without a slot, which stays so
        (one still running or queued without a slot may yet take one). None: read again."""
        trials, self.seen = self.seen, None
        if trials is None or len(trials) != number:
            return None
        holders = [t.system_attrs.get(SLOT) is True for t in trials]
        if not all(holds or t.state.is_finished() for holds, t in zip(holders, trials)):
            return None
        return sum(holders)

    # ------------------------------------------------------------------------------ writing
    def claim(self, trial_id: int) -> str:
        """Mark a trial this worker just got (asked, or claimed from the queue) as its own: the token."""
        token = f"{self.process}:{next(self.claims)}"
        self.storage.set_trial_system_attr(trial_id, OWNER, token)
        return token

    def begin(self, trial_id: int) -> bool:
        """A trial this worker just got from `Study.ask`. True: it already holds a slot (a queued
        trial that `ask` handed out again); otherwise it is marked undecided while it is sized."""
        slot = self.storage.get_trial_system_attrs(trial_id).get(SLOT)
        if slot is False:  # surplus put back earlier: decided anew
            self.storage.set_trial_system_attr(trial_id, SLOT, None)
        return slot is True

    def take(self, trial_id: int, number: int) -> bool:
        """A feasible trial asks for a slot. False: n_trials is reached; the trial went back to the
        queue (WAITING), untrained, holding none."""
        if self.rank(number) >= self.n_trials:
            self.storage.set_trial_system_attr(trial_id, SLOT, False)
            self.storage.set_trial_system_attr(trial_id, OWNER, None)
            self.storage.set_trial_state_values(trial_id, TrialState.WAITING)
            return False
        self.storage.set_trial_system_attr(trial_id, SLOT, True)
        return True

    def refuse(self, trial_id: int) -> None:
        """The trial does not count: infeasible, or failed before it was launched."""
        self.storage.set_trial_system_attr(trial_id, SLOT, False)

    def claim_queued(self) -> int | None:
        """The id of a queued slot-holding trial, now RUNNING for this worker alone; None if none."""
        for t in self.trials(states=(TrialState.WAITING,)):
            if t.system_attrs.get(SLOT) is not True:
                continue
            trial_id = self.trial_id(t.number)
            try:  # atomic WAITING -> RUNNING: False when another worker got it first
                if self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    return trial_id
            except UpdateFinishedTrialError:
                continue
        return None

    def requeue(self, trial_id: int, claim: str | None = None) -> bool:
        """A trial whose process stopped. Holding a slot: back to the queue, to run again with its
        number and folder (True). Otherwise it never trained: FAIL, holding none (False).
        `claim`: only while the trial is still under that claim (a worker handing back its own)."""
        if claim is not None and not self.owns(trial_id, claim):
            return False
        if self.holds(trial_id):
            self.storage.set_trial_system_attr(trial_id, OWNER, None)  # the old claim ends before the queue
            self.storage.set_trial_state_values(trial_id, TrialState.WAITING)
            return True
        self.refuse(trial_id)
        self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        return False
