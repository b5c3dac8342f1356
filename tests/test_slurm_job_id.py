"""A trial that ran in a SLURM job says which: run.py's metrics.json and the sweeper's
sweep_record.json hold `slurm_job_id`, and the sweep's end line of the trial names the job.
Without a cluster: a job is in SLURM when SLURM's variables are in its environment, so these
set them (tests/test_slurm.py checks the same on a real cluster)."""

from __future__ import annotations

import json

import pytest

from budgetsweep.trainer import train

from helpers import OPTUNA, load_study, only_study_dir, run_foreign_app, trained

SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")


@pytest.fixture
def outside_slurm(monkeypatch):
    for name in SLURM_VARS:  # the tests themselves may run in a SLURM job
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "environ, recorded",
    [
        ({}, None),
        ({"SLURM_JOB_ID": "4242"}, "4242"),
        ({"SLURM_JOB_ID": "51", "SLURM_ARRAY_JOB_ID": "50", "SLURM_ARRAY_TASK_ID": "1"}, "50_1"),
    ],
    ids=["outside", "job", "array-task"],
)
def test_run_py_records_the_slurm_job_it_ran_in(tiny_cfg, tmp_path, outside_slurm, environ, recorded):
    for name, value in environ.items():
        outside_slurm.setenv(name, value)
    metrics = train(tiny_cfg(["budget.max_params=1000"]), tmp_path)  # not trained: fast
    assert metrics["slurm_job_id"] == recorded
    assert json.loads((tmp_path / "metrics.json").read_text())["slurm_job_id"] == recorded


@pytest.mark.parametrize("job", [None, "4242"], ids=["outside", "in-a-job"])
def test_a_foreign_apps_record_and_end_line_name_the_slurm_job(tmp_path, outside_slurm, job):
    if job is not None:
        outside_slurm.setenv("SLURM_JOB_ID", job)  # the basic launcher: the job runs in the sweep's process
    r = run_foreign_app(tmp_path, "xy", OPTUNA, "hydra.sweeper.n_trials=1", "x=interval(-2,2)", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    study_dir = only_study_dir(tmp_path)
    (trial,) = trained(load_study(study_dir))
    record = json.loads((study_dir / "0" / "sweep_record.json").read_text())
    assert (record["status"], record["slurm_job_id"]) == ("completed", job)
    out = r.stdout + r.stderr
    name = "trial 0" if job is None else f"trial 0 (Slurm job {job})"
    assert f"{name}: completed, objective={trial.value:.6g} " in out, out[-3000:]
    assert ("Slurm job" in out) is (job is not None)  # nothing of SLURM said outside it
