"""The run contract: what a run folder holds, and the few facts every part agrees on.

This package is the one place the trainer, both sweepers and `analysis/` meet. It is a leaf:
it imports no torch, no Optuna and nothing else of ours, so any of them (and a user's own
app) can import it cheaply. Modules:

- `run`: the run folder: file names, statuses, the `metrics.json` keys and schema version,
  `history.csv` columns, the sweep coordinates, atomic writers and readers.
- `sweep`: the sweep protocol: the job environment variables, the Optuna attribute keys, the
  record node, and `best_run`, the one rule that picks the best run.
- `values`: one canonical text for override values (what the ablation sweeper records is what
  analysis reads, by construction) and the override-grammar helpers.
- `layouts`: the sweep-level files: `study.json` (Optuna) and `ablation_plan.yaml`.
- `storage`: the storage password variable, masking, and the one connect URL.
- `record`: the sweeper's record of a job of any other app (`sweep_record.json`).
- `messages`: `first_line(exc)` and `is_missing(value)`, used wherever a message or a table
  cell is shown.
"""

from .messages import first_line, is_missing
from .run import (
    CHECKPOINT_FILE,
    EVAL_FILE,
    FAILED_STATUSES,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    LOG_FILE,
    METRICS_FILE,
    METRICS_KEYS,
    RECORD_FILE,
    SCHEMA_VERSION,
    STATUSES,
    SWEEP_FIELDS,
    TRACKERS_FILE,
    WEIGHTS_FILE,
    ContractError,
    load_metrics,
    new_metrics,
    read_metrics,
    record_path,
    write_atomic,
    write_history,
    write_metrics,
)

__all__ = [
    "CHECKPOINT_FILE",
    "EVAL_FILE",
    "FAILED_STATUSES",
    "HISTORY_COLUMNS",
    "HISTORY_FILE",
    "LOG_FILE",
    "METRICS_FILE",
    "METRICS_KEYS",
    "RECORD_FILE",
    "SCHEMA_VERSION",
    "STATUSES",
    "SWEEP_FIELDS",
    "TRACKERS_FILE",
    "WEIGHTS_FILE",
    "ContractError",
    "first_line",
    "is_missing",
    "load_metrics",
    "new_metrics",
    "read_metrics",
    "record_path",
    "write_atomic",
    "write_history",
    "write_metrics",
]
