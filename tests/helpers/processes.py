"""Starting our programs as a user would, in processes of their own: `python run.py ARGS`, a
foreign app of tests/apps/ (or examples/), a sweep that a test interrupts, and batches of short
runs side by side."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .paths import APPS, ROOT, SCRIPT

if TYPE_CHECKING:
    import pytest

RUN_PY = [sys.executable, str(ROOT / "run.py")]  # the command line that starts run.py

# Our sweepers, as an app that installs this package selects them.
OPTUNA = "hydra/sweeper=budget_optuna"
ABLATION = "hydra/sweeper=ablation"


def env(**extra: str) -> dict:
    """This process's environment for a child, errors as a user sees them (one line, no
    warnings), with `extra` set."""
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", **extra}


def run_py(args: Sequence[str], cwd: Path, *, timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """`python run.py ARGS` from `cwd` (its outputs land there), `extra_env` set; output captured."""
    return subprocess.run(
        [*RUN_PY, *args], cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout
    )


def install_app(app: str, where: Path) -> Path:
    """The files of APPS[app] copied into `where` (its outputs land there too); its script."""
    for f in APPS[app].iterdir():
        if f.is_file():
            shutil.copy(f, where / f.name)
        elif (f / "__init__.py").is_file():  # the app's own packages
            shutil.copytree(f, where / f.name, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    return where / SCRIPT.get(app, "app.py")


def run_foreign_app(
    where: Path, app: str, *args: str, python: list[str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """`python SCRIPT -m ARGS` from `where`, the app installed there; `python` replaces the
    interpreter's command (a wrapper script)."""
    script = install_app(app, where)
    cmd = [*(python or [sys.executable]), str(script), "-m", *args]
    return subprocess.run(cmd, cwd=where, env=env(), capture_output=True, text=True, timeout=timeout)


def run_apps_together(jobs: list[tuple[Any, Path]], timeout: float = 300, run: Callable | None = None) -> list:
    """`run_py(args, cwd)` (or `run(args, cwd)`) for each job, as many at a time as this process
    has cores. For runs that spend their time starting Python and torch (a tiny run on one
    thread, or one that stops at bad input): on 2 cores two of them take the time of one."""
    run = run or (lambda args, cwd: run_py(args, cwd, timeout=timeout))
    with ThreadPoolExecutor(max_workers=max(len(os.sched_getaffinity(0)), 1)) as pool:
        return list(pool.map(lambda job: run(*job), jobs))


def run_cases_together(
    request: pytest.FixtureRequest,
    folders: pytest.TempPathFactory,
    test_name: str,
    args_of: Callable[[dict], Any],
    timeout: float = 300,
    run: Callable | None = None,
) -> dict[str, Any]:
    """For a module fixture: each case of the parametrized `test_name` (in the requesting module)
    that this session runs, as `run_py(args_of(its params))` (or `run(args_of(...), folder)`) in a
    folder of its own, all of them through `run_apps_together`; the results by case id
    (`request.node.callspec.id` in the test)."""
    cases = [
        (item.callspec.id, item.callspec.params)
        for item in request.session.items
        if getattr(item, "originalname", "") == test_name and item.module is request.module
    ]
    jobs = [(args_of(params), folders.mktemp("case")) for _, params in cases]
    return {case: proc for (case, _), proc in zip(cases, run_apps_together(jobs, timeout, run))}


def answer_ctrl_c() -> None:
    """In the sweep's process, before it starts: SIGINT back to its default. A shell starts a
    background command (`cmd &` in a script) with SIGINT ignored, every child inherits that, and
    Python then installs no KeyboardInterrupt handler: a Ctrl-C a test sends would go unheard."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_sweep(args: list[str], cwd: Path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **extra_env: str):
    """`args` started in a process group of its own (signals reach its jobs too; for kill_when),
    answering Ctrl-C as from a terminal; its output discarded unless given."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env(**extra_env),
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=answer_ctrl_c,
    )


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float) -> None:
    """SIGKILL the process group of `proc` (started with start_new_session=True) as soon as
    `ready()` holds, as a crash or a reboot would; fails if the sweep ended first."""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
