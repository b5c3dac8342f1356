"""The sweeper's record of one ablation job (`budgetsweep.contract.record`): how the job ended,
for an app that writes no metrics.json of the run contract.

What holds: a folder whose job wrote our metrics.json (run.py) is never given a record (the
check is the Optuna sweeper's, `launch.run_metrics`), so a run is recorded once and readers
(`contract.load_metrics`) meet one file per run; a record the app wrote itself during the job
keeps what it says, the sweeper adding what it left unsaid; the coordinates (factor, value,
baseline, repeat) are the sweeper's, as run.py records them, so analysis groups both kinds of
run alike. A job "completed" only with a finite objective: a number returned, or a dict of
named values holding the objective's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from budgetsweep.contract import RECORD_FILE, first_line
from budgetsweep.contract.record import named_values, new_record, read_record, write_record
from budgetsweep.contract.sweep import direction_of, finite_number

from ._compat import job_error
from .ablation_plan import Job

# keys only the sweeper knows for certain: they replace what an app's own record says
COORDINATES = ("factor", "value", "baseline", "repeat")


@dataclass(frozen=True)
class Objective:
    name: str  # what the task's value is called: `objective` in the record, a key of `metrics`
    direction: str  # "maximize" | "minimize"


def objective_of(name: str | None, direction: str | None, config: DictConfig) -> Objective:
    """The settings' objective and direction, or their defaults: the config's `objective` key
    (run.py's val_acc) else "objective"; the run contract's direction of that name, else
    minimize (the Optuna plugin's default)."""
    if name is None:
        given = OmegaConf.select(config, "objective", default=None)
        name = given if isinstance(given, str) and given else "objective"
    return Objective(name, direction or direction_of(name, "minimize"))


def job_outcome(ret: JobReturn | None, name: str) -> tuple[str, float | None, dict[str, Any], str | None]:
    """(status, objective value, named values returned, one-line error) of a finished job."""
    if ret is None:
        return "failed", None, {}, "the launcher returned no result for this job"
    if ret.status != JobStatus.COMPLETED:
        e = job_error(ret)
        return "failed", None, {}, f"{type(e).__name__}: {first_line(e)}" if e else "the job did not complete"
    returned = ret.return_value
    values = {k: v if isinstance(v, int) else float(v) for k, v in named_values(returned, [name]).items()}
    if isinstance(returned, Mapping):
        if name not in returned:
            keys = ", ".join(map(str, returned)) or "none"
            return (
                "failed",
                None,
                values,
                f"returned a dict without {name!r} (keys: {keys}): set hydra.sweeper.objective",
            )
        got = returned[name]
    elif isinstance(returned, (list, tuple)):
        return "failed", None, values, f"returned {_shown(returned)}: one number expected, or a dict with {name!r}"
    else:
        got = returned
    number = finite_number(got)
    if number is None:
        return "failed", None, values, f"no objective value: {_shown(got)}"
    return "completed", number, values, None


def job_record(
    job: Job,
    ret: JobReturn | None,
    objective: Objective,
    size: Mapping[str, Any] | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """The record of `job` (see `contract.record`) from what its launch returned. `size`: the
    variant's params, flops, max_params, max_flops where the sweep sized it; `seconds`: the job's
    wall time where it could be measured alone."""
    status, value, values, error = job_outcome(ret, objective.name)
    overrides = ret.overrides if ret is not None and ret.overrides is not None else job.overrides
    return new_record(
        status=status,
        objective=value,
        objective_name=objective.name,
        metrics=values,
        directions={objective.name: objective.direction},
        factor=job.factor,
        value=job.value,
        baseline=job.factor is None,
        repeat=job.repeat,
        overrides=[str(o) for o in overrides if not is_hydra(str(o))],
        error=error,
        train_seconds=seconds,
        **dict(size or {}),
    )


def record_job(run_dir: Path, record: dict[str, Any], raised: bool) -> Path | None:
    """Write `record` as the job folder's sweep_record.json unless the job wrote a metrics.json of
    the run contract (None then); a record the app wrote itself is completed, not replaced.
    `raised`: the job raised, which its own record (written before) cannot have said."""
    from .launch import run_metrics  # the Optuna sweeper's check, so both sweepers judge a folder alike

    own = read_record(run_dir)
    if own is None and run_metrics(run_dir) is not None:
        return None
    return write_record(run_dir, record if own is None else _completed(own, record, raised))


def forget_record(run_dir: Path) -> None:
    """Before a job runs again in its folder: its earlier record is stale (a failure), and would
    read as the app's own afterwards."""
    (run_dir / RECORD_FILE).unlink(missing_ok=True)


def is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra.")


def _completed(own: Mapping[str, Any], ours: Mapping[str, Any], raised: bool) -> dict[str, Any]:
    """The app's record, with what it left unsaid (None, absent) taken from ours; our coordinates
    and a raised job's failure win."""
    merged = dict(ours)
    for key, value in own.items():
        if isinstance(value, Mapping) and isinstance(ours.get(key), Mapping):
            merged[key] = {**ours[key], **value}
        elif value is not None and key not in COORDINATES:
            merged[key] = value
    if raised:
        merged.update(status="failed", error=ours["error"])
    return merged


def _shown(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."
