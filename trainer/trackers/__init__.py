"""Experiment trackers: the `logger` config group (`conf/logger/`), several at once.

`logger=[csv,tensorboard,mlflow,wandb]` composes one node per option under `cfg.logger`,
each a `_target_` object of this package (`base.Tracker`: start, log_epoch, end). `Trackers`
drives them for one job: it names the job (`trial-<n>` inside an Optuna study, whose name
groups the trials), keeps `trackers.json` in the run folder (each tracker's run id and the
epochs logged) so a killed job that resumes continues the same tracker runs, and logs each
epoch exactly once: an epoch already logged is skipped, epochs a kill left unlogged are sent
from history.csv. A tracker that fails while the job runs costs one warning and is dropped;
training goes on.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from budgetsweep.contract import CHECKPOINT_FILE, HISTORY_COLUMNS, HISTORY_FILE, TRACKERS_FILE, first_line, write_atomic

from ..schema import TrainConfigError
from .base import TrackedRun, Tracker, require
from .files import CsvTracker
from .mlflow_run import MlflowTracker
from .tb import TensorBoardTracker
from .wandb_run import WandbTracker

__all__ = [
    "CsvTracker",
    "MlflowTracker",
    "TensorBoardTracker",
    "TrackedRun",
    "Tracker",
    "Trackers",
    "WandbTracker",
    "build_trackers",
    "require",
]
log = logging.getLogger(__name__)
# The `_target_`s a logger node may name (Hydra's execution whitelist). A tracker from another
# package: add its prefix here.
TRACKER_TARGETS = ("budgetsweep.trainer.trackers.*",)


def build_trackers(cfg: DictConfig) -> dict[str, Tracker]:
    """One tracker per `cfg.logger` node; TrainConfigError (one line) for a bad node or a
    missing package."""
    trackers = {}
    for name, node in (cfg.get("logger") or {}).items():
        target = node.get("_target_") if isinstance(node, Mapping) else None
        if not isinstance(target, str) or not target.startswith(tuple(p.rstrip("*") for p in TRACKER_TARGETS)):
            raise TrainConfigError(f"logger.{name}._target_: expected a class under {TRACKER_TARGETS}, got {target!r}")
        try:
            tracker = hydra.utils.instantiate(node, _execution_whitelist_=TRACKER_TARGETS)
        except InstantiationException as e:
            cause = e.__cause__
            if isinstance(cause, TrainConfigError):  # a missing package: its own line
                raise cause from None
            raise TrainConfigError(f"logger.{name}: {first_line(cause or e)}") from None
        if not isinstance(tracker, Tracker):
            raise TrainConfigError(f"logger.{name}: {target} is not a budgetsweep.trainer.trackers.Tracker")
        trackers[str(name)] = tracker
    return trackers


def job_name(cfg: DictConfig, run_dir: Path) -> str:
    if cfg.sweep.trial is not None:
        return f"trial-{cfg.sweep.trial}"
    return "/".join(run_dir.parts[-2:])


class Trackers:
    """The job's trackers, started once (or resumed), fed each epoch once, ended once."""

    def __init__(self, trackers: dict[str, Tracker], run_dir: str | Path, fingerprint: str) -> None:
        # csv adds nothing to what the loop writes: with it alone there is nothing to drive (no trackers.json)
        self.trackers = {n: t for n, t in trackers.items() if type(t) is not CsvTracker}
        self.run_dir = Path(run_dir).resolve()
        self.fingerprint = fingerprint
        self.state: dict[str, Any] = {"fingerprint": fingerprint, "logged_epochs": 0, "trackers": {}}
        self.started = False

    def _earlier(self) -> dict | None:
        """The state a killed job of this config left, when its checkpoint will resume it."""
        path = self.run_dir / TRACKERS_FILE
        if not (self.run_dir / CHECKPOINT_FILE).exists() or not path.is_file():
            return None
        try:
            earlier = json.loads(path.read_text())
        except (ValueError, OSError):
            return None
        return earlier if isinstance(earlier, dict) and earlier.get("fingerprint") == self.fingerprint else None

    def start(self, cfg: DictConfig) -> None:
        if not self.trackers:
            return
        self.started = True
        earlier = self._earlier()
        if earlier is not None:
            self.state["logged_epochs"] = int(earlier.get("logged_epochs", 0))
        config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        for name, tracker in list(self.trackers.items()):
            before = (earlier or {}).get("trackers", {}).get(name)
            run = TrackedRun(
                self.run_dir,
                job_name(cfg, self.run_dir),
                cfg.sweep.study,
                list(cfg.tags),
                before,
                self.state["logged_epochs"] if before is not None else 0,
            )
            self.state["trackers"][name] = self._call(name, tracker.start, config, run) or {}
        self._save()

    def on_epoch(self, epoch: int, row: Mapping[str, Any]) -> None:
        logged = self.state["logged_epochs"]
        if not self.trackers or epoch <= logged:
            return  # a restart from an older checkpoint: this epoch is in the trackers already
        rows = [r for r in self._history() if logged < r["epoch"] < epoch] + [dict(row)]
        for r in rows:
            for name, tracker in list(self.trackers.items()):
                self._call(name, tracker.log_epoch, r)
        self.state["logged_epochs"] = epoch
        self._save()

    def end(self, metrics: Mapping[str, Any]) -> None:
        if not self.started:
            return  # the job stopped before training (its data did not load)
        for name, tracker in list(self.trackers.items()):
            self._call(name, tracker.end, metrics)

    def _history(self) -> list[dict]:
        path = self.run_dir / HISTORY_FILE
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return [{k: (int if k == "epoch" else float)(r[k]) for k in HISTORY_COLUMNS} for r in csv.DictReader(f)]

    def _call(self, name: str, call, *args):
        try:
            return call(*args)
        except Exception as e:  # a tracker's server or disk problem must not cost the training
            log.warning("logger.%s: %s: %s; this logger is off for the rest of the run", name, type(e).__name__, e)
            self.trackers.pop(name, None)
            return None

    def _save(self) -> None:
        write_atomic(self.run_dir / TRACKERS_FILE, (json.dumps(self.state, indent=2) + "\n").encode())
