"""`logger=wandb`: Weights & Biases, offline by default; an Optuna study's trials form one group."""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from budgetsweep.contract.storage import mask_args

from .base import EPOCH_PREFIX, RESULT_PREFIX, TrackedRun, Tracker, numbers, require
from .tb import EPOCH_KEYS

# W&B refuses a second init of a run id while this process holds it open: a job interrupted
# in-process (KeyboardInterrupt, the basic launcher) and started again must close it first.
_OPEN: dict[str, Any] = {}


@contextlib.contextmanager
def masked_argv() -> Iterator[None]:
    """sys.argv with its passwords masked while W&B starts a run: the run's metadata records the
    command line (`args`), and a sweep's trials run in the process whose command line may hold
    `hydra.sweeper.storage=postgresql://user:<password>@...` (the basic launcher)."""
    argv = sys.argv
    sys.argv = mask_args(argv)
    try:
        yield
    finally:
        sys.argv = argv


class WandbTracker(Tracker):
    """The config, `epoch/<column>` per epoch (step = epoch), `result/<key>` in the summary.

    Offline (the default), each job writes `<root>/wandb/offline-run-<time>-<id>/`; `wandb sync`
    uploads them later. A resumed job continues the same run id (`resume="allow"`).

    Args:
        project, entity: where the runs go once synced.
        mode: offline | online | disabled.
        root: the folder that gets `wandb/` (relative to the working directory).
    """

    def __init__(
        self, project: str = "budgetsweep", entity: str | None = None, mode: str = "offline", root: str = "outputs"
    ) -> None:
        self.wandb = require("wandb", "wandb")
        self.project, self.entity, self.mode, self.root = project, entity, mode, Path(root)
        self.run: Any = None

    def start(self, config: dict, run: TrackedRun) -> dict:
        wandb = self.wandb
        run_id = (run.state or {}).get("id") or secrets.token_hex(4)
        self.root.mkdir(parents=True, exist_ok=True)
        if run_id in _OPEN:  # this process started this job before and was interrupted
            _OPEN.pop(run_id).finish(exit_code=1)
            # offline folders are named offline-run-<time to the second>-<id>: a resume within the
            # same second would write into the first session's folder and lose its records
            time.sleep(1.0 - time.time() % 1.0)
        with masked_argv():
            self.run = wandb.init(
                project=self.project,
                entity=self.entity,
                mode=self.mode,
                dir=str(self.root.resolve()),
                id=run_id,
                resume="allow",
                name=run.name,
                group=run.group,
                tags=run.tags or None,
                config={k: v for k, v in config.items() if k not in ("logger",)},
                reinit="create_new",  # one process runs several jobs with the basic launcher
                settings=wandb.Settings(console="off", silent=True, save_code=False, x_disable_stats=True),
            )
        _OPEN[run_id] = self.run
        return {"id": run_id}

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.run.log({f"{EPOCH_PREFIX}{k}": float(row[k]) for k in EPOCH_KEYS}, step=int(row["epoch"]))

    def end(self, metrics: Mapping[str, Any]) -> None:
        self.run.summary.update({f"{RESULT_PREFIX}{k}": v for k, v in numbers(metrics).items()})
        self.run.summary["status"] = str(metrics.get("status"))
        _OPEN.pop(self.run.id, None)
        self.run.finish(exit_code=0 if metrics.get("status") in ("completed", "pruned") else 1)
