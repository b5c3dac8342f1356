"""What every experiment tracker is: a `_target_` object with three calls.

    start(config, run) -> state   once, before the first epoch; `config` is the composed config
                                  (plain, resolved); returns what to keep to continue this
                                  tracker's run after a resume (e.g. MLflow's run id)
    log_epoch(row)                after each finished epoch: the history.csv row
    end(metrics)                  once, with metrics.json's contents

A new tracker is one class here and one YAML file in `conf/logger/`. Its package is an extra:
import it through `require`, which turns a missing package into one line naming the extra.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..schema import TrainConfigError

EPOCH_PREFIX, RESULT_PREFIX = "epoch/", "result/"  # metric names: per-epoch curves, the run's result
# metrics.json numbers every tracker receives at the end, as result/<key>
RESULT_KEYS = (
    "objective",
    "val_acc",
    "best_epoch",
    "test_acc",
    "test_loss",
    "test_epoch",
    "params",
    "flops",
    "epochs",
    "train_seconds",
    "images_per_second",
)


@dataclass
class TrackedRun:
    """Which job a tracker records, and whether it continues an earlier start of it."""

    run_dir: Path  # the run folder (absolute)
    name: str  # trial-<n> inside an Optuna study, else the run folder's last two path parts
    group: str | None  # the Optuna study: its trials group together; None outside one
    tags: list[str] = field(default_factory=list)
    state: dict | None = None  # what this tracker's start returned before the run was killed; None: a new run
    logged_epochs: int = 0  # epochs already logged by that earlier start


class Tracker:
    """The base: does nothing. Subclasses override the calls they need."""

    def start(self, config: dict, run: TrackedRun) -> dict | None:
        return None

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        pass

    def end(self, metrics: Mapping[str, Any]) -> None:
        pass


def require(module: str, extra: str) -> Any:
    """Import a tracker's package; TrainConfigError naming the extra when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TrainConfigError(
            f"logger={extra}: the {module} package is not installed: pip install 'budgetsweep[{extra}]' "
            f'(from a checkout: pip install -e ".[{extra}]")'
        ) from None


def flat(config: Mapping, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf; lists stay leaves."""
    for key, value in config.items():
        if isinstance(value, Mapping):
            yield from flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def scalar(value: Any) -> int | float | str | bool:
    """A config value as the scalar types trackers accept (lists and None as text)."""
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def numbers(metrics: Mapping[str, Any], keys=RESULT_KEYS) -> dict[str, float]:
    """The numeric metrics among `keys`, as floats (None and NaN left out)."""
    out = {}
    for key in keys:
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
            out[key] = float(v)
    return out
