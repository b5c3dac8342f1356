"""metrics.json records where a result came from: the git commit and whether the tree was
dirty (from a checkout), the host, the library versions, and the run's tags."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from importlib import metadata

import hydra
import optuna
import torch

from budgetsweep.contract import METRICS_KEYS
from budgetsweep.trainer import train

from helpers import ROOT


def test_metrics_record_commit_host_versions_and_tags(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["tags=[baseline,laptop]", "budget.max_params=1000"]), tmp_path)  # not trained: fast
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout
    assert metrics["git_commit"] == head and len(head) == 40
    assert metrics["git_dirty"] is bool(status.strip())
    assert metrics["host"] == socket.gethostname()
    versions = metrics["versions"]
    assert versions["torch"] == metadata.version("torch") and torch.__version__.startswith(versions["torch"])
    assert versions["hydra"] == hydra.__version__ and versions["optuna"] == optuna.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert metrics["tags"] == ["baseline", "laptop"] and list(metrics) == list(METRICS_KEYS)


def test_outside_a_checkout_the_commit_is_null(tmp_path):
    # the module copied out of the checkout, as in an installed package: no .git above it
    (tmp_path / "pkg").mkdir()
    shutil.copy(ROOT / "trainer" / "provenance.py", tmp_path / "pkg" / "provenance.py")
    out = subprocess.run(
        [sys.executable, "-c", "import provenance, json; print(json.dumps(provenance.provenance()))"],
        cwd=tmp_path / "pkg",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import json

    found = json.loads(out)
    assert found["git_commit"] is None and found["git_dirty"] is None and found["host"] == socket.gethostname()
