"""Helpers for the Optuna sweeper tests: run `run.py -m hydra/sweeper=optuna` as a user would,
find the study it made, read it back. Imported by tests/test_optuna*.py and test_postgres*.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from tests.conftest import TINY as RUN_TINY

ROOT = Path(__file__).resolve().parents[1]

# A trial trains for well under a second: tiny generated data, a ~6k-parameter model, one
# thread (a tiny model on a busy 2-core machine: epoch 1 takes 0.2 s instead of 6 s).
# (model.C >= 8: a 4-channel channels_last conv crashes torch 2.14's CPU backward with 1 thread.)
TINY = [*RUN_TINY, "threads=1", "model.N=2", "model.B=1", "model.C=8"]


def sweep_args(*args: str) -> list[str]:
    """The default search space and pruner dropped (hydra.sweeper.params=null, pruner none): each
    test gives its own (`++hydra.sweeper.pruner={_target_:...}` replaces the none pruner)."""
    return [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.params=null",
        "hydra/sweeper/pruner=none",
        *TINY,
        *args,
    ]


def env(**extra: str) -> dict:
    return {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore", **extra}


def run_sweep(cwd: Path, *args: str, timeout: float = 240, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        sweep_args(*args), cwd=cwd, env=env(**extra_env), capture_output=True, text=True, timeout=timeout
    )


def study_dirs(cwd: Path) -> list[Path]:
    root = cwd / "outputs" / "optuna"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def run_folders(study_dir: Path) -> list[Path]:
    return sorted((p for p in study_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def metrics(run_dir: Path) -> dict:
    from budgetsweep.contract import load_metrics

    return load_metrics(run_dir)


def load_study(study_dir: Path):
    """The study named in study.json (the masked password comes back from the environment)."""
    import optuna

    from budgetsweep.contract.layouts import read_study
    from budgetsweep.sweeper.optuna_storage import make_storage

    record = read_study(study_dir)
    return optuna.load_study(study_name=record.study_name, storage=make_storage(record.storage))


def trained(study) -> list:
    """Trials that count in n_trials (feasible, launched), whatever their end."""
    from budgetsweep.sweeper.slots import SLOT

    return [t for t in study.get_trials(deepcopy=False) if t.system_attrs.get(SLOT) is True]


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
