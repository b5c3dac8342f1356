"""Both sweepers through hydra-ray-launcher (`pip install -e ".[ray]"`, `hydra/launcher=ray`) on a
Ray head of this machine (127.0.0.1) that the module starts, as a cluster's head would be: each job
a task in one of Ray's worker processes, `n_jobs` trials at a time, exactly `n_trials` of them.
The foreign x-y app (tests/apps/xy) records when and in which process it ran (times.json)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from helpers import (
    ABLATION,
    OPTUNA,
    ablation_dir,
    job_config,
    load_study,
    run_folders,
    run_foreign_app,
    study_dirs,
    times,
)

pytest.importorskip(
    "hydra_plugins.hydra_ray_launcher", reason="hydra-ray-launcher is not installed (pip install -e '.[ray]')"
)


# Ray's own settings for the head and every sweep: no token written to ~/.ray, no usage report
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head` on 127.0.0.1 with 2 CPUs (two tasks at a time, whatever this machine
    has), in a process group of its own that is killed at the end; its address."""
    port = free_port()
    ray_dir = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must fit in 107 bytes
    ray = Path(sys.executable).with_name("ray")
    args = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}"]
    args += ["--num-cpus=2", "--include-dashboard=false", f"--temp-dir={ray_dir}", "--disable-usage-stats"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in RAY_ENV.items():
            mp.setenv(key, value)
        log = open(Path(ray_dir) / "head.log", "wb")
        head = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            address = f"127.0.0.1:{port}"
            wait_for_head(head, address, Path(ray_dir) / "head.log")
            yield address
        finally:
            os.killpg(head.pid, signal.SIGKILL)  # the head, its raylet and workers: one process group
            head.wait(30)
            log.close()


def wait_for_head(head: subprocess.Popen, address: str, log: Path, timeout: float = 120) -> None:
    check = [sys.executable, "-c", f"import ray; ray.init(address={address!r}); print(ray.cluster_resources())"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert head.poll() is None, log.read_text()[-3000:]
        if subprocess.run(check, capture_output=True, timeout=timeout).returncode == 0:
            return
        time.sleep(1)
    pytest.fail(f"no Ray head at {address} after {timeout} s: {log.read_text()[-3000:]}")


def ray_launcher(address: str) -> list[str]:
    return ["hydra/launcher=ray", f"hydra.launcher.ray.init.address={address}"]


def ok(r) -> None:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of these (start, end) intervals that held at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


@pytest.mark.slow
def test_optuna_runs_exactly_n_trials_two_at_a_time_on_ray(tmp_path, ray_head, monkeypatch):
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    r = run_foreign_app(
        tmp_path,
        "xy",
        OPTUNA,
        *ray_launcher(ray_head),
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage={storage}",
        "x=interval(-2,2)",
        "sleep=2",
        timeout=300,
    )
    ok(r)
    (study_dir,) = study_dirs(tmp_path)
    study = load_study(study_dir)
    assert [(t.number, t.state) for t in study.trials] == [(n, TrialState.COMPLETE) for n in range(6)]
    for t in study.trials:
        assert t.value == pytest.approx((t.params["x"] - 1) ** 2 + 0.25)
    ran = {int(d.name): times(d) for d in run_folders(study_dir)}
    assert sorted(ran) == list(range(6))  # each trial in its own folder, once
    assert os.getpid() not in {t["pid"] for t in ran.values()}  # in Ray's workers
    # n_jobs=2: two trials side by side, never more
    assert most_at_once([(t["start"], t["end"]) for t in ran.values()]) == 2, ran


@pytest.mark.slow
def test_ablation_jobs_run_as_ray_tasks(tmp_path, ray_head, monkeypatch):
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    r = run_foreign_app(tmp_path, "xy", ABLATION, *ray_launcher(ray_head), "x=-1,1", "y=2,3", "sleep=1", timeout=300)
    ok(r)
    jobs = run_folders(ablation_dir(tmp_path))
    got = [(job_config(d)["x"], job_config(d)["y"]) for d in jobs]
    assert got == [(0.0, 0.0), (-1, 0.0), (1, 0.0), (0.0, 2), (0.0, 3)]  # 1 + 2 + 2, exactly
    ran = [times(d) for d in jobs]
    assert os.getpid() not in {t["pid"] for t in ran}
    # one launch of the five: the head's 2 CPUs run two tasks at a time
    assert most_at_once([(t["start"], t["end"]) for t in ran]) == 2, ran
