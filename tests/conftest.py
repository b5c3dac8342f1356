"""Shared test helpers: a composed config cut down to a seconds-long CPU run."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pytest
from hydra import compose, initialize_config_dir

from budgetsweep.trainer import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Small enough that a run takes a second on one core; learnable enough to beat chance.
TINY = [
    "experiment=quick",
    "data.n_train=160",
    "data.n_test=64",
    "data.val_size=64",
    "progress=false",
    "device=cpu",
]


def compose_cfg(overrides=()):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="config", overrides=[*TINY, *overrides])


@pytest.fixture
def tiny_cfg():
    return compose_cfg


def run_app(args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python run.py ARGS` as a user would type it, from `cwd`, outputs under `cwd`."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_apps_together(jobs: list[tuple[list[str], Path]], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """`run_app(args, cwd)` for each job, as many at a time as this process has cores. For runs
    that spend their time starting Python and torch (a tiny run on one thread, or one that stops
    at bad input): on 2 cores two of them take the time of one."""
    with ThreadPoolExecutor(max_workers=max(len(os.sched_getaffinity(0)), 1)) as pool:
        return list(pool.map(lambda job: run_app(*job, timeout=timeout), jobs))


def run_cases_together(
    request: pytest.FixtureRequest,
    folders: pytest.TempPathFactory,
    test_name: str,
    args_of: Callable[[dict], list[str]],
    timeout: float = 300,
) -> dict[str, subprocess.CompletedProcess]:
    """For a module fixture: each case of the parametrized `test_name` (in the requesting module)
    that this session runs, as `run_app(args_of(its params))` in a folder of its own, all of them
    through `run_apps_together`; the results by case id (`request.node.callspec.id` in the test)."""
    cases = [
        (item.callspec.id, item.callspec.params)
        for item in request.session.items
        if getattr(item, "originalname", "") == test_name and item.module is request.module
    ]
    jobs = [(args_of(params), folders.mktemp("case")) for _, params in cases]
    return {case: proc for (case, _), proc in zip(cases, run_apps_together(jobs, timeout))}
