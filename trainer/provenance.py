"""Where a result came from: the code's git commit (and whether the tree had changes), the
host, the SLURM job it ran in, the versions of the libraries that shape a result. Recorded in
metrics.json."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from budgetsweep.contract.sweep import slurm_job_id

SOURCE = Path(__file__).resolve().parents[1]  # the project's checkout, when run from one
LIBRARIES = ("torch", "hydra-core", "omegaconf", "optuna", "numpy")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(SOURCE), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # no git on this machine
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout the code runs from; (None, None) outside a checkout
    (an installed package). Dirty: tracked files differ from the commit (untracked ones do not count)."""
    if not (SOURCE / ".git").exists():
        return None, None
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, None if status is None else bool(status)


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name.removesuffix("-core")] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name.removesuffix("-core")] = None
    return found


def provenance() -> dict:
    """metrics.json's provenance keys: git_commit, git_dirty, host, slurm_job_id (null outside
    SLURM), versions."""
    commit, dirty = git_state()
    host, job = socket.gethostname(), slurm_job_id(os.environ)
    return dict(git_commit=commit, git_dirty=dirty, host=host, slurm_job_id=job, versions=versions())
