"""`budgetsweep.record`: an app's own results, written in the run contract from inside its task.

Any Hydra app swept by our sweepers gets a record of each job without a line of ours (the
sweeper writes `sweep_record.json` from what the task returned). An app that wants its metrics
named, their directions declared, other numbers kept beside the objective, or its weights
found by `budgetsweep evaluate`, calls this once at the end of its task:

    import budgetsweep

    @hydra.main(...)
    def main(cfg):
        ...
        budgetsweep.record({"val_loss": val_loss, "val_acc": val_acc}, objective="val_loss",
                           directions={"val_loss": "minimize", "val_acc": "maximize"},
                           weights="model.pt")
        return val_loss

The sweeper then completes the record (trial, sizing, intermediate values, time) and never
overwrites what the app said. Outside a sweep it writes the same file in the job's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from budgetsweep.contract.record import APP, RECORD_FILE, named_values, new_record, write_record
from budgetsweep.contract.sweep import ABLATION_ENV, DIRECTIONS, REPEAT_ENV, STUDY_ENV, TRIAL_ENV


def record(
    metrics: Mapping[str, Any] | float,
    *,
    objective: str | None = None,
    directions: Mapping[str, str] | str | None = None,
    weights: str | os.PathLike | None = None,
    status: str = "completed",
    error: str | None = None,
    run_dir: str | os.PathLike | None = None,
) -> Path:
    """Write this job's `sweep_record.json`; returns its path.

    Args:
        metrics: the job's numbers by name (a bare number: the objective, named `objective`).
        objective: the name of the metric the sweep optimises (default: the first of `metrics`).
        directions: each metric's direction ("maximize"/"minimize"), or one direction for the
            objective; the sweeper's `direction` still decides the search.
        weights: the file of kept weights, relative to the job's folder (or absolute).
        status: a contract status; "failed" with `error` for a job that ends without a result.
        run_dir: the job's folder (default: Hydra's output folder of the running job).
    """
    named = named_values(dict(metrics) if isinstance(metrics, Mapping) else metrics, None)
    if isinstance(metrics, Mapping) and len(named) != len(metrics):
        bad = sorted(set(map(str, metrics)) - set(named))
        raise ValueError(f"budgetsweep.record: not numbers: {bad}")
    name = objective if objective is not None else next(iter(named), "objective")
    if status == "completed" and name not in named:
        raise ValueError(f"budgetsweep.record: objective {name!r} is not among the metrics {sorted(named)}")
    if isinstance(directions, str):
        directions = {name: directions}
    directions = dict(directions or {})
    for metric, direction in directions.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"budgetsweep.record: {metric!r}: direction {direction!r} is not one of {DIRECTIONS}")
    folder = Path(run_dir) if run_dir is not None else _job_folder()
    kept = None
    if weights is not None:
        path = Path(weights) if Path(weights).is_absolute() else folder / weights
        kept = os.path.relpath(path, folder) if path.is_relative_to(folder) else str(path)
    env = os.environ
    coordinates = {
        "trial": int(env[TRIAL_ENV]) if env.get(TRIAL_ENV, "").isdigit() else None,
        "study": env.get(STUDY_ENV),
        "factor": env.get(ABLATION_ENV["factor"]),
        "value": env.get(ABLATION_ENV["value"]),
        "baseline": env.get(ABLATION_ENV["baseline"]) == "true",
        "repeat": int(env[REPEAT_ENV]) if env.get(REPEAT_ENV, "").isdigit() else 0,
    }
    value = named.get(name)
    record_ = new_record(
        source=APP,
        status=status,
        objective=float(value) if value is not None else None,
        objective_name=name,
        metrics={k: float(v) for k, v in named.items()},
        directions=directions,
        weights=kept,
        error=error,
        **coordinates,
    )
    return write_record(folder, record_)


def _job_folder() -> Path:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        raise RuntimeError(f"budgetsweep.record: not inside a Hydra job; pass run_dir= (the folder for {RECORD_FILE})")
    return Path(HydraConfig.get().runtime.output_dir)
