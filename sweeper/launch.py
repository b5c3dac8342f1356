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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from budgetsweep.contract import SCHEMA_VERSION, STATUSES, SWEEP_FIELDS, first_line, read_metrics
from budgetsweep.contract.sweep import STUDY_ENV, TRIAL_ENV
from budgetsweep.contract.values import quote

from ._compat import job_error, kill_joblib_workers
from .trial_reporter import TrialLost

log = logging.getLogger(__name__)

STATES = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}  # every other status: FAIL


class Jobs:
    """Runs one job per trial with the launcher; `parallel` of them at a time."""

    def __init__(self, launcher: Any, parallel: int) -> None:
        self.launcher = launcher
        self.pool = cf.ThreadPoolExecutor(max_workers=parallel) if parallel > 1 else None

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
        waits for). Other launchers' jobs run in this process (basic) or end with it (submitit)."""
        self.close()
        if type(self.launcher).__module__.startswith("hydra_plugins.hydra_joblib_launcher"):
            kill_joblib_workers()


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
    counted: bool = True  # a failure that counts against max_failure_rate (a NaN result does not)
    metrics: dict | None = None  # the job's metrics.json, when it is one of our run contract

    @property
    def state(self) -> TrialState:
        return STATES.get(self.status, TrialState.FAIL)


def run_metrics(run_dir: Path) -> dict | None:
    """The folder's metrics.json when it is a file of our run contract (an int `schema_version`
    up to ours, a contract status, `objective` and the sweep fields), None otherwise: an app's
    own metrics.json is not ours to read."""
    metrics = read_metrics(run_dir)
    if metrics is None:
        return None
    version = metrics.get("schema_version")
    marked = isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= SCHEMA_VERSION
    if not marked or metrics.get("status") not in STATUSES or not {"objective", *SWEEP_FIELDS} <= metrics.keys():
        return None
    return metrics


def outcome(
    future: cf.Future, run_dir: Path, pruned_at: Any = None, objectives: list[str] | None = None, n_values: int = 1
) -> Outcome:
    """How a trial's job ended: our metrics.json, else what the launcher returned or raised.
    `pruned_at`: the step at which the job's reporter said stop (budgetsweep.contract.sweep.PRUNED_AT).
    `objectives`: read by name from metrics.json; `n_values`: the study's number of directions
    (several without `objectives`: the task returns one number per direction)."""
    try:
        ret, error = future.result(), None
    except (Exception, TrialLost) as e:  # the launcher itself failed (a killed worker process, ...)
        ret, error = None, f"{type(e).__name__}: {first_line(e)}"
    metrics = run_metrics(run_dir)
    failed = job_error(ret) if ret is not None and ret.status == JobStatus.FAILED else None
    if metrics is None and (pruned_at is not None or isinstance(failed, optuna.TrialPruned)):
        return Outcome("pruned", None, None, pruned_at)
    value: float | list[float] | None
    status, value = _status_and_value(ret, metrics)
    problem = None
    if status == "completed" and (objectives is not None or n_values > 1):
        value, problem = _objective_values(ret, metrics, objectives, n_values)
    counted = True
    if status == "completed" and value is None:
        got = metrics.get("objective") if metrics else ret.return_value if _completed(ret) else None
        status, error = "failed", problem or f"no objective value: {got!r}"
        # the plugin tells Optuna a NaN result as FAIL and goes on: not a failure of the sweep
        counted = not (metrics is None and isinstance(got, float) and math.isnan(got))
    if metrics:
        error = metrics.get("error") or error
    if status != "completed" and error is None and failed is not None:
        error = f"{type(failed).__name__}: {first_line(failed)}"
    epochs = metrics.get("epochs") if metrics else None
    return Outcome(status, value if status == "completed" else None, error, epochs, counted, metrics)


def _objective_values(
    ret: JobReturn | None, metrics: dict | None, objectives: list[str] | None, n_values: int
) -> tuple[list[float] | None, str | None]:
    """(the objectives' values, None) or (None, why they cannot be had)."""
    if objectives is not None:
        if metrics is None:
            return None, f"no metrics.json of the run contract to read the objectives {objectives} from"
        # metrics.json's values (JSON) or what the task returned: float() below judges each
        got: list[Any] = [metrics.get(name) for name in objectives]
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(objectives, got))
    else:
        returned = ret.return_value if _completed(ret) else None
        if not isinstance(returned, (list, tuple)) or len(returned) != n_values:
            return None, f"returned {returned!r}: expected {n_values} numbers, one per direction"
        got, shown = list(returned), repr(returned)
    try:
        values = [float(v) for v in got]
    except (TypeError, ValueError):
        return None, f"no objective value: {shown}"
    if not all(math.isfinite(v) for v in values):
        return None, f"no objective value: {shown}"
    return values, None


def _completed(ret: JobReturn | None) -> TypeGuard[JobReturn]:
    return ret is not None and ret.status == JobStatus.COMPLETED


def _status_and_value(ret: JobReturn | None, metrics: dict | None) -> tuple[str, float | None]:
    value: Any  # metrics.json's (JSON) or what the task returned: float() below judges it
    if metrics is not None:
        status, value = metrics["status"], metrics.get("objective")
        if value is None and _completed(ret):
            value = ret.return_value
    elif _completed(ret):
        status, value = "completed", ret.return_value
    else:
        return "failed", None
    if status != "completed":
        return status, None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return status, None
    return status, (value if math.isfinite(value) else None)


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
