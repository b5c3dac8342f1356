"""The job's side of pruning, for any Hydra app: report intermediate values to the job's own trial.

In a training loop (any app run by `hydra/sweeper=budget_optuna`, or run.py's `optuna`):

    from budgetsweep.sweeper.trial_reporter import trial_reporter

    reporter = trial_reporter()          # a no-op outside a trial of our Optuna sweeper
    for epoch in range(1, epochs + 1):
        val_loss = train_one_epoch(...)
        if reporter.report(epoch, val_loss):   # the pruner says stop
            break
    return val_loss

The job finds its trial in its own Hydra config: the sweeper gives each job
`hydra.job.env_set.BUDGETSWEEP_TRIAL=<number>` and `BUDGETSWEEP_STUDY=<name>` (also set as
environment variables while the job runs) and pins `hydra.sweeper.storage` (password masked,
see `budgetsweep.contract.storage`), so the app needs no key of its own. The reporter loads the study from
that storage, rebuilds the configured pruner (Optuna does not keep the pruner in the storage:
a study loaded without one would silently use MedianPruner's defaults), reports each value as
the trial's intermediate value and returns `trial.should_prune()`. When it says stop it also
marks the trial (system attribute PRUNED_AT), so the sweeper tells Optuna PRUNED whatever the
app returns; raising `optuna.TrialPruned` from the job works too. Works in any process that
can reach the storage (basic launcher, joblib workers, submitit/SLURM jobs); a job that cannot
reach it logs one warning and trains on. Importing this module is light: Optuna is loaded on
the first report.

`run.py` asks `epoch_reporter(cfg)` for the trainer's `on_epoch` callback, the same reporter.

A job whose worker was paused past the grace period (Ctrl-Z, SIGSTOP, a suspended laptop) may
wake to find its trial re-queued and run by another worker in the same folder. Each job gets its
worker's claim on the trial (`BUDGETSWEEP_CLAIM`); the reporter checks it at every step and at
once when the process is continued (SIGCONT), and raises `TrialLost` when the trial is no longer
RUNNING under that claim. TrialLost is not an `Exception`, so the app's and the trainer's
`except Exception` do not catch it and record the run: the folder is the other worker's now.
"""

from __future__ import annotations

import logging
import signal
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from budgetsweep.contract import first_line
from budgetsweep.contract.sweep import CLAIM_ENV, OWNER, PRUNED_AT, STUDY_ENV, TRIAL_ENV

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

PRUNER_WHITELIST = ("optuna.pruners.*", "budgetsweep.sweeper.*")


@dataclass(frozen=True)
class TrialInfo:
    """The Optuna trial a Hydra job runs for."""

    study: str
    number: int
    storage: str  # password masked
    pruner_cfg: Any
    claim: str | None = None  # None: a sweeper that gives no claim


class TrialLost(BaseException):
    """This job's trial was re-queued and taken by another worker while this one was paused: stop
    at once, write nothing. A BaseException so that `except Exception` handlers let it through."""


def current_trial() -> TrialInfo | None:
    """The trial of our Optuna sweeper that this Hydra job runs; None outside one (a plain run,
    another sweeper, a trial rerun by hand)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        hc = HydraConfig.get()
    except ValueError:  # no Hydra config: not a Hydra job
        return None
    env = hc.job.env_set or {}
    number, study, sweeper_cfg = env.get(TRIAL_ENV), env.get(STUDY_ENV), hc.sweeper
    if number is None or study is None or sweeper_cfg is None:
        return None
    if "pruner" not in sweeper_cfg or not sweeper_cfg.get("storage"):
        return None  # not our sweeper
    claim = env.get(CLAIM_ENV)
    return TrialInfo(str(study), int(number), str(sweeper_cfg.storage), sweeper_cfg.pruner, claim and str(claim))


class NullReporter:
    """Outside a trial: reports nothing, never stops."""

    pruned = False
    number = None

    def report(self, step: int, value: float) -> bool:
        return False


def trial_reporter() -> TrialReporter | NullReporter:
    """The reporter of this job's trial: `report(step, value) -> stop now?`; a no-op outside one."""
    info = current_trial()
    if info is None:
        return NullReporter()
    return TrialReporter(info.storage, info.study, info.number, info.pruner_cfg, key="value", claim=info.claim)


def build_pruner(pruner_cfg: Any):
    """The configured pruner (`_target_` under optuna.pruners), NopPruner when null. Used by the
    sweeper (to check it before any trial) and by each job."""
    import optuna
    from hydra.utils import instantiate

    from .errors import SweeperError

    if pruner_cfg is None:
        return optuna.pruners.NopPruner()
    try:
        pruner = instantiate(pruner_cfg, _execution_whitelist_=PRUNER_WHITELIST)
    except Exception as e:
        raise SweeperError(f"hydra.sweeper.pruner: {first_line(e)}") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise SweeperError(f"hydra.sweeper.pruner: {type(pruner).__name__} is not an optuna pruner")
    return pruner


def epoch_reporter(cfg: Any) -> Callable[[int, dict], bool] | None:
    """The trainer's on_epoch callback for an Optuna trial (reports `val_acc`, or `val_loss` when
    that is the objective); None outside one."""
    info = current_trial()
    if info is None:
        return None
    key = cfg.objective if cfg.objective in ("val_acc", "val_loss") else "val_acc"
    reporter = TrialReporter(info.storage, info.study, info.number, info.pruner_cfg, key, claim=info.claim)
    reporter.last_step = int(cfg.epochs)  # a stop after the last epoch would save nothing
    return reporter


class TrialReporter:
    """report(step, value) -> stop now? (and on_epoch(epoch, row) for the trainer). Reporting
    problems never stop training: a job whose storage is unreachable logs one warning and
    trains to the end."""

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        number: int,
        pruner_cfg: Any,
        key: str = "val_acc",
        claim: str | None = None,
    ) -> None:
        self.storage_url, self.study_name, self.number = storage_url, study_name, number
        self.pruner_cfg, self.key = pruner_cfg, key
        self.trial: optuna.trial.Trial | None = None
        self.trial_id: int | None = None
        self.storage: Any = None
        self.broken = False
        self.pruned = False
        self.last_step: int | None = None  # the final step (run.py: its last epoch), never pruned at
        self.claim = claim
        self.claim_at: tuple[Any, int] | None = None  # (storage, trial id) for the claim checks
        self.busy = False  # inside a storage call: a SIGCONT check waits until it returns
        self.resumed = False  # continued (SIGCONT) since the last claim check
        if claim is not None:
            _watch_resume(self)

    def check_claim(self) -> None:
        """Raise TrialLost when the trial is no longer RUNNING under this job's claim. A storage
        that cannot be reached says nothing: the reporting warns, training goes on."""
        if self.claim is None or self.busy:
            return  # (busy: `resumed` stays set, and the call under way checks when it returns)
        from optuna.trial import TrialState

        self.resumed = False
        self.busy = True
        try:
            if self.claim_at is None:
                from .optuna_storage import make_storage

                storage = make_storage(self.storage_url, existing=True)
                study_id = storage.get_study_id_from_name(self.study_name)
                self.claim_at = storage, storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
            storage, trial_id = self.claim_at
            trial = storage.get_trial(trial_id)
        except Exception:
            return
        finally:
            self.busy = False
        if self.resumed:  # stopped and continued during the read: what it read may predate the pause
            self.check_claim()
            return
        if trial.state != TrialState.RUNNING or trial.system_attrs.get(OWNER) != self.claim:
            self.claim = None  # said once
            state = trial.state.name if trial.state != TrialState.RUNNING else "RUNNING under another worker"
            log.warning(
                "trial %d: taken over by another worker while this process was paused (now %s); stopping, "
                "its folder is left to that worker",
                self.number,
                state,
            )
            raise TrialLost(f"trial {self.number} was taken over by another worker (now {state})")

    def connect(self) -> optuna.trial.Trial | None:
        import optuna

        from .optuna_storage import make_storage

        storage = make_storage(self.storage_url, existing=True)
        study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),
            pruner=build_pruner(self.pruner_cfg),
        )
        if len(study.directions) > 1:
            return None  # Optuna prunes single-objective studies only (the sweeper refuses a pruner there)
        study_id = storage.get_study_id_from_name(self.study_name)
        self.storage = storage
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        return optuna.trial.Trial(study, self.trial_id)

    def __call__(self, epoch: int, row: dict) -> bool:
        """The trainer's on_epoch: report `row[key]` for this epoch."""
        return self.report(epoch, row[self.key])

    def report(self, step: int, value: float) -> bool:
        """Report `value` at `step` (e.g. the epoch, 1-based) to the trial; True: stop now.
        Raises TrialLost when another worker runs the trial now."""
        self.check_claim()
        if self.broken:
            return False
        self.busy = True
        try:
            if self.trial is None:
                self.trial = self.connect()
                if self.trial is None:
                    self.broken = True  # nothing to report to
                    return False
            self.trial.report(float(value), step)
            # at the last step the work is done: a stop would save nothing and lose a complete run
            prune = (self.last_step is None or step < self.last_step) and bool(self.trial.should_prune())
            if prune:
                self.storage.set_trial_system_attr(self.trial_id, PRUNED_AT, step)
        except Exception as e:
            from budgetsweep.contract.storage import scrub

            self.broken = True
            msg = scrub(first_line(e))
            log.warning("trial %d: cannot report to the study (%s); training on without pruning", self.number, msg)
            return False
        finally:
            self.busy = False
            if self.resumed:  # continued during the storage call: check before the trainer writes again
                self.check_claim()
        if prune:
            self.pruned = True
            log.info("trial %d: the pruner stops it after step %d (%s %.4f)", self.number, step, self.key, value)
        return prune


_resuming: weakref.ref | None = None  # the reporter of the job running in this process


def _on_resume(signum: int, frame: Any) -> None:
    """SIGCONT: the process was stopped (Ctrl-Z, SIGSTOP) and goes on; its trial may be another's now.
    Raised here, TrialLost stops the epoch under way before it writes to the folder."""
    reporter = _resuming() if _resuming is not None else None
    if reporter is not None:
        reporter.resumed = True
        reporter.check_claim()


def _watch_resume(reporter: TrialReporter) -> None:
    """Check the reporter's claim as soon as this process is continued (main thread only: where
    Python runs signal handlers). The handler holds the reporter weakly: a finished job's is gone."""
    global _resuming
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGCONT"):
        return
    _resuming = weakref.ref(reporter)
    if signal.getsignal(signal.SIGCONT) is not _on_resume:
        signal.signal(signal.SIGCONT, _on_resume)
