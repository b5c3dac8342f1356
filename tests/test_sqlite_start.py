"""SQLite workers started together on a new study folder: none of them fails creating Optuna's
tables (`UNIQUE constraint failed: alembic_version.version_num` once killed all but one), and
together they train exactly n_trials trials.

The race is a few milliseconds wide: processes that meet at a barrier before opening the study
hit it every few starts; whole sweeps started at once hit it less often, so they are run once
per worker count here (each start costs several seconds of Python and Hydra start-up)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from budgetsweep.contract.storage import sqlite_url

from helpers import OPTUNA, env, install_app, load_study, trained

STARTS = 10  # new databases opened by the workers at the barrier


def open_together(barrier, folder: str, errors) -> None:
    """One worker: for each new database, wait for the others, then open the study as a sweep does."""
    import os

    from budgetsweep.sweeper.optuna_storage import open_study

    def open_(path: Path) -> None:
        settings = dict(sampler=None, pruner=None, direction="maximize", heartbeat_interval=10, grace_period=30)
        open_study(sqlite_url(path), "s", **settings)

    open_(Path(folder) / f"warm-{os.getpid()}.db")  # Optuna's and SQLAlchemy's lazy imports, before the barrier
    for start in range(STARTS):
        barrier.wait()
        try:
            open_(Path(folder) / str(start) / "study.db")
        except Exception as e:
            errors.put(f"start {start}: {e}")


@pytest.mark.parametrize("n_workers", [3, 5])
def test_workers_opening_a_new_sqlite_study_at_once_all_succeed(tmp_path, n_workers):
    for start in range(STARTS):
        (tmp_path / str(start)).mkdir()
    ctx = multiprocessing.get_context("spawn")  # no fork of pytest's process and its threads
    barrier, errors = ctx.Barrier(n_workers), ctx.Queue()
    workers = [ctx.Process(target=open_together, args=(barrier, str(tmp_path), errors)) for _ in range(n_workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
    failed = []
    while not errors.empty():
        failed.append(errors.get())
    assert failed == [] and [w.exitcode for w in workers] == [0] * n_workers
    for start in range(STARTS):
        assert [s.study_name for s in _studies(tmp_path / str(start) / "study.db")] == ["s"]


def _studies(path: Path):
    import optuna

    return optuna.get_all_study_summaries(sqlite_url(path))


@pytest.mark.slow
@pytest.mark.parametrize("n_workers", [3, 5])
def test_sweeps_started_at_once_on_a_new_folder_all_finish_with_n_trials(tmp_path, n_workers):
    n_trials = 4
    script = install_app("xy", tmp_path)
    args = [
        *(sys.executable, str(script), "-m", OPTUNA, "x=interval(-2,2)", "y=interval(-2,2)"),
        *(f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.study_name=s", "hydra.sweeper.dir=D"),
    ]
    procs = [
        subprocess.Popen(args, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n_workers)
    ]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n_workers, "\n".join(e[-1000:] for e in errs)
    assert len(trained(load_study(tmp_path / "D"))) == n_trials
