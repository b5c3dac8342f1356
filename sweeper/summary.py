"""The end of a sweep: the study's totals in the log and in `optimization_results.yaml`.

The file has the standard plugin's name; its keys: name, study_name, n_trained, statuses,
n_infeasible, and, once a feasible trial completed, best_trial, best_value, best_params,
best_run_dir and best_weights (absolute paths; best_weights null when the run kept none) of the
trial `best_trial` picks by the rule every side applies (`budgetsweep.contract.sweep.best_run`).
A study of several objectives has no single best: `objectives` (their names), `solutions` (the
plugin's key: params and values) and `pareto_front` (the same trials with their number and
run_dir) instead: the feasible completed trials no other beats on every objective
(`study.best_trials`).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from budgetsweep.contract import WEIGHTS_FILE, read_metrics
from budgetsweep.contract.layouts import OPTIMIZATION_RESULTS_FILE
from budgetsweep.contract.sweep import SLOT, best_run
from budgetsweep.contract.values import short_value

log = logging.getLogger(__name__)


def write_results(study: optuna.Study, study_dir: Path, objective: str) -> bool:
    """Log and write the study's totals (all workers, all runs); True when a trial completed."""
    trials = study.get_trials(deepcopy=False)
    holders = [t for t in trials if t.system_attrs.get(SLOT) is True]
    states = Counter(t.user_attrs.get("status", t.state.name.lower()) for t in holders if t.state.is_finished())
    n_infeasible = sum(1 for t in trials if t.system_attrs.get(SLOT) is False and t.state == TrialState.PRUNED)
    log.info(
        "Study %r: %d trained trials (%s), %d infeasible suggestions never trained",
        study.study_name,
        len(holders),
        ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
        n_infeasible,
    )
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "n_trained": len(holders),
        "statuses": dict(states),
        "n_infeasible": n_infeasible,
    }
    completed = any(t.state == TrialState.COMPLETE for t in holders)
    if completed and len(study.directions) > 1:
        front = sorted(study.best_trials, key=lambda t: t.number)
        results.update(
            objectives=list(study.metric_names or objective.split(",")),
            # the standard plugin's key, read by scripts written for it: params and values
            solutions=[{"params": t.params, "values": list(t.values)} for t in front],
            pareto_front=[
                {
                    "trial": t.number,
                    "values": list(t.values),
                    "params": t.params,
                    "run_dir": str((study_dir / str(t.number)).resolve()),
                }
                for t in front
            ],
        )
        log.info("Pareto front (%s): %d trials", ",".join(study.metric_names or [objective]), len(front))
        for t in front:
            log.info("  trial %d: %s", t.number, ", ".join(f"{v:.6g}" for v in t.values))
    elif completed and (best := best_trial(study)) is not None:
        results.update(
            best_trial=best.number,
            best_value=best.value,
            best_params=best.params,
            best_run_dir=str((study_dir / str(best.number)).resolve()),
            best_weights=_weights(study_dir / str(best.number)),
        )
        log.info(
            "Best: trial %d, %s=%.4f, %s",
            best.number,
            objective,
            best.value,
            " ".join(f"{k}={short_value(v)}" for k, v in best.params.items()),
        )
    OmegaConf.save(OmegaConf.create(results), study_dir / OPTIMIZATION_RESULTS_FILE)
    log.info("Study %r, folder %s; tables and plots: %s", study.study_name, study_dir, analysis_command(study_dir))
    return completed


def best_trial(study: optuna.Study, trials: list | None = None) -> optuna.trial.FrozenTrial | None:
    """The best feasible complete trial of a one-objective study (of `trials`, its trials as just
    read), by the rule analysis and `budgetsweep evaluate` apply to its run folders
    (`budgetsweep.contract.sweep.best_run`): ties go to the lowest trial number, where Optuna's
    `best_trial` leaves them to its storage."""
    return best_run(
        study.get_trials(deepcopy=False) if trials is None else trials,
        study.direction.name.lower(),
        value=lambda t: t.value,
        feasible=_feasible,
        trial=lambda t: t.number,
    )


def _feasible(t: optuna.trial.FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and all(v <= 0 for v in t.constraints.values())


class Progress:
    """`4/20 trained, best so far: trial 2, val_acc=0.4312`: the study's state after a trial.

    A finished trial never changes, so each call weighs only the trials that finished since the
    last (by this or any worker) and keeps the count and the best; an earlier trial costs one set
    lookup, not a pass over its attributes and constraints."""

    def __init__(self, study: optuna.Study, objective: str, n_trials: int) -> None:
        self.study, self.objective, self.n_trials = study, objective, n_trials
        self.seen: set[int] = set()  # numbers of the finished trials counted
        self.trained = 0
        self.best: optuna.trial.FrozenTrial | None = None

    def __call__(self, trials: list) -> str:
        """The line, from `trials`: the study's trials as just read."""
        ended = [t for t in trials if t.number not in self.seen and t.state.is_finished()]
        self.seen.update(t.number for t in ended)
        self.trained += sum(1 for t in ended if t.system_attrs.get(SLOT) is True)
        head = f"{self.trained}/{self.n_trials} trained"
        if len(self.study.directions) > 1:
            front = self.study.best_trials if any(t.state == TrialState.COMPLETE for t in trials) else []
            return f"{head}, Pareto front: {len(front)} trial(s)"
        if any(_feasible(t) for t in ended):
            self.best = best_trial(self.study, [*([self.best] if self.best else []), *ended])
        if self.best is None:
            return f"{head}, none completed yet"
        return f"{head}, best so far: trial {self.best.number}, {self.objective}={self.best.value:.4g}"


def analysis_command(study_dir: Path) -> str:
    """The command that turns the study into tables and plots, with the folder as the user would type it."""
    import os
    import shlex

    try:
        shown = os.path.relpath(study_dir)
    except ValueError:  # another drive (Windows)
        shown = str(study_dir)
    if shown.startswith(".."):
        shown = str(study_dir)
    return f"budgetsweep analyze {shlex.quote(shown)}"


def _weights(run_dir: Path) -> str | None:
    """The trial's kept weights: run.py's weights.pt, or the file an app's record names."""
    kept = (read_metrics(run_dir) or {}).get("weights")
    path = (run_dir / (kept if isinstance(kept, str) and kept else WEIGHTS_FILE)).resolve()
    return str(path) if path.is_file() else None


def failure_hint(failures: list[tuple[int, str, str]], study_dir: Path, job_name: str = "") -> str:
    """What to look at after a failed sweep: the first failure of this run and its log."""
    if not failures:
        return f"Folder: {study_dir}"
    kinds = Counter(status for _, status, _ in failures)
    number, status, error = failures[0]
    return (
        f"Failures in this run: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}; "
        f"first: trial {number} {status}: {error} (see {job_log(study_dir / str(number), job_name)})"
    )


def job_log(run_dir: Path, job_name: str) -> Path:
    """The log the job really wrote: Hydra's `<job name>.log` (run.py's is run.log), else any
    *.log in its folder (an app that configures its own), else the folder itself."""
    named = run_dir / f"{job_name}.log"
    if job_name and named.is_file():
        return named
    return next(iter(sorted(run_dir.glob("*.log"))), run_dir)
