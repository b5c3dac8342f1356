"""`python run.py -m hydra/sweeper=optuna` end to end on tiny generated data: the budget as a
constraint, pruning from the jobs (joblib workers), resume after SIGKILL, failures and
one-line errors. Each test runs the app in a subprocess, in its own tmp_path."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from optuna.trial import TrialState

from helpers import (
    env,
    kill_when,
    load_study,
    metrics,
    run_folders,
    run_sweep,
    start_sweep,
    study_dirs,
    sweep_args,
    trained,
)


@pytest.mark.slow
def test_budget_infeasible_trials_are_told_not_trained(tmp_path):
    # C in 8..24 and B in {1, 2} span 5.7k..98k parameters: a 20k budget makes most of it infeasible
    r = run_sweep(
        tmp_path,
        "budget.max_params=20000",
        "model.C=int(interval(8,24))",
        "model.B=choice(1,2)",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.seed=0",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    info = json.loads((study_dir / "study.json").read_text())
    assert info["storage"] == f"sqlite:///{study_dir / 'study.db'}" and info["study_name"] == study_dir.name

    study = load_study(study_dir)
    done = trained(study)
    assert len(done) == 2 and all(t.state == TrialState.COMPLETE for t in done)
    infeasible = [t for t in study.trials if t not in done]
    assert infeasible, "the space was meant to be mostly over budget"
    for t in infeasible:  # told at once, with the constraint Optuna 5 samplers read
        assert t.state == TrialState.PRUNED and t.user_attrs["status"] == "over_budget"
        assert t.constraints["params"] > 0 and t.user_attrs["params"] > 20000
    # only the feasible trials have folders, each named by its trial number, each under budget
    assert [p.name for p in run_folders(study_dir)] == [str(t.number) for t in done]
    for t in done:
        m = metrics(study_dir / str(t.number))
        assert m["status"] == "completed" and m["params"] <= 20000 and m["trial"] == t.number
        assert m["study"] == study.study_name and t.value == pytest.approx(m["objective"])
    assert study.best_trial in done
    assert (study_dir / "optimization_results.yaml").exists()


JOBLIB = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [[], JOBLIB], ids=["basic", "joblib"])
def test_pruner_stops_trials(tmp_path, launcher):
    # By design: ThresholdPruner(lower=1.01) prunes any trial that reports epoch 2 (no accuracy
    # reaches 1.01; n_warmup_steps=2 spares epoch 1). The grid's epochs=3 trials are pruned
    # after epoch 2, its epochs=1 trials complete. The job reports from its own process: this
    # one (basic launcher) or a joblib worker, two trials at a time.
    r = run_sweep(
        tmp_path,
        "hydra/sweeper/sampler=grid",
        "epochs=choice(1,3)",
        "seed=choice(0,1)",
        "hydra.sweeper.n_trials=4",
        *launcher,
        "++hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.01,n_warmup_steps:2}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    study = load_study(study_dir)
    done = trained(study)
    assert sorted(t.number for t in done) == [0, 1, 2, 3]
    for t in done:
        m = metrics(study_dir / str(t.number))
        rows = (study_dir / str(t.number) / "history.csv").read_text().strip().splitlines()
        if t.params["epochs"] == 3:
            assert t.state == TrialState.PRUNED and m["status"] == "pruned"
            assert m["epochs"] == 2 and len(rows) == 1 + 2  # header + 2 epochs: stopped, files written
            assert sorted(t.intermediate_values) == [1, 2]
        else:
            assert t.state == TrialState.COMPLETE and m["status"] == "completed"


@pytest.mark.slow
def test_resume_after_sigkill_keeps_finished_trials_and_resumes_the_interrupted_one(tmp_path):
    # 3 epochs of 480 images: a trial spends a few seconds between its first checkpoint and its
    # end, the window in which it is killed
    args = sweep_args(
        "epochs=3",
        "data.n_train=480",
        "optimizer.lr=tag(log,interval(1e-3,1e-1))",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.study_name=resume",
        "hydra.sweeper.heartbeat.interval=1",
        "hydra.sweeper.heartbeat.grace_period=2",
    )
    study_dir = tmp_path / "outputs" / "optuna" / "resume"
    proc = start_sweep(args, tmp_path)

    def two_done_and_one_between_epochs() -> bool:
        runs = run_folders(study_dir) if study_dir.exists() else []
        finished = [p for p in runs if (p / "metrics.json").exists()]
        return len(finished) >= 2 and any((p / "checkpoint.pt").exists() for p in runs if p not in finished)

    kill_when(proc, two_done_and_one_between_epochs, 180)

    interrupted = [p for p in run_folders(study_dir) if not (p / "metrics.json").exists()]
    finished = {
        p: {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in p.rglob("*") if f.is_file()}
        for p in run_folders(study_dir)
        if p not in interrupted
    }
    assert len(finished) >= 2 and len(interrupted) == 1

    r = subprocess.run(args, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    study = load_study(study_dir)
    done = trained(study)
    assert sorted(t.number for t in done) == [0, 1, 2, 3] and len(study.trials) == 4
    assert all(t.state == TrialState.COMPLETE for t in done)
    assert [p.name for p in run_folders(study_dir)] == ["0", "1", "2", "3"]
    for run, files in finished.items():  # untouched: same files, same bytes, same mtimes
        assert {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in run.rglob("*") if f.is_file()} == files
    (resumed,) = interrupted
    assert metrics(resumed)["status"] == "completed" and metrics(resumed)["epochs"] == 3
    assert "resumed from" in (resumed / "run.log").read_text()  # the trainer's checkpoint, same folder
    assert f"trial {resumed.name}: its process stopped" in r.stdout


@pytest.mark.slow
def test_failing_trials_are_recorded_and_end_with_one_line(tmp_path):
    # optimizer.lr=-1 passes the sizing (the model is fine) but every job records status invalid
    r = run_sweep(
        tmp_path,
        "optimizer.lr=-1.0",
        "seed=range(0,100)",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.max_failed_share=null",
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "no trial completed" in x]
    assert "invalid 2" in line and "optimizer.lr" in line
    (study_dir,) = study_dirs(tmp_path)
    study = load_study(study_dir)
    assert [t.state for t in trained(study)] == [TrialState.FAIL] * 2
    assert all(metrics(p)["status"] == "invalid" for p in run_folders(study_dir))

    # with run.py's max_failed_share (0.25 of n_trials=4 = 1 failure allowed) it stops at the 2nd
    r = run_sweep(
        tmp_path, "optimizer.lr=-1.0", "seed=range(0,100)", "hydra.sweeper.n_trials=4", "hydra.sweeper.study_name=stop"
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "2 trials failed in this run, more than max_failed_share=0.25 x n_trials=4" in r.stderr
    assert len(run_folders(tmp_path / "outputs" / "optuna" / "stop")) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["hydra.sweeper.n_trials=0", "seed=range(0,9)"], "hydra.sweeper.n_trials: expected a positive int, got 0"),
        (["model.nope=choice(1,2)"], "cannot compose the config"),
        (
            ["budget.max_params=100", "seed=range(0,99)", "hydra.sweeper.max_suggestions=3"],
            "stopped after 3 suggestions (hydra.sweeper.max_suggestions=3): 3 were over budget.max_params",
        ),
        (
            ["seed=range(0,9)", "hydra.sweeper.storage=postgresql://u:pw-not-shown@127.0.0.1:1/db"],
            "hydra.sweeper.storage: cannot open study 'quick-",
        ),  # no server there: the error masks it
    ],
    ids=["n_trials", "unknown-key", "all-over-budget", "storage-unreachable"],
)
def test_bad_sweeper_input_ends_with_one_line(tmp_path, args, message):
    r = run_sweep(tmp_path, *args)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert message in r.stderr, r.stderr[-3000:]
    assert "pw-not-shown" not in r.stdout + r.stderr
    assert not any(run_folders(d) for d in study_dirs(tmp_path))  # nothing was trained


@pytest.mark.slow
def test_a_bad_setting_is_refused_when_hydra_creates_the_sweeper_in_one_line(tmp_path):
    import sys

    from helpers import ROOT

    r = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=0"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["hydra.sweeper.n_trials: expected a positive int, got 0"]
    assert not (tmp_path / "outputs").exists()  # refused before any study or folder was made


@pytest.mark.slow
def test_a_folder_that_holds_another_study_is_refused_before_its_study_json_is_touched(tmp_path):
    # the first sweep stops at once (everything over budget) but leaves its study.json
    args = ["budget.max_params=100", "seed=range(0,9)", "hydra.sweeper.max_suggestions=1", "hydra.sweeper.dir=shared"]
    assert run_sweep(tmp_path, *args, "hydra.sweeper.study_name=first").returncode == 1
    before = (tmp_path / "shared" / "study.json").read_bytes()
    r = run_sweep(tmp_path, *args, "hydra.sweeper.study_name=second")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "hydra.sweeper.dir: " in r.stderr and "holds study 'first'" in r.stderr
    assert (tmp_path / "shared" / "study.json").read_bytes() == before


@pytest.mark.slow
def test_an_interrupted_trial_whose_last_run_failed_runs_again(tmp_path):
    # A trial launched, failed (say, on data fixed since) and was interrupted before its sweeper
    # told Optuna: the rerun trains it again in its folder instead of reporting the stale failure.
    import optuna
    from optuna.distributions import IntDistribution

    from budgetsweep.contract import new_metrics, write_metrics
    from budgetsweep.contract.storage import sqlite_url
    from budgetsweep.contract.sweep import LAUNCHED, SLOT
    from budgetsweep.sweeper.optuna_storage import make_storage

    study_dir = tmp_path / "outputs" / "optuna" / "stale"
    study_dir.mkdir(parents=True)
    storage = make_storage(sqlite_url(study_dir / "study.db"), heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="stale", storage=storage, direction="maximize")
    study.ask(fixed_distributions={"seed": IntDistribution(0, 8)})
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("stale"), 0)
    for key in (SLOT, LAUNCHED):
        storage.set_trial_system_attr(trial_id, key, True)
    storage.record_heartbeat(trial_id)
    write_metrics(study_dir / "0", new_metrics(status="failed", error="DataError: cannot read the data"))
    time.sleep(2)  # its heartbeat is now stale

    r = run_sweep(
        tmp_path,
        "seed=range(0,9)",
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.study_name=stale",
        "hydra.sweeper.heartbeat.interval=1",
        "hydra.sweeper.heartbeat.grace_period=1",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trial 0: resuming in its folder" in r.stdout
    assert metrics(study_dir / "0")["status"] == "completed" and metrics(study_dir / "0")["trial"] == 0
    assert [t.state for t in trained(load_study(study_dir))] == [TrialState.COMPLETE]
