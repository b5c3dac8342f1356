"""Launching trials' jobs through Hydra's launcher, and reading how each one ended.

A trial's job runs in `<study dir>/<trial number>/` (its `hydra.sweep.subdir`). With the basic
launcher it runs here, in this thread; with any other (joblib, submitit) one launch per trial
goes through a thread pool, `n_jobs` at a time, so a finished trial frees its place at once
instead of waiting for a whole batch. The job's `metrics.json` (the run contract) says how it
ended when the app is ours (run.py); for any other app, what its task function returned (a
number, as for the standard plugin) or raised, and whether its reporter stopped it.

On the way out (Ctrl-C, an error) `Jobs.stop` ends the jobs still running before their trials
go back to the queue: the pool's threads are not waited for, and joblib's worker processes
(loky) are killed, so a job never writes to a folder whose trial was handed back.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from budgetsweep.contract import SCHEMA_VERSION, STATUSES, SWEEP_FIELDS, first_line, read_metrics
from budgetsweep.contract.record import SOURCE, named_values
from budgetsweep.contract.sweep import STUDY_ENV, TRIAL_ENV
from budgetsweep.contract.values import quote

from ._compat import (
    job_error,
    kill_joblib_workers,
    launchers_quiet_on_ctrl_c,
    quiet_launch_lines,
    ray_started_once,
    submitit_polls_without_accounting,
    submitit_stop_waiting,
)
from .settings import objective_names
from .trial_reporter import TrialLost

log = logging.getLogger(__name__)

STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}  # every other status: FAIL


class Jobs:
    """Runs one job per trial with the launcher; `parallel` of them at a time."""

    def __init__(self, launcher: Any, parallel: int) -> None:
        self.launcher = launcher
        self.pool = cf.ThreadPoolExecutor(max_workers=parallel) if parallel > 1 else None
        launchers_quiet_on_ctrl_c(launcher)  # on Ctrl-C the sweep's one line alone: `stop` ends the jobs
        submitit_polls_without_accounting(launcher)  # SLURM without sacct: states from squeue
        quiet_launch_lines(drop=True)  # the sweeper logs each trial's launch itself, with its values
        ray_started_once(launcher)  # before the threads: each launch of hydra-ray-launcher would start Ray

    @property
    def joblib(self) -> bool:
        return type(self.launcher).__module__.startswith("hydra_plugins.hydra_joblib_launcher")

    def start(self, overrides: list[str], number: int) -> cf.Future:
        if self.pool is not None:
            return self.pool.submit(self.launch, overrides, number)
        future: cf.Future = cf.Future()  # the basic launcher: run it here, now
        try:
            future.set_result(self.launch(overrides, number))
        except (Exception, TrialLost) as e:
            future.set_exception(e)
        return future

    def launch(self, overrides: list[str], number: int) -> JobReturn:
        return self.launcher.launch([overrides], initial_job_idx=number)[0]

    @staticmethod
    def already_done() -> cf.Future:
        """For a trial whose job finished before the interruption: its folder holds the result."""
        future: cf.Future = cf.Future()
        future.set_result(None)
        return future

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        """End the running jobs now: the pool stops taking work, joblib's worker processes are killed
        (their launches in the pool's threads then return at once, which the interpreter's exit
        waits for). Other launchers' jobs run in this process (basic) or end with it (submitit,
        whose launches then return at once too)."""
        self.close()
        if self.joblib:
            kill_joblib_workers()
        submitit_stop_waiting()


def record_prefix(config: DictConfig, record: str | None) -> dict[str, str] | None:
    """How the trial's number and study reach the app's `record` node (run.py's `sweep`):
    key -> override prefix, or None when the app's config has no such node."""
    node = OmegaConf.select(config, record, default=None) if record else None
    if not isinstance(node, DictConfig):
        return None
    return {key: f"{record}." if key in node else f"++{record}." for key in ("trial", "study")}


def job_overrides(number: int, study_name: str, params: list[str], record: dict[str, str] | None) -> list[str]:
    """The overrides of one trial's job: its parameters, then where it runs and what it is (in
    Hydra's own job config, so the app needs no key for it; in its `record` node if it has one)."""
    study = quote(study_name)
    recorded = [] if record is None else [f"{record['trial']}trial={number}", f"{record['study']}study={study}"]
    return [
        *params,
        *recorded,
        f"++hydra.job.env_set.{TRIAL_ENV}={number}",
        f"++hydra.job.env_set.{STUDY_ENV}={study}",
        f"hydra.sweep.subdir={number}",
    ]


@dataclass
class Outcome:
    status: str  # a contract status (contract.STATUSES)
    value: float | list[float] | None  # the objective (a list: one per direction), for a completed trial
    error: str | None  # one line
    epochs: Any = None
    counted: bool = True  # a failure that counts against max_failure_rate (a rejected result does not)
    metrics: dict | None = None  # the job's record (metrics.json, or one the app wrote with budgetsweep.record)
    named: dict[str, Any] = field(default_factory=dict)  # every named number the job gave (its objectives first)

    @property
    def state(self) -> TrialState:
        return STATES.get(self.status, TrialState.FAIL)


def run_metrics(run_dir: Path) -> dict | None:
    """The folder's record when it is one of our run contract (an int `schema_version` up to
    ours, a contract status, `objective` and the sweep fields): run.py's metrics.json, an app's
    `budgetsweep.record`, or the sweeper's own record of an earlier launch; None otherwise: an
    app's own metrics.json is not ours to read."""
    metrics = read_metrics(run_dir)
    if metrics is None:
        return None
    version = metrics.get("schema_version")
    marked = isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= SCHEMA_VERSION
    if not marked or metrics.get("status") not in STATUSES or not {"objective", *SWEEP_FIELDS} <= metrics.keys():
        return None
    return metrics


def outcome(
    future: cf.Future,
    run_dir: Path,
    pruned_at: Any = None,
    objectives: list[str] | None = None,
    n_values: int = 1,
    objective: str = "objective",
) -> Outcome:
    """How a trial's job ended: its record (run.py's metrics.json, or `budgetsweep.record`), else
    what the launcher returned or raised: a number, one per direction, or a dict of named numbers.
    `pruned_at`: the step at which the job's reporter said stop (budgetsweep.contract.sweep.PRUNED_AT).
    `objectives`/`objective`: the names the values are read by (`objective_names`); `n_values`:
    the study's number of directions."""
    try:
        ret, error = future.result(), None
    except (Exception, TrialLost) as e:  # the launcher itself failed (a killed worker process, ...)
        ret, error = None, f"{type(e).__name__}: {first_line(e)}"
    metrics = run_metrics(run_dir)
    if metrics is not None and metrics.get("source") == SOURCE and (ret is not None or error is not None):
        metrics = None  # our own record of an earlier launch: this job's result is what it returned
    failed = job_error(ret) if ret is not None and ret.status == JobStatus.FAILED else None
    if metrics is None and (pruned_at is not None or isinstance(failed, optuna.TrialPruned)):
        return Outcome("pruned", None, None, pruned_at)
    names = objective_names(objectives, objective, n_values)
    returned = ret.return_value if _completed(ret) else None
    named = _named(metrics, returned, names)
    if metrics is not None:
        status = metrics["status"]
    elif _completed(ret):
        status = "completed"
    else:
        status = "failed"
    value, problem = _objective_values(named, names, returned, metrics) if status == "completed" else (None, None)
    counted = True
    if status == "completed" and value is None:
        status, error = "failed", problem
        # the plugin fails a trial whose result it cannot use and goes on: not a failure of the sweep
        counted = metrics is not None
    if metrics:
        error = metrics.get("error") or error
    if status != "completed" and error is None and failed is not None:
        error = f"{type(failed).__name__}: {first_line(failed)}"
    epochs = metrics.get("epochs") if metrics else pruned_at
    single = value[0] if isinstance(value, list) and n_values == 1 else value
    return Outcome(status, single if status == "completed" else None, error, epochs, counted, metrics, named)


def _named(metrics: dict | None, returned: Any, names: list[str]) -> dict[str, Any]:
    """Every named number of the job: a record's keys (and its `metrics`), or what the task
    returned (`named_values`); `objective` stands for the first name where that name is absent."""
    if metrics is not None:
        flat = {k: v for k, v in metrics.items() if k != "metrics"}
        flat.update(metrics.get("metrics") or {})
        if returned is not None:  # what the task returned fills what the record left out
            flat = {**named_values(returned, names), **{k: v for k, v in flat.items() if v is not None}}
    else:
        flat = named_values(returned, names) if returned is not None else {}
    if names[0] not in flat and "objective" in flat:
        flat[names[0]] = flat["objective"]
    return flat


def _objective_values(
    named: dict[str, Any], names: list[str], returned: Any, metrics: dict | None
) -> tuple[list[float] | None, str | None]:
    """(the objectives' values, None) or (None, why they cannot be had)."""
    got: list[Any] = [named.get(name) for name in names]
    shown = repr(got[0]) if len(names) == 1 else ", ".join(f"{n}={v!r}" for n, v in zip(names, got))
    if metrics is None and len(names) > 1 and not isinstance(returned, Mapping):
        if not isinstance(returned, (list, tuple)) or len(returned) != len(names):
            return None, f"returned {returned!r}: expected {len(names)} numbers, one per direction"
    if any(v is None for v in got) and metrics is None and isinstance(returned, Mapping):
        shown = f"returned {sorted(map(str, returned))}, no {[n for n, v in zip(names, got) if v is None]}"
    try:
        values = [float(v) for v in got]
    except (TypeError, ValueError):
        return None, f"no objective value: {shown}"
    if not all(math.isfinite(v) for v in values):
        return None, f"no objective value: {shown}"
    return values, None


def _completed(ret: JobReturn | None) -> TypeGuard[JobReturn]:
    return ret is not None and ret.status == JobStatus.COMPLETED


def tell(study: optuna.Study, trial: optuna.Trial, value: float | Sequence[float] | None, state: TrialState) -> None:
    """`study.tell`, tolerant of a trial another process finished, and of the grid sampler's
    `study.stop()` once the grid is used up (legal only inside `optimize`)."""
    try:
        study.tell(trial, value, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        log.warning("trial %d was already finished by another process", trial.number)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise
