"""A storage password reaches no tracker: an Optuna sweep of run.py with every logger on
(W&B offline, MLflow's file store, TensorBoard, csv) against a real PostgreSQL server, the
password given three ways, leaves it in no file under its folder (read as bytes: W&B's binary
run files, MLflow's database, event files, logs) and in neither stdout nor stderr."""

from __future__ import annotations

import os
import sys
import time

import pytest

from budgetsweep.contract.storage import PASSWORD_ENV, STORAGE_ENV, mask, mask_args

from helpers import load_study, postgres_server, run_sweep, trained

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PASSWORD = "pw-Tk4-kept-from-trackers"
ALL = "logger=[csv,tensorboard,mlflow,wandb]"


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server(PASSWORD) as url:
        yield url


def leaks(where, *texts: str) -> list[str]:
    """The files under `where` (links followed: W&B links its core log there) and the texts that hold the password."""
    found = [str(f) for f in where.rglob("*") if f.is_file() and PASSWORD.encode() in f.read_bytes()]
    return found + [f"output {i}" for i, text in enumerate(texts) if PASSWORD in text]


# how the password is given: on the command line (W&B records the command line), the whole
# URL in $BUDGETSWEEP_STORAGE, or the masked URL with the password in $BUDGETSWEEP_STORAGE_PASSWORD
WAYS = {
    "command-line": lambda url: ([f"hydra.sweeper.storage={url}"], {}),
    "storage-env": lambda url: ([], {STORAGE_ENV: url}),
    "password-env": lambda url: ([f"hydra.sweeper.storage={mask(url)}"], {PASSWORD_ENV: PASSWORD}),
}


@pytest.mark.parametrize("way", list(WAYS))
def test_no_tracker_file_holds_the_storage_password(tmp_path, pg_url, way, monkeypatch):
    args, extra_env = WAYS[way](pg_url)
    r = run_sweep(tmp_path, ALL, "hydra.sweeper.n_trials=1", f"hydra.sweeper.study_name=leak-{way}", *args, **extra_env)
    assert r.returncode == 0, r.stderr[-3000:]
    study_dir = tmp_path / "outputs" / "optuna" / f"leak-{way}"
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert [t.number for t in trained(load_study(study_dir))] == [0]

    assert leaks(tmp_path, r.stdout, r.stderr) == []
    # every tracker wrote its files, so there was something to leak into
    outputs = tmp_path / "outputs"
    (wandb_file,) = outputs.glob("wandb/offline-run-*/run-*.wandb")
    assert (outputs / "mlflow" / "mlflow.db").is_file()
    assert list(outputs.glob(f"tensorboard/leak-{way}/trial-0/events.out.tfevents.*"))
    if way == "command-line":  # W&B recorded the command line, with the password masked
        assert b"hydra.sweeper.storage=postgresql://budgetsweep:***@127.0.0.1" in wandb_file.read_bytes()


def test_mask_args_masks_every_url_password_and_the_variable(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "s3cr@t")
    args = [
        "run.py",
        "hydra.sweeper.storage=postgresql://alice:pw1@db:5432/sweeps",
        "logger.mlflow.tracking_uri='postgresql+psycopg2://bob:p@w2@db/ml?sslmode=require'",
        "--note=s3cr@t",
        "hydra.sweeper.storage=sqlite:////tmp/study.db",
        "url=http://host:5000/x",
        "postgresql://carol@db/x",
    ]
    assert mask_args(args) == [
        "run.py",
        "hydra.sweeper.storage=postgresql://alice:***@db:5432/sweeps",
        "logger.mlflow.tracking_uri='postgresql+psycopg2://bob:***@db/ml?sslmode=require'",
        "--note=***",
        *args[4:],
    ]


def test_wandb_records_the_command_line_with_its_passwords_masked(tmp_path, monkeypatch):
    # a job of a sweep run by the basic launcher: the sweeper's command line is the job's sys.argv
    from budgetsweep.trainer.trackers import TrackedRun, WandbTracker

    argv = ["run.py", "-m", f"hydra.sweeper.storage=postgresql://budgetsweep:{PASSWORD}@db/x"]
    monkeypatch.setattr(sys, "argv", argv)
    tracker = WandbTracker(root=str(tmp_path))
    tracker.start({"seed": 0}, TrackedRun(tmp_path, "one", None))
    tracker.end({"status": "completed"})
    assert sys.argv is argv  # given back as it was
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    masked = b"hydra.sweeper.storage=postgresql://budgetsweep:***@db/x"
    deadline = time.monotonic() + 60  # W&B's service may still be writing the file when finish returns
    while masked not in run_file.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert masked in run_file.read_bytes()
    assert leaks(tmp_path) == []


def test_the_overrides_jobs_record_lose_url_passwords_and_nothing_else(monkeypatch):
    """A short password may also be part of a folder's name: only URLs are masked."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from budgetsweep.sweeper.study_setup import hide_password

    monkeypatch.setenv(PASSWORD_ENV, "")  # restored after the test: hide_password sets it
    settings = SimpleNamespace(storage="postgresql://alice:many@db/sweeps")  # what hide_password reads
    overrides = [
        "hydra.sweeper.storage=postgresql://alice:many@db/sweeps",
        "hydra.sweeper.dir=/scratch/many-workers/study",
        "logger.mlflow.tracking_uri=postgresql://bob:other@db/ml",
    ]
    config = OmegaConf.create({"hydra": {"overrides": {"hydra": overrides}}})
    hide_password(settings, config)  # type: ignore[arg-type]
    assert settings.storage == "postgresql://alice:***@db/sweeps"
    assert list(config.hydra.overrides.hydra) == [
        "hydra.sweeper.storage=postgresql://alice:***@db/sweeps",
        "hydra.sweeper.dir=/scratch/many-workers/study",
        "logger.mlflow.tracking_uri=postgresql://bob:***@db/ml",
    ]
    assert os.environ[PASSWORD_ENV] == "many"
