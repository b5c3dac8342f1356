"""The end of a sweep in the log, read back from its job folders: how the runs ended, the best
one, and the command that makes the tables. Shared by the ablation sweeper
(`ablation_summary`) and the summary callback of Hydra's own sweepers (`callbacks`); the Optuna
sweeper's comes from its study (`summary`).

Folders are read through the run contract (`contract.read_metrics`: run.py's metrics.json or the
sweeper's sweep_record.json), so every app's runs are summarised by one rule, and the best run
is the one `contract.sweep.best_run` picks, the rule `budgetsweep analyze` applies too.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from budgetsweep.contract import STATUSES, read_metrics
from budgetsweep.contract.sweep import best_run, folder_order

Runs = list[tuple[Path, dict]]


def read_runs(sweep_dir: Path) -> Runs:
    """(folder, record) of the job folders of `sweep_dir` that hold a record, in folder order."""
    if not sweep_dir.is_dir():
        return []
    folders = sorted((p for p in sweep_dir.iterdir() if p.is_dir()), key=lambda p: folder_order(p.name))
    return [(folder, record) for folder in folders if (record := read_metrics(folder)) is not None]


def status_line(what: str, records: Sequence[dict], folders: int | None = None) -> str:
    """ "Grid: 6 runs: 5 completed, 1 failed" (the contract's statuses first); `folders`: the job
    folders found, when some hold no record (a job killed before its end)."""
    counts = Counter(str(record.get("status")) for record in records)
    order = [s for s in STATUSES if s in counts] + sorted(s for s in counts if s not in STATUSES)
    shown = ", ".join(f"{counts[s]} {s}" for s in order) or "none recorded"
    unrecorded = f", {folders - len(records)} without a record" if folders and folders > len(records) else ""
    return f"{what}: {len(records)} runs: {shown}{unrecorded}"


def best_line(runs: Runs, name: str, direction: str, describe: Callable[[dict], str]) -> str | None:
    """ "Best: <describe(run)>, val_acc=0.8125, in outputs/..." for `best_run`'s pick; None: no run competes."""
    best = best_run([record for _, record in runs], direction)
    if best is None:
        return None
    folder = next(f for f, record in runs if record is best)
    return f"Best: {describe(best)}, {name}={float(best['objective']):.4g}, in {shown(folder)}"


def analyze_line(sweep_dir: Path) -> str:
    return f"tables and plots: budgetsweep analyze {shlex.quote(shown(sweep_dir))}"


def shown(path: Path) -> str:
    """`path` as the user would type it: relative to the working folder when inside it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative
