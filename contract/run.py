"""The run folder: the only interface between training, the sweepers and `analysis/`.

Every run, single or inside a sweep, writes into its Hydra output folder:

    .hydra/            config.yaml, overrides.yaml, hydra.yaml (Hydra)
    metrics.json       the result, written once at the end (METRICS_KEYS; schema SCHEMA_VERSION)
    history.csv        one row per finished epoch (HISTORY_COLUMNS), rewritten after each epoch
    checkpoint.pt      the last finished epoch, for resuming; deleted when the run ends
    weights.pt         the kept weights (`save_weights`: best or last epoch) and the model config
    eval.json          written by `python -m budgetsweep.trainer.evaluate`: the kept weights on a data source
    trackers.json      the experiment trackers' run ids, so a resumed run continues them
    run.log            the log (Hydra's job logging)

Files are written atomically (a temporary name in the same folder, flushed, renamed over
the old one), so a reader never sees half a file. docs/run-contract.md documents
each key; this module is its single definition in code.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Iterable

from .messages import first_line

# 2: test_acc/test_loss are measured on the kept weights (test_epoch says which epoch's; in 1
# always the last epoch's); weights, test_epoch, tags and the provenance keys added.
SCHEMA_VERSION = 2
METRICS_FILE, HISTORY_FILE, CHECKPOINT_FILE, LOG_FILE = "metrics.json", "history.csv", "checkpoint.pt", "run.log"
WEIGHTS_FILE, EVAL_FILE, TRACKERS_FILE = "weights.pt", "eval.json", "trackers.json"
# The sweeper's record of a job whose app writes no metrics.json of ours (`contract.record`);
# where it exists it is the folder's record (`load_metrics`).
RECORD_FILE = "sweep_record.json"

STATUSES = ("completed", "over_budget", "invalid", "diverged", "failed", "pruned")
# Statuses that end a trial without a result and count as a failure of the job.
FAILED_STATUSES = ("failed", "diverged", "invalid", "over_budget")

HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")

# Where a job sits in a sweep: Optuna's (trial, study), the ablation's (factor, value,
# baseline, repeat). Set by our sweepers, copied into metrics.json by the trainer.
SWEEP_FIELDS = ("trial", "study", "factor", "value", "baseline", "repeat")

# metrics.json, in the order it is written; docs/run-contract.md documents each key.
METRICS_KEYS = (
    "schema_version",
    "status",
    "objective",
    "val_acc",
    "best_epoch",
    "final_val_acc",
    "final_val_loss",
    "test_acc",
    "test_loss",
    "test_epoch",
    "weights",
    "params",
    "flops",
    "max_params",
    "max_flops",
    "epochs",
    "epochs_planned",
    "train_seconds",
    "images_per_second",
    "device",
    "seed",
    "overrides",
    "error",
    *SWEEP_FIELDS,
    "tags",
    "torch_version",
    "versions",
    "git_commit",
    "git_dirty",
    "host",
    "slurm_job_id",
)


# The numbers of metrics.json a sweep can optimise (`hydra.sweeper.objectives`, `objective`).
NUMERIC_METRICS = (
    "val_acc",
    "final_val_acc",
    "final_val_loss",
    "test_acc",
    "test_loss",
    "params",
    "flops",
    "epochs",
    "best_epoch",
    "train_seconds",
    "images_per_second",
)


class ContractError(ValueError):
    """A run-folder file that is missing or does not follow the contract; the message says which."""


def new_metrics(**known: Any) -> dict[str, Any]:
    """A metrics dict with every key of the contract, unknown ones None; `known` fills some."""
    unknown = set(known) - set(METRICS_KEYS)
    if unknown:
        raise KeyError(f"not metrics.json keys: {sorted(unknown)}")
    metrics: dict[str, Any] = dict.fromkeys(METRICS_KEYS)
    metrics.update(schema_version=SCHEMA_VERSION, baseline=False, repeat=0, epochs=0, train_seconds=0.0, tags=[])
    metrics.update(known)
    return metrics


def partial_writes(path: str | Path) -> list[Path]:
    """The temporary files `write_atomic` left beside `path` when its process was killed mid-write."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*"))


def _create_temporary(path: Path) -> tuple[int, Path]:
    # Mode 0666 less the umask, as open() gives: tempfile.mkstemp's 0600 would keep colleagues
    # on a shared outputs/ from reading the results.
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part.

    The new file's mode honours the umask. A process killed mid-write leaves `.NAME.*.tmp`
    beside it (`partial_writes`), never a partial `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_metrics(run_dir: str | Path, metrics: dict) -> None:
    if metrics.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {metrics.get('status')!r}")
    clean = {k: _finite_or_none(v) for k, v in metrics.items()}  # JSON has no NaN
    write_atomic(Path(run_dir) / METRICS_FILE, (json.dumps(clean, indent=2) + "\n").encode())


def write_history(run_dir: str | Path, rows: Iterable[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in HISTORY_COLUMNS} for row in rows)
    write_atomic(Path(run_dir) / HISTORY_FILE, buf.getvalue().encode())


def record_path(run_dir: str | Path) -> Path:
    """The file holding the run's record: the sweeper's `sweep_record.json` where it exists (an app
    that writes no metrics.json of ours: `contract.record`), else `metrics.json`."""
    record = Path(run_dir) / RECORD_FILE
    return record if record.is_file() else Path(run_dir) / METRICS_FILE


def load_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The run's record (`record_path`: metrics.json, or the sweeper's sweep_record.json) as a dict
    with a `status`; ContractError says why it cannot be read."""
    path = record_path(run_dir)
    if not path.is_file():
        raise ContractError(f"{path}: missing")
    try:
        metrics = json.loads(path.read_text())
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise ContractError(f"{path}: unreadable ({first_line(e)})") from None
    if not isinstance(metrics, dict):
        raise ContractError(f"{path}: not a JSON object")
    if "status" not in metrics:
        raise ContractError(f"{path}: has no 'status'")
    return metrics


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's metrics.json, or None when it is missing or not a contract file."""
    try:
        return load_metrics(run_dir)
    except ContractError:
        return None
