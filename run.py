"""The training app: `python run.py [overrides]`, or `python run.py -m ...` for a sweep.

Returns the objective (the best epoch's validation accuracy) to Hydra, None when the run did
not complete. A user mistake (a config that cannot build a model, missing data) ends a single
run with one line on stderr and exit code 2; inside a sweep an invalid config is recorded
(status invalid) and the sweep goes on. Ctrl-C ends a single run, or a sweep of Hydra's own
sweeper, with one line saying how to resume and exit code 130; inside our sweepers the
KeyboardInterrupt goes on to the sweeper, which stops its jobs and says so itself.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

INTERRUPTED = 130  # the exit status of a program ended by Ctrl-C (128 + SIGINT), as shells report it
STARTING = "interrupted before training began; rerun the same command to start it again"

try:  # seconds of loading torch: Ctrl-C there is one line too, not the traceback of an import
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig

    from budgetsweep.contract import CHECKPOINT_FILE
    from budgetsweep.trainer import DataError, register_configs, train
    from budgetsweep.trainer.loop import Interrupted
except KeyboardInterrupt:
    print(STARTING, file=sys.stderr)
    sys.exit(INTERRUPTED)

log = logging.getLogger("run")
register_configs()
_interrupted_sweep: list[str] = []  # the sweep folder of a job interrupted in this process


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
    except KeyboardInterrupt as e:
        if hc.mode == RunMode.RUN:
            print(interrupted_run(e, hc.runtime.output_dir, _given(hc, "hydra.run.dir")), file=sys.stderr)
            sys.exit(INTERRUPTED)
        _interrupted_sweep[:] = [] if _given(hc, "hydra.sweep.dir") else [str(hc.sweep.dir)]
        raise  # the sweeper's to handle: it stops its other jobs
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
        reason = f": {metrics['error']}" if metrics["error"] else ""  # a pruned run has none to give
        log.warning("%s after %d epochs%s -> %s", metrics["status"], metrics["epochs"], reason, hc.runtime.output_dir)
    return metrics["objective"]


def _given(hc: DictConfig, key: str) -> bool:
    """Whether the command line set `key` (then the same command finds the same folder)."""
    return any(o.split("=", 1)[0].lstrip("+") == key for o in hc.overrides.hydra)


def interrupted_run(e: KeyboardInterrupt, run_dir: str, dir_given: bool) -> str:
    """The one line a single run ends with on Ctrl-C: where it stopped and how to resume it (the
    rerun must find its folder: Hydra's default run folder is a new one each time)."""
    where = str(e) if isinstance(e, Interrupted) else "interrupted"
    rerun = "rerun the same command" if dir_given else f"rerun with hydra.run.dir={_shown(run_dir)}"
    if (Path(run_dir) / CHECKPOINT_FILE).is_file():
        saved = f" (epoch {e.saved})" if isinstance(e, Interrupted) and e.saved else ""
        return f"{where}; {rerun} to resume from its checkpoint{saved}"
    return f"{where}, before its first checkpoint; {rerun} to start it again"


def interrupted_sweep(multirun: bool) -> str:
    """The one line a sweep of Hydra's own sweeper ends with on Ctrl-C (ours say their own), or a
    run interrupted before its training began."""
    if not multirun:
        return STARTING
    if _interrupted_sweep:
        rerun = f"rerun with hydra.sweep.dir={_shown(_interrupted_sweep[0])}"
    elif any(a.split("=", 1)[0] == "hydra.sweep.dir" for a in sys.argv[1:]):
        rerun = "rerun the same command"
    else:
        rerun = "rerun with hydra.sweep.dir set to its folder"
    return f"interrupted; {rerun} to resume the interrupted jobs from their checkpoints"


def _shown(folder: str) -> str:
    """`folder` relative to here when it is below, as the user would type it."""
    path = Path(folder).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


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
    multirun = "-m" in sys.argv or "--multirun" in sys.argv
    if multirun:
        from budgetsweep.sweeper._compat import launchers_quiet_on_ctrl_c

        launchers_quiet_on_ctrl_c()  # a launcher's processes print nothing on Ctrl-C; this one says it
    try:
        main()
    except KeyboardInterrupt:  # out of a sweep of Hydra's own sweeper (ours end with their own line)
        from budgetsweep.sweeper._compat import kill_joblib_workers

        kill_joblib_workers()  # joblib's workers would otherwise keep the exit waiting for their jobs
        print(interrupted_sweep(multirun), file=sys.stderr)
        sys.exit(INTERRUPTED)
