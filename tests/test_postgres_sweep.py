"""Two sweep processes share one study through a real PostgreSQL server (started by the test):
the study ends with exactly n_trials trained trials, each run once, by one worker, in its own
folder; and the storage password appears in no output, log or file."""

from __future__ import annotations

import re
import subprocess

import pytest
from optuna.trial import TrialState

from helpers import env, load_study, metrics, postgres_server, run_folders, sweep_args, trained

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PASSWORD = "pw-Xq7-never-in-logs"


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server(PASSWORD) as url:
        yield url


def test_two_workers_share_one_study_with_no_duplicate_or_lost_trial(tmp_path, pg_url, monkeypatch):
    n_trials = 6
    args = sweep_args(
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
        "seed=range(0,1000)",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.study_name=shared",
        "hydra.sweeper.heartbeat.interval=1",
    )
    # the URL with its password: on one worker's command line, in the other's $BUDGETSWEEP_STORAGE
    ways = [(args + [f"hydra.sweeper.storage={pg_url}"], env()), (args, env(BUDGETSWEEP_STORAGE=pg_url))]
    workers = [
        subprocess.Popen(a, cwd=tmp_path, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for a, e in ways
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]

    # each trial was launched by exactly one worker, and together they ran exactly n_trials
    launched = [set(map(int, re.findall(r"trial (\d+): launching", out))) for out, _ in outputs]
    assert all(launched), "both workers should have trained trials"
    assert not launched[0] & launched[1] and len(launched[0] | launched[1]) == n_trials

    study_dir = tmp_path / "outputs" / "optuna" / "shared"
    monkeypatch.setenv("BUDGETSWEEP_STORAGE_PASSWORD", PASSWORD)
    study = load_study(study_dir)
    done = trained(study)
    numbers = sorted(t.number for t in done)
    assert numbers == sorted(launched[0] | launched[1])
    assert all(t.state == TrialState.COMPLETE for t in done)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert [int(p.name) for p in run_folders(study_dir)] == numbers
    for t in done:
        m = metrics(study_dir / str(t.number))
        assert m["status"] == "completed" and m["trial"] == t.number and m["study"] == "shared"
        assert t.value == pytest.approx(m["objective"])

    # the password: in no stdout/stderr, no file under outputs/ (hydra.yaml, overrides, study.json, logs)
    for out, err in outputs:
        assert PASSWORD not in out and PASSWORD not in err
    files = [f for f in (tmp_path / "outputs").rglob("*") if f.is_file()]
    assert any(f.name == "hydra.yaml" for f in files)
    leaked = [str(f) for f in files if PASSWORD.encode() in f.read_bytes()]
    assert leaked == []
    assert "postgresql://budgetsweep:***@127.0.0.1" in (study_dir / "study.json").read_text()
    hydra_yaml = (study_dir / str(numbers[0]) / ".hydra" / "hydra.yaml").read_text()
    assert "hydra.sweeper.storage='postgresql://budgetsweep:***@" in hydra_yaml
