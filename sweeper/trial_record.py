"""The Optuna sweeper's record of a trial whose app keeps no record of ours (`contract.record`).

run.py writes its own metrics.json; any other app returns a value. Once such a trial has ended,
the sweeper writes `sweep_record.json` in its folder from what it knows: the outcome, the values
under the objectives' names, what the job reported through `trial_reporter`, the trial's
sizing and coordinates, the SLURM job that ran it, and the job's wall time. A record the app wrote itself
(`budgetsweep.record`) is completed, never replaced: the app's keys win.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna

from budgetsweep.contract.record import APP, new_record, write_record
from budgetsweep.contract.storage import scrub
from budgetsweep.contract.sweep import SLURM_JOB

from .launch import Outcome

log = logging.getLogger(__name__)

SIZING = ("params", "flops", "max_params", "max_flops")  # trial user attributes set by the sizing


def record_trial(
    run_dir: Path,
    trial: optuna.trial.FrozenTrial,
    study_name: str,
    result: Outcome,
    names: list[str],
    directions: list[str],
    seconds: float,
) -> None:
    """Write (or complete) the trial's sweep_record.json; run.py's metrics.json is left alone."""
    own = result.metrics
    if own is not None and own.get("source") != APP:  # run.py's metrics.json, or our record read back
        return
    if own is not None and isinstance(own.get("objective_name"), str):  # the app named its objective
        names = [own["objective_name"], *names[1:]]
    values = result.value if isinstance(result.value, list) else [result.value]
    named = {k: v for k, v in result.named.items() if k not in RECORD_NAMES}
    if result.status == "completed":
        named.update(zip(names, values))
    known: dict[str, Any] = {
        "status": result.status,
        "objective": values[0] if result.status == "completed" else None,
        "objective_name": names[0],
        "metrics": named,
        "directions": dict(zip(names, directions)),
        "intermediate": {str(step): v for step, v in sorted(trial.intermediate_values.items())},
        "train_seconds": round(seconds, 3),
        "epochs": result.epochs if result.status == "pruned" else None,
        "error": scrub(result.error) if result.error else None,
        "trial": trial.number,
        "study": study_name,
        "overrides": [f"{k}={v}" for k, v in trial.params.items()],
        "slurm_job_id": trial.system_attrs.get(SLURM_JOB),
        **{key: trial.user_attrs.get(key) for key in SIZING},
    }
    record = new_record(**known)
    if own is not None:  # the app's own `budgetsweep.record`: its keys win
        record.update({k: v for k, v in own.items() if v not in (None, {}, [])})
        record["metrics"] = {**named, **(own.get("metrics") or {})}
    try:
        write_record(run_dir, record)
    except OSError as e:  # the result is in the study; only this file is missing
        log.warning("trial %d: cannot write its record in %s: %s", trial.number, run_dir, e)


def trial_name(trial: optuna.trial.FrozenTrial) -> str:
    """How the sweep's log names a trial that ran: its number, and the SLURM job that ran it
    where its job noted one (`budgetsweep.sweeper.trial_task`)."""
    job = trial.system_attrs.get(SLURM_JOB)
    return f"{trial.number} (Slurm job {job})" if job else str(trial.number)


# keys of a record that are not the job's own metrics
RECORD_NAMES = frozenset(new_record())
