"""The run folder's files: metrics.json and history.csv, always written atomically.

A reader (a sweeper, `analysis`, a person) never sees half a file: each is written to a
temporary name in the same folder, flushed, then renamed over the old one.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 1
STATUSES = ("completed", "over_budget", "invalid", "diverged", "failed", "pruned")
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")
METRICS_FILE, HISTORY_FILE, CHECKPOINT_FILE = "metrics.json", "history.csv", "checkpoint.pt"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
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


def write_metrics(run_dir: Path, metrics: dict) -> None:
    if metrics.get("status") not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {metrics.get('status')!r}")
    clean = {k: _finite_or_none(v) for k, v in metrics.items()}  # JSON has no NaN
    write_atomic(Path(run_dir) / METRICS_FILE, (json.dumps(clean, indent=2) + "\n").encode())


def write_history(run_dir: Path, rows: Iterable[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in HISTORY_COLUMNS} for row in rows)
    write_atomic(Path(run_dir) / HISTORY_FILE, buf.getvalue().encode())


def read_metrics(run_dir: Path) -> dict | None:
    """The run's metrics.json, or None when it is missing or unreadable."""
    try:
        return json.loads((Path(run_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
