"""The sweeper's record: the run contract for a job of an app that writes no metrics.json of ours.

Our sweepers serve any Hydra app. A job of run.py writes `metrics.json` itself; a job of another
app returns a value (or several, or a dict of named metrics) and writes nothing we can read. For
such a job the sweeper writes `sweep_record.json` in the job's folder once the job has ended: a
file of its own, so an app's own `metrics.json` is never overwritten. Its keys (RECORD_KEYS) are
those of metrics.json that a sweeper can know, with the same meanings (status, objective,
params, flops, max_params, max_flops, epochs, train_seconds: the job's wall time as the
sweeper saw it, weights, overrides, error, the sweep coordinates, slurm_job_id), plus:

    source           "sweeper": who wrote the record
    objective_name   the name of `objective` ("objective" when the app names none)
    metrics          {name: value} for every named value the job gave (the objectives, and the
                     other numbers of a returned dict), shown by analysis as columns
    directions       {name: "maximize" | "minimize"} for the objectives
    intermediate     {step: value}: what the job reported through `trial_reporter`

An app can also write this record itself, from inside its task, with `budgetsweep.record(...)`
(metrics with names and directions, and weights it keeps); the sweeper then only adds what the
app did not say. `load_metrics` reads this file where it exists (`metrics.json` otherwise), so
every reader follows one rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .run import RECORD_FILE, SCHEMA_VERSION, STATUSES, SWEEP_FIELDS, _finite_or_none, write_atomic

SOURCE = "sweeper"  # `source` of a record the sweeper wrote
APP = "app"  # ... of one the app wrote itself (`budgetsweep.record`)
# metrics.json's keys that the sweeper (or an app) can know, then the record's own
RECORD_KEYS = (
    "schema_version",
    "source",
    "status",
    "objective",
    "objective_name",
    "metrics",
    "directions",
    "intermediate",
    "params",
    "flops",
    "max_params",
    "max_flops",
    "epochs",
    "train_seconds",
    "weights",
    "overrides",
    "error",
    *SWEEP_FIELDS,
    "slurm_job_id",
)


def new_record(**known: Any) -> dict[str, Any]:
    """A sweeper record with every key, unknown ones None; `known` fills some."""
    unknown = set(known) - set(RECORD_KEYS)
    if unknown:
        raise KeyError(f"not {RECORD_FILE} keys: {sorted(unknown)}")
    record: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    record.update(schema_version=SCHEMA_VERSION, source=SOURCE, baseline=False, repeat=0)
    record.update(metrics={}, directions={}, intermediate={})
    record.update(known)
    return record


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return _finite_or_none(value)  # JSON has no NaN


def write_record(run_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """Write `record` (see `new_record`) as the folder's sweep_record.json, atomically."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {record.get('status')!r}")
    path = Path(run_dir) / RECORD_FILE
    write_atomic(path, (json.dumps(_clean(dict(record)), indent=2) + "\n").encode())
    return path


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The folder's sweep_record.json, None when there is none or it is unreadable."""
    try:
        record = json.loads((Path(run_dir) / RECORD_FILE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def named_values(returned: Any, names: list[str] | None) -> dict[str, Any]:
    """What a task returned, by name: a dict as it is (its number-like values); a number or a
    sequence of numbers under `names` (in order), else under "objective" / "objective_1", ...

        >>> named_values(0.5, ["loss"])
        {'loss': 0.5}
        >>> named_values([0.5, 3], None)
        {'objective_0': 0.5, 'objective_1': 3}
        >>> named_values({"loss": 0.5, "note": "x"}, None)
        {'loss': 0.5}
    """
    if isinstance(returned, Mapping):
        return {str(k): v for k, v in returned.items() if _number_like(v)}
    values = list(returned) if isinstance(returned, (list, tuple)) else [returned]
    if names is None or len(names) != len(values):
        names = ["objective"] if len(values) == 1 else [f"objective_{i}" for i in range(len(values))]
    return {name: v for name, v in zip(names, values) if _number_like(v)}


def _number_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
