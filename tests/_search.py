"""Helpers for the search tests (tests/test_search_*.py): run a tiny app of tests/apps/ with our
Optuna sweeper from a temporary folder, find its study, read it back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
APPS = ROOT / "tests" / "apps"


def default_space(prefix: str = "") -> dict[str, str]:
    """The whole family's search space (experiment=family_search), the keys under `prefix`."""
    preset = yaml.safe_load((ROOT / "conf" / "experiment" / "family_search.yaml").read_text())
    params = preset["hydra"]["sweeper"]["params"]
    return {k: str(v) for k, v in params.items() if k.startswith(prefix)}


def run_app(where: Path, app: str, *args: str, python: list[str] | None = None, timeout: float = 240):
    """`python app.py -m hydra/sweeper=budget_optuna ARGS` in `where` (the app copied there)."""
    for f in (APPS / app).iterdir():
        if f.is_file():
            shutil.copy(f, where / f.name)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    cmd = [*(python or [sys.executable]), str(where / "app.py"), "-m", "hydra/sweeper=budget_optuna", *args]
    return subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=timeout)


def only_study_dir(where: Path) -> Path:
    (study_dir,) = [p for p in (where / "outputs" / "optuna").iterdir() if p.is_dir()]
    return study_dir
