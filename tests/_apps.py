"""Helpers for the foreign-app tests: copy an app that shares nothing with run.py into tmp_path and
run it as its user would, `python app.py -m hydra/sweeper=...`, from that folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
APPS = {
    "xy": ROOT / "tests" / "apps" / "xy",  # a function of x and y, no budget, no model
    "nobudget": ROOT / "tests" / "apps" / "nobudget",  # a model node but no budget; its own metrics.json
    "mlp": ROOT / "examples" / "mlp",  # plain PyTorch, an MLP `_target_` node, budget.max_params
}
SCRIPT = {"xy": "app.py", "nobudget": "app.py", "mlp": "train.py"}


def install(app: str, where: Path) -> Path:
    """The app's files copied into `where` (its outputs land there too)."""
    for f in APPS[app].iterdir():
        if f.is_file():
            shutil.copy(f, where / f.name)
    return where / SCRIPT[app]


def run_app(where: Path, app: str, *args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    script = install(app, where)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(script), "-m", *args], cwd=where, env=env, capture_output=True, text=True, timeout=timeout
    )


def job_config(run_dir: Path) -> dict:
    return yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())


def job_env(run_dir: Path) -> dict:
    """What the sweeper put in the job's Hydra config for it (hydra.job.env_set)."""
    return yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["env_set"]


def times(run_dir: Path) -> dict:
    return json.loads((run_dir / "times.json").read_text())


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def multirun_dir(where: Path) -> Path:
    """The one timestamped folder of an ablation sweep (Hydra's hydra.sweep.dir)."""
    (day,) = (where / "multirun").iterdir()
    (sweep,) = day.iterdir()
    return sweep
