"""`logger=tensorboard`: event files, one folder per study (or sweep), one subfolder per job."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .base import EPOCH_PREFIX, RESULT_KEYS, RESULT_PREFIX, TrackedRun, Tracker, flat, numbers, require, scalar

EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


class TensorBoardTracker(Tracker):
    """Scalars `epoch/<column>` per epoch (step = epoch), `result/<key>` at the end, and the config
    as hparams (TensorBoard's HPARAMS tab: one row per job, the result/* columns beside it).

    Args:
        root: where the folders go: `<root>/<study>/trial-<n>`, `<root>/runs/<time>`, ...
    """

    def __init__(self, root: str = "outputs/tensorboard") -> None:
        require("tensorboard", "tensorboard")
        self.root = Path(root)
        self.writer: Any = None
        self.step = 0

    def start(self, config: dict, run: TrackedRun) -> dict:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        folder = (self.root / (run.group or "") / run.name).resolve()
        self.writer = SummaryWriter(str(folder))
        if run.state is None:  # the hparams summary once per job, not again on resume
            exp, ssi, self.end_summary = hparams(
                {k: scalar(v) for k, v in flat(config) if k.split(".")[0] not in ("logger", "hydra")},
                {f"{RESULT_PREFIX}{k}": 0.0 for k in RESULT_KEYS},
            )
            for summary in (exp, ssi):
                self.writer.file_writer.add_summary(summary)
        else:
            self.end_summary = hparams({"seed": config.get("seed", 0)}, {})[2]
        if run.tags:
            self.writer.add_text("tags", ", ".join(run.tags), 0)
        self.writer.flush()
        return {"dir": str(folder)}

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.step = int(row["epoch"])
        for key in EPOCH_KEYS:
            self.writer.add_scalar(f"{EPOCH_PREFIX}{key}", float(row[key]), self.step)
        self.writer.flush()

    def end(self, metrics: Mapping[str, Any]) -> None:
        step = int(metrics.get("epochs") or self.step)
        for key, value in numbers(metrics).items():
            self.writer.add_scalar(f"{RESULT_PREFIX}{key}", value, step)
        self.writer.file_writer.add_summary(self.end_summary)
        self.writer.close()
