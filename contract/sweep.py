"""The sweep protocol: what crosses a process boundary between a sweeper, its jobs and analysis.

A sweeper and the jobs it launches (possibly on other machines, through SLURM) talk through
three channels only, all named here:

- the job's environment (`hydra.job.env_set`): the trial a job runs, the ablation coordinates,
  the worker's claim on the trial, the storage password, the jobs sharing a machine;
- Optuna's system attributes on studies and trials (`budgetsweep:*` keys), which every worker
  of a study reads from the shared storage;
- the record node of the job's config (`sweep.trial`, `sweep.factor`, ...) when the app's
  config has one.

And one rule every side applies to pick a run: `best_run` (`ranked_runs`: its order, for
tables; `sweep_direction`: the direction a folder of runs is ranked in; `folder_order`: the
order run folders are read in, its last tie-break). The end-of-sweep summary,
`optimization_results.yaml`, the analysis tables and plots and `budgetsweep evaluate` all call
it, so they name the same run.

A leaf like the rest of the contract: no torch, no Optuna, nothing else of ours.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, TypeVar

# --- the job's environment ------------------------------------------------------------------

TRIAL_ENV = "BUDGETSWEEP_TRIAL"  # the Optuna trial number a job runs
STUDY_ENV = "BUDGETSWEEP_STUDY"  # ... and its study's name
CLAIM_ENV = "BUDGETSWEEP_CLAIM"  # the worker's claim on that trial (compared with OWNER)
ABLATION_ENV = {  # where an ablation job sits: the factor it changes, the value, the baseline
    "factor": "BUDGETSWEEP_FACTOR",
    "value": "BUDGETSWEEP_VALUE",
    "baseline": "BUDGETSWEEP_BASELINE",
}
REPEAT_ENV = "BUDGETSWEEP_REPEAT"  # the ablation job's repeat (seed) index
JOBS_ENV = "BUDGETSWEEP_JOBS_PER_MACHINE"  # training processes sharing this machine's cores
STORAGE_RETRY_ENV = "BUDGETSWEEP_STORAGE_RETRY"  # seconds a sweeper waits out a database outage
# Set by SLURM in a job's processes (not by us): which job runs, and its place in a job array.
SLURM_JOB_ENV, SLURM_ARRAY_ENV, SLURM_TASK_ENV = "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"
# The storage URL and its password have their own module (`contract.storage`): PASSWORD_ENV,
# STORAGE_ENV.

# --- Optuna system attributes (study and trial), shared by every worker of a study ------------

SLOT = "budgetsweep:slot"  # trial: the n_trials slot it holds (trained trials count, not suggestions)
OWNER = "budgetsweep:owner"  # trial: the claim token of the worker running it now
LAUNCHED = "budgetsweep:launched"  # trial: a job was started in the trial's folder
PRUNED_AT = "budgetsweep:pruned_at"  # trial: the step at which the job's reporter said stop
SPACE = "budgetsweep:space"  # study: the search space the study runs (SearchSpace.plain())
ENQUEUED = "budgetsweep:enqueued"  # study: the `enqueue` configs already put in the queue
SLURM_JOB = "budgetsweep:slurm_job"  # trial: the SLURM job that runs it (`slurm_job_id`), set by the job
HEARTBEAT = "budgetsweep:heartbeat"  # trial: time.time() of its last heartbeat, on storages without Optuna's own


def slurm_job_id(environ: Mapping[str, str]) -> str | None:
    """The SLURM job a process with this environment runs in, as squeue and submitit name it:
    `<array job>_<task>` for a task of a job array, else the job id; None outside SLURM.

        >>> slurm_job_id({"SLURM_JOB_ID": "7"}), slurm_job_id({})
        ('7', None)
        >>> slurm_job_id({"SLURM_JOB_ID": "9", "SLURM_ARRAY_JOB_ID": "8", "SLURM_ARRAY_TASK_ID": "1"})
        '8_1'
    """
    array, task = environ.get(SLURM_ARRAY_ENV), environ.get(SLURM_TASK_ENV)
    if array and task:
        return f"{array}_{task}"
    return environ.get(SLURM_JOB_ENV) or None


# --- the record node --------------------------------------------------------------------------

RECORD_NODE = "sweep"  # default config node receiving the coordinates (null in the settings: none)


# --- the best run -----------------------------------------------------------------------------

DIRECTIONS = ("maximize", "minimize")
# The direction of the metrics run.py writes; an app's own objective says its direction in the
# sweeper's settings (`direction`), which a study records.
METRIC_DIRECTIONS = {
    "val_acc": "maximize",
    "final_val_acc": "maximize",
    "test_acc": "maximize",
    "val_loss": "minimize",
    "final_val_loss": "minimize",
    "test_loss": "minimize",
    "params": "minimize",
    "flops": "minimize",
}

Run = TypeVar("Run")


def direction_of(metric: str, default: str = "maximize") -> str:
    """The direction a metric of the run contract is optimised in; `default` for another name."""
    return METRIC_DIRECTIONS.get(metric, default)


def sweep_direction(recorded: Any, objective: str | None) -> str:
    """The direction a folder of runs is ranked in.

    `recorded`: the direction its study records (study.json), when the folder is an Optuna
    study; it wins when it is one direction. Otherwise (no study, or a study of several
    objectives, whose runs' single `objective` has no recorded direction) the direction of
    the runs' objective name (the config's `objective`, val_acc when not set).
    """
    if isinstance(recorded, str) and recorded in DIRECTIONS:
        return recorded
    return direction_of(objective or "val_acc")


def declared_direction(runs: Iterable[Any]) -> str | None:
    """The direction the runs' records declare for their objective (`directions[objective_name]`,
    written by an app through `budgetsweep.record` or by the sweeper), None when they declare none
    or disagree."""
    declared = set()
    for run in runs:
        directions, name = (run.get("directions"), run.get("objective_name")) if isinstance(run, Mapping) else (0, 0)
        if isinstance(directions, Mapping) and directions.get(name) in DIRECTIONS:
            declared.add(directions[name])
    return declared.pop() if len(declared) == 1 else None


def folder_order(name: str) -> tuple[int, int, str]:
    """The sort key of one folder name: Hydra names jobs and trials 0, 1, ..., 10, so digits sort
    as numbers (2 before 10) and before other names. Every side walks run folders in this order,
    which is the input order `best_run` breaks its last ties by."""
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def finite_number(value: Any) -> float | None:
    """`value` as a finite float; None for a bool, a non-number, NaN or an infinity."""
    if isinstance(value, bool):
        return None
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _objective(run: Any) -> Any:
    # `objective` is the contract's; val_acc ranks a run written without one (an app's own
    # metrics.json, an older run).
    value = run.get("objective")
    return run.get("val_acc") if _number(value) is None else value


def _trial_number(run: Any) -> Any:
    return run.get("trial") if isinstance(run, Mapping) else None


def ranked_runs(
    runs: Iterable[Run],
    direction: str = "maximize",
    *,
    value: Callable[[Run], Any] | None = None,
    feasible: Callable[[Run], bool] | None = None,
    trial: Callable[[Run], Any] | None = None,
) -> list[Run]:
    """The feasible runs of `runs`, best first, in `best_run`'s order (see there); the others left out.

    A table of the best runs lists them in this order, so its first row is `best_run`'s choice.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: {direction!r} is not one of {DIRECTIONS}")
    get = value if value is not None else _objective
    ok = feasible if feasible is not None else (lambda run: run.get("status") == "completed")
    number_of = trial if trial is not None else _trial_number
    sign = -1.0 if direction == "maximize" else 1.0
    keyed = []
    for index, run in enumerate(runs):
        number = _number(get(run)) if ok(run) else None
        if number is not None:
            order = _number(number_of(run))
            keyed.append(((sign * number, math.inf if order is None else order, index), run))
    keyed.sort(key=lambda pair: pair[0])
    return [run for _, run in keyed]


def best_run(
    runs: Iterable[Run],
    direction: str = "maximize",
    *,
    value: Callable[[Run], Any] | None = None,
    feasible: Callable[[Run], bool] | None = None,
    trial: Callable[[Run], Any] | None = None,
) -> Run | None:
    """The best of `runs`, or None when none qualifies.

    Only feasible runs compete: by default a mapping with `status` "completed" (the run
    contract's; an over-budget, invalid, diverged, failed or pruned run never wins) whose
    value is a number (not NaN). The value is `run["objective"]` (`run["val_acc"]` for a run
    without one) unless `value` says otherwise. Among equal values the earliest wins: the
    lowest trial number (`run["trial"]`, or what `trial` returns) where runs have one, then
    the order `runs` came in (run folders: `folder_order`).

    Args:
        runs: run records (metrics.json's keys), or anything `value`/`feasible`/`trial` read.
        direction: "maximize" or "minimize"; anything else is a ValueError.
        value: the number a run is ranked by.
        feasible: whether a run may win at all.
        trial: a run's trial number, for ties.

        >>> runs = [{"status": "completed", "objective": 0.9, "trial": 3},
        ...         {"status": "over_budget", "objective": 0.99, "trial": 1},
        ...         {"status": "completed", "objective": 0.9, "trial": 2}]
        >>> best_run(runs)["trial"]
        2
        >>> best_run(runs, "minimize", value=lambda r: r["trial"])["trial"]
        2
    """
    ranked = ranked_runs(runs, direction, value=value, feasible=feasible, trial=trial)
    return ranked[0] if ranked else None
