"""The training app: `python run.py [overrides]`, or `python run.py -m ...` for a sweep.

Returns the objective (the best epoch's validation accuracy) to Hydra, None when the run did
not complete. A user mistake (a config that cannot build a model, missing data) ends a single
run with one line on stderr and exit code 2; inside a sweep an invalid config is recorded
(status invalid) and the sweep goes on.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from budgetsweep.trainer import DataError, register_configs, train

log = logging.getLogger("run")
register_configs()


def _epoch_reporter(cfg: DictConfig):
    """The Optuna sweeper's per-epoch hook (pruning), when this job is one of its trials."""
    if cfg.sweep.trial is None:
        return None
    from budgetsweep.sweeper.trial_reporter import epoch_reporter

    return epoch_reporter(cfg)


@hydra.main(config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    try:
        metrics = train(cfg, hc.runtime.output_dir, on_epoch=_epoch_reporter(cfg), overrides=list(hc.overrides.task))
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if metrics["status"] == "invalid":
        if hc.mode == RunMode.RUN:
            print(f"error: {metrics['error']}", file=sys.stderr)
            sys.exit(2)
    if metrics["status"] == "completed":
        log.info(
            "completed: val_acc %.4f test_acc %.4f -> %s",
            metrics["val_acc"],
            metrics["test_acc"],
            hc.runtime.output_dir,
        )
    else:
        log.warning(
            "%s after %d epochs: %s -> %s",
            metrics["status"],
            metrics["epochs"],
            metrics["error"] or "-",
            hc.runtime.output_dir,
        )
    return metrics["objective"]


def unusable_output_folder(argv: list[str]) -> str | None:
    """Why a run or sweep folder given on the command line cannot be created, or None.

    Hydra creates it before any code of ours runs, and a folder it cannot create (a file in
    the way, no write permission) would end in a traceback."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key not in ("hydra.run.dir", "hydra.sweep.dir") or not value:
            continue
        existing = Path(value.strip("'\""))
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            return f"{key}: cannot create {value}: {existing} is a file"
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{key}: cannot create {value}: {existing} is not writable"
    return None


if __name__ == "__main__":
    if problem := unusable_output_folder(sys.argv[1:]):
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    main()
