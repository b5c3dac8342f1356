"""The study loop of one sweeper process: ask, size, take a slot, launch, tell.

What holds: a suggestion is composed and sized before it may take a slot (`feasibility`), so an
infeasible one is told PRUNED with its constraint, never launched, and never uses up n_trials;
a feasible one runs only while it holds a slot (`slots`), always in `<study dir>/<trial number>/`.
Queued trials (interrupted, here or by another worker: `heartbeat`) run again first, before
anything new is asked. The loop ends when the study holds n_trials slots and none of them runs
anywhere, or, with `timeout`, once this process's time is up and its own trials ended. On any
way out this process's jobs stop before their trials go back to the queue: a job must never
write to a folder whose trial another worker may take.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import logging
import signal
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from budgetsweep.contract import FAILED_STATUSES, first_line
from budgetsweep.contract.storage import scrub
from budgetsweep.contract.sweep import CLAIM_ENV, LAUNCHED, PRUNED_AT
from budgetsweep.contract.values import quote, short_value

from .composed import ComposedOnce
from .errors import SweeperError
from .failures import FailurePolicy
from .feasibility import Patcher, compose, size_trial
from .heartbeat import Heartbeats
from .launch import Jobs, job_overrides, outcome, record_prefix, run_metrics, tell
from .optuna_storage import StorageUnavailable, batched, disk_full
from .progress import sweep_progress
from .settings import OptunaSettings, objective_names
from .slots import Slots
from .space import trial_overrides
from .study_setup import Sweep, check_objectives, log_start, objective_name
from .summary import Progress, failure_hint, write_results
from .trial_attrs import set_attrs
from .trial_record import record_trial, trial_name

RECLAIM_EVERY = 1.0  # seconds between two looks for trials of dead processes
REPORTED = ("val_acc", "test_acc", "params", "flops")  # metrics.json keys kept on the trial (user attributes)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def setup_frozen() -> Any:
    """The objects alive as the loop starts (the imports, Hydra's and the study's setup) kept out
    of the garbage collector's full passes while it runs (`gc.freeze`): each pass scanned them all,
    about 4 ms of an instant trial's 80, more with torch imported. Garbage made in the loop is
    collected as before."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class Running:
    trial: optuna.Trial
    trial_id: int
    started: float  # time.monotonic()


class StudyLoop:
    """One run of the study loop (the state of this process)."""

    def __init__(
        self,
        settings: OptunaSettings,
        sweep: Sweep,
        hydra_context: Any,
        config: DictConfig,
        launcher: Any,
        parallel: int,
    ) -> None:
        self.settings, self.sweep = settings, sweep
        self.hydra_context, self.config = hydra_context, config
        self.study = sweep.study
        self.storage = sweep.storage
        self.n_trials = sweep.n_trials
        self.parallel = parallel
        self.slots = Slots(self.storage, self.study.study_name, self.n_trials, wait=settings.grace_period)
        self.heartbeats = Heartbeats(
            self.storage, self.slots, settings.heartbeat_interval, settings.grace_period, sweep.study_dir
        )
        self.jobs = Jobs(launcher, parallel)
        self.in_flight: dict[cf.Future, Running] = {}
        self.suggested = 0
        self.infeasible: Counter = Counter()
        self.trained: Counter = Counter()
        self.failures = FailurePolicy(
            self.n_trials, settings.n_jobs, settings.max_failure_rate, settings.max_failed_share
        )
        self.stopping: str | None = None  # why no trial starts any more: failures, max_suggestions
        self.record = record_prefix(config, settings.record)
        self.deadline = None if settings.timeout is None else time.monotonic() + settings.timeout
        self.timed_out = False
        self.objective = objective_name(settings, config)
        sizer = settings.sizer
        budgeted = sizer.budget(config)[0] is not None or sizer.flops_budget(config)[0] is not None
        loader = hydra_context.config_loader  # Hydra's own: the patcher's composes are not launched
        loader = loader.loader if isinstance(loader, ComposedOnce) else loader
        self.patcher = (
            Patcher(config, lambda groups: loader.load_sweep_config(config, groups))
            if budgeted and sizer.size_fn is None
            else None
        )
        self.progress = Progress(self.study, self.objective, self.n_trials)
        self.bar: Any = None  # the terminal's progress bar (`progress.sweep_progress`), while the loop runs

    # --------------------------------------------------------------------------------- main
    def run(self) -> None:
        log_start(self.sweep, self.settings, self.config, self.slots.holders(), self.parallel)
        check_objectives(self.study, self.settings, self.config)
        if self.settings.timeout is not None:
            log.info("timeout %g s: no trial starts after it (this process's clock)", self.settings.timeout)
        self.heartbeats.start()
        # a log line that cannot be written (a full disk) is dropped: Python would print a traceback for
        # each one (in-process jobs too), burying the one line that says why the sweep stopped
        logging.raiseExceptions = False
        done = sum(1 for t in self.slots.holders() if t.state.is_finished())
        try:
            with sweep_progress(self.n_trials, min(done, self.n_trials)) as self.bar, setup_frozen():
                self.loop()
        except KeyboardInterrupt:
            with contextlib.suppress(ValueError):  # (main thread only)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the hand-back short
            queued = self.hand_back()
            raise SweeperError(
                f"Optuna sweep {self.study.study_name!r}: interrupted; {queued} running trial(s) queued again. "
                f"Rerun the same command to resume them"
            ) from None
        except StorageUnavailable:  # nothing to hand back to: the heartbeats go stale, the rerun takes the trials
            self.jobs.stop()
            raise
        except BaseException as e:
            self.hand_back()  # SystemExit, an error: our trials go back to the queue now
            self.raise_if_disk_full(e)
            raise
        finally:
            self.heartbeats.stop()
            self.jobs.close()
        try:
            self.end()
        except Exception as e:
            self.raise_if_disk_full(e)
            raise

    def hand_back(self) -> int:
        """Stop this process's jobs, then queue their trials again (in that order: a job must not write
        to a folder whose trial another worker may take); how many were queued."""
        self.jobs.stop()
        return self.heartbeats.requeue_own()

    def raise_if_disk_full(self, error: BaseException | str | None) -> None:
        """A full disk (or a file-size limit) is the machine's problem, not a trial's: one line."""
        if error is not None and not isinstance(error, SweeperError) and disk_full(error):
            raise SweeperError(
                f"Optuna sweep {self.study.study_name!r}: the disk is full ({scrub(first_line(error))}): free some "
                f"space and rerun the same command, which resumes the trials that were running"
            ) from None

    def loop(self) -> None:
        next_reclaim = 0.0
        while True:
            # a stale heartbeat is a grace period old: no need to look for one at each trial
            if time.monotonic() >= next_reclaim:
                self.heartbeats.reclaim_stale()
                next_reclaim = time.monotonic() + RECLAIM_EVERY
            while len(self.in_flight) < self.parallel and self.stopping is None:
                if not self.start_one():
                    break
            if self.in_flight:
                done, _ = cf.wait(list(self.in_flight), timeout=1.0, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    self.finish(future)
                continue
            if self.stopping is not None or self.timed_out:
                return
            if all(t.state.is_finished() for t in self.slots.holders()):
                return
            # others' trials still running (another worker), or a dead process's not yet stale
            time.sleep(min(1.0, self.settings.heartbeat_interval))

    # ------------------------------------------------------------------------- start a trial
    def start_one(self) -> bool:
        """Start the next trial: a queued one of the study (interrupted earlier), else a new
        suggestion while the study has fewer than n_trials slots. False: nothing to start."""
        with batched(self.storage):  # asked, claimed, sized on the sweep's config: one transaction (SQLite)
            nxt = self.next_trial()
            if nxt is None:
                return False
            trial, trial_id, holds_slot = nxt
            # the worker's claim: the job checks it each epoch and stops once another worker took the trial
            claim = quote(str(self.heartbeats.claim(trial_id)))
            params = trial_overrides(trial, self.sweep.space, self.settings.custom_search_space, self.config)
            job = job_overrides(trial.number, self.study.study_name, params, self.record)
            overrides = [*job, f"++hydra.job.env_set.{CLAIM_ENV}={claim}"]
            sizing = None if holds_slot else self.size_before_compose(trial, params)
            if sizing is not None and not sizing.fits:
                self.infeasible_told(trial, trial_id, sizing)
                return True
        # composed outside the transaction: it holds SQLite's write lock, which the jobs wait for
        if not holds_slot and not self.composed_and_sized(trial, trial_id, sizing, overrides):
            return True
        return self.launch(trial, trial_id, overrides, take=not holds_slot)

    def composed_and_sized(self, trial: optuna.Trial, trial_id: int, sizing: Any, overrides: list[str]) -> bool:
        """Compose a new suggestion's config (kept for its launch) and size it from that config
        when it is not sized yet; one over the budget is told infeasible here (False)."""
        try:
            cfg = compose(self.hydra_context, self.config, overrides)
        except Exception as e:  # a key or a type the config does not accept: the space is wrong
            self.drop(trial, trial_id, TrialState.FAIL, "invalid")
            ours = ("hydra.", f"{self.settings.record}.") if self.settings.record else ("hydra.",)
            shown = " ".join(o for o in overrides if not o.lstrip("+").startswith(ours))
            raise SweeperError(
                f"trial {trial.number}: cannot compose the config for {shown}: {first_line(e)}"
            ) from None
        if sizing is not None:  # sized on the sweep's config, within the budget
            return True
        with batched(self.storage):
            try:
                sizing = size_trial(trial, cfg, self.settings.sizer)
            except SweeperError:
                self.drop(trial, trial_id, TrialState.FAIL, "unsizable")
                raise
            if sizing is None or sizing.fits:
                return True
            self.infeasible_told(trial, trial_id, sizing)
            return False

    def infeasible_told(self, trial: optuna.Trial, trial_id: int, sizing: Any) -> None:
        """An over-budget (or invalid) suggestion: told PRUNED with its constraints, never launched."""
        self.drop(trial, trial_id, TrialState.PRUNED)
        self.infeasible[sizing.status] += 1
        enqueued = " (enqueued)" if trial.user_attrs.get("enqueued") else ""
        log.info("trial %d%s: %s, not trained: %s", trial.number, enqueued, sizing.status, sizing.error)

    def next_trial(self) -> tuple[optuna.Trial, int, bool] | None:
        """(trial, its id, whether it already holds a slot), now RUNNING for this process."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.timed_out = True
            return None
        full = self.slots.full()
        if full or self.suggested >= self.settings.max_suggestions:  # nothing new: only queued trials run
            trial_id = self.slots.claim_queued()
            if trial_id is not None:
                self.heartbeats.watch(trial_id)
                return optuna.Trial(self.study, trial_id), trial_id, True
            if not full:
                self.stop_suggesting()
            return None
        try:  # a queued trial first, if any (`Study.ask` takes it under the same claim; `Slots.begin` knows it)
            trial = self.study.ask(fixed_distributions=self.sweep.space.distributions)
        except ImportError as e:  # a sampler's optional package (budgetsweep.sweeper.settings checks the known ones)
            raise SweeperError(
                f"hydra.sweeper.sampler: {type(self.study.sampler).__name__} needs a package that is not "
                f"installed ({first_line(e)}): pip install {e.name or 'it'}"
            ) from None
        trial_id = self.slots.trial_id(trial.number)
        self.heartbeats.watch(trial_id)
        holds_slot = self.slots.begin(trial_id)
        self.suggested += not holds_slot  # a queued trial ran before: not a suggestion
        return trial, trial_id, holds_slot

    def size_before_compose(self, trial: optuna.Trial, params: list[str]) -> Any:
        """The trial sized on the sweep's config with its parameters set (`feasibility.Patcher`),
        where that is safe and there is a budget; None: size it from the composed config."""
        if self.patcher is None:
            return None
        with self.patcher.patched(params) as cfg:
            if cfg is None:
                return None
            try:
                return size_trial(trial, cfg, self.settings.sizer)
            except Exception:  # what the compose and its sizing would say, in their words
                return None

    def launch(self, trial: optuna.Trial, trial_id: int, overrides: list[str], take: bool) -> bool:
        """Launch the trial's job in its folder; with `take`, once it got a slot (False: the other
        workers reached n_trials first; the trial is queued again, untrained)."""
        run_dir = self.sweep.study_dir / str(trial.number)
        # the slot and the launch's marks: one transaction; nothing is written before `Slots.rank`
        # reads (it may wait for another worker's sizing to be written)
        with batched(self.storage):
            if take and not self.slots.take(trial_id, trial.number):
                self.heartbeats.forget(trial_id)
                log.info(
                    "trial %d: n_trials=%d already reached by other workers; left queued, untrained",
                    trial.number,
                    self.n_trials,
                )
                return False
            # a new suggestion was never launched; a queued trial may have been, before an interruption
            resumed = not take and bool(self.storage.get_trial_system_attrs(trial_id).get(LAUNCHED))
            metrics = run_metrics(run_dir)
            if metrics is not None:
                if not resumed:
                    self.drop(trial, trial_id, TrialState.FAIL, "folder taken")
                    raise SweeperError(
                        f"{run_dir} already holds a finished run that is not trial {trial.number} of study "
                        f"{self.study.study_name!r} (was the study's storage deleted?): move that folder away or "
                        f"set hydra.sweeper.study_name / hydra.sweeper.dir"
                    )
                if metrics["status"] not in FAILED_STATUSES:
                    # it finished, but its sweeper died before telling Optuna
                    log.info("trial %d: finished before the interruption; reading %s", trial.number, run_dir)
                    self.in_flight[self.jobs.already_done()] = Running(trial, trial_id, time.monotonic())
                    return True
                # a failure recorded before the interruption may be stale (data fixed since): run it again
            set_attrs(trial, {"run_dir": str(trial.number)}, {LAUNCHED: True})
        n_params = trial.user_attrs.get("params")
        log.info(
            "trial %d: %s%s: %s",
            trial.number,
            "resuming in its folder" if resumed else "launching",
            f" ({n_params:,} params)" if n_params else "",
            " ".join(f"{k}={short_value(v)}" for k, v in trial.params.items()),
        )
        started = time.monotonic()
        self.in_flight[self.jobs.start(overrides, trial.number)] = Running(trial, trial_id, started)
        self.failures.launch(trial.number)
        return True

    def drop(self, trial: optuna.Trial, trial_id: int, state: TrialState, status: str | None = None) -> None:
        """End a trial that will not be trained (infeasible, or refused before launch)."""
        if status is not None:
            trial.set_user_attr("status", status)
        self.slots.refuse(trial_id)
        tell(self.study, trial, None, state)
        self.heartbeats.forget(trial_id)

    # ------------------------------------------------------------------------- finish a trial
    def finish(self, future: cf.Future) -> None:
        running = self.in_flight.pop(future)
        trial = running.trial
        run_dir = self.sweep.study_dir / str(trial.number)
        with batched(self.storage):  # the claim read, the outcome written, the trial ended: one transaction
            claim = self.heartbeats.claim(running.trial_id)
            attrs = None if claim is None else self.slots.claimed(running.trial_id, claim)
            if attrs is None:
                self.lost(running)
                return
            pruned_at = attrs.get(PRUNED_AT)
            n_values = len(self.study.directions)
            result = outcome(future, run_dir, pruned_at, self.settings.objectives, n_values, self.objective)
            if result.status == "failed":  # a job that could not write: not told, queued again with the others
                self.raise_if_disk_full(result.error)
            attrs = {"status": result.status}
            for key in REPORTED:  # what analysis shows beside the objective, without reading the folder
                if result.metrics and isinstance(result.metrics.get(key), (int, float)):
                    attrs[key] = result.metrics[key]
            if result.error:
                attrs["error"] = scrub(result.error)
            set_attrs(trial, attrs)
            tell(self.study, trial, result.value, result.state)
        self.heartbeats.forget(running.trial_id)
        self.trained[result.status] += 1
        self.bar.update(1)
        took, failure = time.monotonic() - running.started, None
        names = objective_names(self.settings.objectives, self.objective, n_values)
        directions = [d.name.lower() for d in self.study.directions]
        # this trial as told, the progress line's study, and (kept by `Slots.look`) the next suggestion's slot
        trials = self.slots.look(self.study.get_trials(deepcopy=False))
        frozen = next((t for t in reversed(trials) if t.number == trial.number), None)
        frozen = frozen or self.storage.get_trial(running.trial_id)
        record_trial(run_dir, frozen, self.study.study_name, result, names, directions, took)
        name = trial_name(frozen)  # with its SLURM job, where it ran in one
        if result.status == "completed":
            values = result.value if isinstance(result.value, list) else [result.value]
            shown = ",".join(f"{v:.6g}" for v in values)
            so_far = self.progress(trials)
            log.info("trial %s: completed, %s=%s (%.0f s); %s", name, self.objective, shown, took, so_far)
        elif result.status == "pruned":
            so_far = self.progress(trials)
            epochs = result.epochs or "?"
            log.info("trial %s: pruned after %s epoch(s) (%.0f s); %s", name, epochs, took, so_far)
        else:
            log.warning("trial %s: %s: %s (see %s)", name, result.status, result.error or "-", run_dir)
            if result.counted:  # a NaN result: FAIL in Optuna, as with the plugin, but the sweep goes on
                failure = (result.status, result.error or "-")
        self.failures.end(trial.number, failure)
        self.stop_for(self.failures.judge_batches())

    def lost(self, running: Running) -> None:
        """A trial queued again and taken by another worker while this process was paused past the
        grace period: the result is that worker's to tell; this one's job stopped itself
        (budgetsweep.sweeper.trial_reporter.TrialLost) and wrote nothing."""
        self.heartbeats.forget(running.trial_id)
        self.failures.end(running.trial.number)
        log.warning(
            "trial %d: taken over by another worker while this process was paused (no heartbeat for more than "
            "grace_period=%d s); left to that worker",
            running.trial.number,
            self.settings.grace_period,
        )

    def stop_for(self, reason: str | None) -> None:
        """Stop starting trials for this reason, unless an earlier one stopped them already."""
        if self.stopping is None:
            self.stopping = reason

    # ------------------------------------------------------------------------------- the end
    def stop_suggesting(self) -> None:
        trained = sum(self.trained.values()) + len(self.in_flight)
        infeasible = ", ".join(f"{k}: {v}" for k, v in sorted(self.infeasible.items())) or "-"
        self.stop_for(
            f"stopped after {self.suggested} suggestions (hydra.sweeper.max_suggestions="
            f"{self.settings.max_suggestions}): {sum(self.infeasible.values())} were over budget.max_params or "
            f"invalid ({infeasible}), {trained} trained; the search space is mostly infeasible: narrow "
            f"hydra.sweeper.params or raise budget.max_params"
        )

    def end(self) -> None:
        self.stop_for(self.failures.judge_batches(final=True))
        completed = write_results(self.study, self.sweep.study_dir, self.objective)
        if self.timed_out:
            log.info(
                "Stopped on time: hydra.sweeper.timeout=%g s reached, no trial started after it; %d trained in "
                "this run. Rerun the command to continue the study.",
                self.settings.timeout,
                sum(self.trained.values()),
            )
        hint = failure_hint(self.failures.failed, self.sweep.study_dir, str(self.config.hydra.job.name))
        if self.stopping is not None:
            raise SweeperError(f"Optuna sweep {self.study.study_name!r}: {self.stopping}. {hint}")
        if not completed:
            raise SweeperError(f"Optuna sweep {self.study.study_name!r}: no trial completed. {hint}")
