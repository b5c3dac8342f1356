"""Fixtures shared by the test modules; the helpers they use are in the `helpers` package."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from helpers import compose_cfg


@pytest.fixture
def tiny_cfg():
    """compose_cfg: run.py's config cut down to a seconds-long CPU run (TINY_RUN), plus overrides."""
    return compose_cfg


@pytest.fixture(autouse=True, scope="session")
def each_worker_alone(tmp_path_factory):
    """Test files run side by side (pytest-xdist); their processes must not see each other's.
    Each worker has its own registry of training jobs (threads=auto would count the other
    worker's runs, and a run's numbers depend on its thread count) and its own cache of compiled
    kernels (two processes building one kernel at once race on its file). Both are environment
    variables, so the runs the tests start get them too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUDGETSWEEP_REGISTRY", str(tmp_path_factory.mktemp("jobs")))
        # kept between runs (warm, as a user's cache is), one per worker
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", str(Path(tempfile.gettempdir()) / f"torchinductor-tests-{worker}"))
        yield
