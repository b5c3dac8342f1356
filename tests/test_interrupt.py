"""Ctrl-C, as a terminal sends it (SIGINT to the whole process group), of a single run, a grid
of Hydra's own sweeper, an ablation sweep and an Optuna sweep, under the basic, joblib and
submitit-local launchers, and of an ablation of a foreign app.

What the user relies on: the program stops with one line saying how to resume (Optuna's own
"study created" log line aside, at most 2 lines on stderr, no traceback, no warning from a
worker), exit status 130 (a run, a grid) or 1 (our sweepers, as any sweep they end early),
no process of the sweep left running, and the command the line names finishes the work without
starting over: the interrupted job resumes from its checkpoint, and a job our sweepers finished
before is kept as it is.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import (
    ABLATION,
    RUN_PY,
    RUN_PY_OPTUNA,
    TINY_TO_INTERRUPT,
    env,
    install_app,
    run_cases_together,
    start_sweep,
)

# Three epochs of a second or so, so that Ctrl-C after the first checkpoint lands in a job.
LONGER = [*TINY_TO_INTERRUPT, "epochs=4"]
LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "submitit": ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],
}
# Warnings stay off, as for every test, but for the one a killed worker leaves behind.
WARNINGS = "ignore,default::UserWarning:multiprocessing.resource_tracker"
RERUN_WITH = re.compile(r"rerun with (hydra\.(?:run|sweep)\.dir=\S+)")


@dataclass(frozen=True)
class Case:
    """A command of `app` (run.py, or a foreign app of tests/apps), Ctrl-C once `ready` (a glob in
    its folder) exists; its job folders (`runs`, a glob) and the exit status it ends with."""

    app: str
    args: tuple[str, ...]
    ready: str
    runs: str
    status: int


def grid(launcher: str) -> Case:
    sweep_dir = [] if launcher == "basic" else ["hydra.sweep.dir=sweep"]  # basic: the line names the folder
    where = "outputs/sweeps/*" if launcher == "basic" else "sweep"
    ready = f"{where}/1/checkpoint.pt" if launcher == "basic" else f"{where}/[01]/checkpoint.pt"
    args = ("-m", "model.C=8,16", *LONGER, *LAUNCHERS[launcher], *sweep_dir)
    return Case("run.py", args, ready, f"{where}/[0-9]", 130)


def ablation(launcher: str) -> Case:
    # the baseline (model.C=8, experiment=quick's) and one variant: with the basic launcher the
    # baseline has finished by the time the variant has a checkpoint
    ready = "1" if launcher == "basic" else "[01]"
    args = ("-m", ABLATION, *LONGER, "model.C=8,16", *LAUNCHERS[launcher])
    return Case("run.py", args, f"outputs/ablation/*/{ready}/checkpoint.pt", "outputs/ablation/*/[0-9]", 1)


def optuna(launcher: str) -> Case:
    parallel = "1" if launcher == "basic" else "2"
    ready = "1" if launcher == "basic" else "[01]"
    args = (
        *RUN_PY_OPTUNA,
        *LONGER,
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.study_name=ctrlc",
        f"hydra.sweeper.n_jobs={parallel}",
        *LAUNCHERS[launcher],
    )
    return Case("run.py", args, f"outputs/optuna/ctrlc/{ready}/checkpoint.pt", "outputs/optuna/ctrlc/[0-9]", 1)


slow = pytest.mark.slow
CASES = {
    "run": Case("run.py", tuple(LONGER), "outputs/runs/*/checkpoint.pt", "outputs/runs/*", 130),
    **{f"grid-{name}": grid(name) for name in LAUNCHERS},
    **{f"ablation-{name}": ablation(name) for name in LAUNCHERS},
    **{f"optuna-{name}": optuna(name) for name in LAUNCHERS},
    # a foreign app's jobs: 10 steps of 0.3 s, progress.json kept after each
    "ablation-xy": Case(
        "xy",
        ("-m", ABLATION, "x=0,2", "steps=10", "sleep=0.3"),
        "outputs/ablation/*/1/progress.json",
        "outputs/ablation/*/[0-9]",
        1,
    ),
}
# Over 20 s each here (starting worker processes, a second sweep): run with the slow ones.
SLOW = {
    "optuna-basic",
    *(f"{sweep}-{name}" for sweep in ("grid", "ablation", "optuna") for name in ("joblib", "submitit")),
}


def marks(name: str) -> list:
    found = "submitit" not in name or importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher")
    return [
        *([slow] if name in SLOW else []),
        pytest.mark.skipif(not found, reason="hydra-submitit-launcher is not installed (the slurm extra)"),
    ]


@dataclass
class Interrupted:
    """What the interrupted command left (`stderr`, `status`, `left`: processes of its group still
    running after it ended), the job folders it had finished and those it interrupted after their
    first checkpoint, and the rerun."""

    stderr: list[str]
    status: int
    left: list[str]
    finished: dict[Path, tuple[bytes, int]]  # a finished job's record: (bytes, mtime)
    interrupted: list[Path]
    rerun: subprocess.CompletedProcess
    rerun_args: list[str]


def command(case: Case, cwd: Path) -> list[str]:
    if case.app == "run.py":
        return [*RUN_PY, *case.args]
    return [sys.executable, str(install_app(case.app, cwd)), *case.args]


def running_in_group(pgid: int) -> list[str]:
    """The processes of group `pgid` not yet ended (zombies excluded), by command line."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
    return alive


def record_of(case: Case, run: Path) -> Path | None:
    """The job's record, when it has one: run.py's metrics.json, the ablation sweeper's own for a
    foreign app."""
    record = run / ("metrics.json" if case.app == "run.py" else "sweep_record.json")
    return record if record.is_file() else None


def ctrl_c_and_rerun(case: Case, cwd: Path) -> Interrupted:
    args = command(case, cwd)
    with open(cwd / "first.err", "w") as err:
        proc = start_sweep(args, cwd, subprocess.DEVNULL, err, PYTHONWARNINGS=WARNINGS)
    try:
        deadline = time.monotonic() + 240
        while not glob.glob(str(cwd / case.ready)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"ended before Ctrl-C:\n{(cwd / 'first.err').read_text()[-3000:]}"
        os.killpg(proc.pid, signal.SIGINT)
        status = proc.wait(timeout=120)
        deadline = time.monotonic() + 10
        while (left := running_in_group(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    stderr = [line for line in (cwd / "first.err").read_text().splitlines() if line.strip()]
    runs = [Path(p) for p in glob.glob(str(cwd / case.runs))]
    finished = {r: (r.read_bytes(), r.stat().st_mtime_ns) for run in runs if (r := record_of(case, run))}
    progress = "checkpoint.pt" if case.app == "run.py" else "progress.json"
    interrupted = [run for run in runs if record_of(case, run) is None and (run / progress).is_file()]
    again = [*args, *(m.group(1) for m in RERUN_WITH.finditer(stderr[-1] if stderr else ""))]
    rerun = subprocess.run(again, cwd=cwd, env=env(), capture_output=True, text=True, timeout=400)
    return Interrupted(stderr, status, left, finished, interrupted, rerun, again)


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """Every selected case, Ctrl-C'd and rerun, two at a time."""
    return run_cases_together(
        request,
        tmp_path_factory,
        "test_ctrl_c_says_one_line_and_the_rerun_resumes",
        lambda p: p["case"],
        run=ctrl_c_and_rerun,
    )


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=name, marks=marks(name)) for name, case in CASES.items()],
)
def test_ctrl_c_says_one_line_and_the_rerun_resumes(outcomes, request, case):
    got: Interrupted = outcomes[request.node.callspec.id]
    shown = "\n".join(got.stderr)
    assert got.status == case.status, shown
    assert 1 <= len(got.stderr) <= 2 and "Traceback" not in shown and "Warning" not in shown, shown
    line = got.stderr[-1]
    assert "interrupted" in line and "rerun" in line.lower() and "resume" in line, line
    assert not got.left, f"still running after the command ended: {got.left}"

    assert got.rerun.returncode == 0, got.rerun.stderr[-3000:]
    assert got.interrupted, "no job was interrupted after its first checkpoint"
    for run in got.interrupted:  # resumed where it stopped, not started over, and finished
        if case.app == "run.py":
            assert "resumed from" in (run / "run.log").read_text(), run
            assert '"status": "completed"' in (run / "metrics.json").read_text()
        else:
            assert "resumed from step" in got.rerun.stdout
            assert (run / "sweep_record.json").is_file()
    if case.status == 1:  # our sweepers keep what a job finished before
        for record, (content, mtime) in got.finished.items():
            assert (record.read_bytes(), record.stat().st_mtime_ns) == (content, mtime), record
    if request.node.callspec.id in ("run", "grid-basic"):  # Hydra's default folder is new each time
        assert got.rerun_args[-1].startswith("hydra."), line  # so the line names the one to rerun in
