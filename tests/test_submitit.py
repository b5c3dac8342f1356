"""Both sweepers through a real launcher engine: hydra-submitit-launcher's local executor
(`hydra/launcher=submitit_local`, the SLURM launcher's twin), each trial a process that
submitit starts and watches. The foreign x-y app (tests/apps/xy) reports its steps through the
public pruning hook and keeps its progress in its folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from helpers import (
    OPTUNA,
    ablation_dir,
    env,
    install_app,
    job_config,
    kill_when,
    load_study,
    run_folders,
    run_foreign_app,
    start_sweep,
    study_dirs,
    times,
    trained,
)

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

SUBMITIT = ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]
PRUNE_FROM_STEP_2 = "+hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,upper:-1.0,n_warmup_steps:2}"


def ok(r) -> None:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_optuna_trials_run_as_submitit_processes_pruned_in_parallel_without_batches(tmp_path):
    # a grid of 4: steps=3 trials are pruned at step 2, steps=1 trials complete; trial 0 first
    # sleeps 12 s, so while it runs the other slot must run trial 1, then 2, then 3
    r = run_foreign_app(
        tmp_path,
        "xy",
        OPTUNA,
        *SUBMITIT,
        "hydra.sweeper.n_jobs=2",
        "hydra/sweeper/sampler=grid",
        "steps=choice(1,3)",
        "x=choice(0,1)",
        "hydra.sweeper.n_trials=4",
        "sleep=0.3",
        "slow_trial=0",
        "slow_seconds=12",
        PRUNE_FROM_STEP_2,
        timeout=400,
    )
    ok(r)
    (study_dir,) = study_dirs(tmp_path)
    study = load_study(study_dir)
    done = trained(study)
    assert sorted(t.number for t in done) == [0, 1, 2, 3] and len(study.trials) == 4  # exactly n_trials
    for t in done:
        if t.params["steps"] == 3:
            assert t.state == TrialState.PRUNED and sorted(t.intermediate_values) == [1, 2]
        else:
            assert t.state == TrialState.COMPLETE and t.value == pytest.approx((t.params["x"] - 1) ** 2 + 0.25)
    ran = {int(d.name): times(d) for d in run_folders(study_dir)}
    assert len({t["pid"] for t in ran.values()} | {os.getpid()}) == 5  # a process of its own each
    assert any((study_dir / ".submitit").rglob("*_log.out"))  # submitit's files, in the study's folder
    slow = ran[0]
    others = sorted((t for n, t in ran.items() if n != 0), key=lambda t: t["start"])
    # no batches: a trial started after another one ended, while trial 0 was still running
    assert any(a["end"] < b["start"] < slow["end"] for a, b in zip(others, others[1:])), ran


@pytest.mark.slow
def test_ablation_jobs_run_as_submitit_processes(tmp_path):
    r = run_foreign_app(tmp_path, "xy", "hydra/sweeper=ablation", *SUBMITIT, "x=-1,1", "y=2,3", timeout=400)
    ok(r)
    jobs = run_folders(ablation_dir(tmp_path))
    got = [(job_config(d)["x"], job_config(d)["y"]) for d in jobs]
    assert got == [(0.0, 0.0), (-1, 0.0), (1, 0.0), (0.0, 2), (0.0, 3)]  # 1 + 2 + 2, exactly
    assert len({times(d)["pid"] for d in jobs} | {os.getpid()}) == 6
    assert "Submitit 'local'" in r.stdout + r.stderr


@pytest.mark.slow
def test_a_killed_submitit_sweep_resumes_its_trial_in_its_folder(tmp_path):
    script = install_app("xy", tmp_path)
    args = [
        sys.executable,
        str(script),
        "-m",
        OPTUNA,
        *SUBMITIT,
        "hydra.sweeper.n_jobs=1",
        "x=interval(0,1)",
        "steps=6",
        "sleep=1.0",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.study_name=resume",
        "hydra.sweeper.heartbeat.interval=1",
        "hydra.sweeper.heartbeat.grace_period=2",
    ]
    study_dir = tmp_path / "outputs" / "optuna" / "resume"
    proc = start_sweep(args, tmp_path)
    progress = study_dir / "0" / "progress.json"  # killed once trial 0 is past step 2 and not done
    kill_when(proc, lambda: progress.exists() and '"step": 2' in progress.read_text(), 240)
    assert not (study_dir / "0" / "times.json").exists()

    r = subprocess.run(args, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=400)
    ok(r)
    study = load_study(study_dir)
    assert [(t.number, t.state) for t in trained(study)] == [(0, TrialState.COMPLETE), (1, TrialState.COMPLETE)]
    assert [p.name for p in run_folders(study_dir)] == ["0", "1"]
    assert times(study_dir / "0")["first_step"] >= 3  # went on from its progress, in its own folder
    assert "trial 0: resuming in its folder" in r.stdout + r.stderr
