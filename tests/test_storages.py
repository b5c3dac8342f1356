"""Storages besides database URLs (budgetsweep.contract.storage): a journal file (`journal`,
`journal:<file>`), a gRPC storage proxy (`grpc://host:port`, `budgetsweep storage-proxy`) and
any `_target_` node of an optuna.storages storage. Sweeps of the foreign xy app on each: the
study resumes where it stopped, a killed worker's trial runs again in its folder, analysis
reads the study, and bad storages are refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from budgetsweep.contract.storage import StorageSpecError, locate, storage_spec
from budgetsweep.sweeper import optuna_storage
from budgetsweep.sweeper.errors import SweeperError

from helpers import (
    OPTUNA,
    env,
    free_port,
    install_app,
    kill_when,
    load_study,
    run_folders,
    run_foreign_app,
    start_sweep,
    trained,
)

JOURNAL_NODE = (
    "{_target_:optuna.storages.JournalStorage,"
    "log_storage:{_target_:optuna.storages.journal.JournalFileBackend,file_path:node.journal}}"
)


# ------------------------------------------------------------------------------ the spec
def test_a_storage_node_becomes_its_shorthand_where_one_exists_else_json():
    journal = {
        "_target_": "optuna.storages.JournalStorage",
        "log_storage": {"_target_": "optuna.storages.journal.JournalFileBackend", "file_path": "/x/s.journal"},
    }
    assert storage_spec(journal) == "journal:/x/s.journal"
    grpc = {"_target_": "optuna.storages.GrpcStorageProxy", "host": "head", "port": 13001}
    assert storage_spec(grpc) == "grpc://head:13001"
    assert storage_spec({"_target_": "optuna.storages.RDBStorage", "url": "sqlite:///a.db"}) == "sqlite:///a.db"
    locked = {**journal, "log_storage": {**journal["log_storage"], "lock_obj": None}}
    assert json.loads(storage_spec(locked)) == locked  # arguments no shorthand holds: the node itself
    assert storage_spec("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(StorageSpecError):
        storage_spec({"url": "sqlite:///a.db"})


def test_a_journal_file_not_where_the_study_says_is_found_in_the_study_folder(tmp_path):
    (tmp_path / "study.journal").write_text("")
    assert locate("journal:/elsewhere/study.journal", tmp_path) == f"journal:{tmp_path / 'study.journal'}"
    assert locate("journal:/elsewhere/other.journal", tmp_path) == "journal:/elsewhere/other.journal"


def test_a_proxy_that_does_not_answer_is_one_line(monkeypatch):
    monkeypatch.setattr(optuna_storage, "PROXY_WAIT", 0.5)
    with pytest.raises(SweeperError, match=r"no storage proxy answered .* budgetsweep storage-proxy"):
        optuna_storage.make_storage(f"grpc://127.0.0.1:{free_port()}")


@pytest.mark.parametrize(
    "storage, says",
    [
        ("grpc://nohost", "expected grpc://<host>:<port>"),
        ("journal:no/such/folder/s.journal", "No such file or directory"),
        ("{_target_:os.system,command:ls}", "cannot be authorized by the Hydra execution whitelist"),
        ("{_target_:optuna.samplers.RandomSampler}", "is not in the Hydra execution whitelist"),
        ("[1,2]", "expected a database URL (sqlite:///..., postgresql://...), journal, journal:<file>"),
    ],
)
def test_a_bad_storage_is_refused_in_one_line(tmp_path, storage, says):
    r = run_foreign_app(tmp_path, "xy", OPTUNA, "x=interval(0,1)", f"hydra.sweeper.storage={storage}")
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hydra.sweeper.storage") and says in lines[0], r.stderr


def test_the_proxy_command_refuses_what_is_not_a_database_url():
    r = subprocess.run(
        [sys.executable, "-m", "budgetsweep", "storage-proxy", "journal:/x.journal"],
        capture_output=True,
        text=True,
        env=env(),
    )
    assert r.returncode == 2 and r.stderr.strip() == "storage-proxy: error: journal:/x.journal: expected a database URL"


# ------------------------------------------------------------------------------ sweeps
def xy_sweep(*extra: str) -> list[str]:
    return [OPTUNA, "x=interval(0,1)", "steps=3", "hydra.sweeper.study_name=s", *extra]


def test_a_journal_study_resumes_and_is_analysed_where_it_was_moved(tmp_path):
    r = run_foreign_app(tmp_path, "xy", *xy_sweep("hydra.sweeper.n_trials=3", "hydra.sweeper.storage=journal"))
    assert r.returncode == 0, r.stderr[-3000:]
    study_dir = tmp_path / "outputs" / "optuna" / "s"
    record = json.loads((study_dir / "study.json").read_text())
    assert record["storage"] == f"journal:{study_dir / 'study.journal'}"
    r = run_foreign_app(tmp_path, "xy", *xy_sweep("hydra.sweeper.n_trials=5", "hydra.sweeper.storage=journal"))
    assert r.returncode == 0, r.stderr[-3000:]
    study = load_study(study_dir)
    done = trained(study)
    assert [t.number for t in done] == [0, 1, 2, 3, 4] and all(t.state == TrialState.COMPLETE for t in done)
    assert all(len(t.intermediate_values) == 3 for t in done)  # each job reported its steps to the journal
    assert [p.name for p in run_folders(study_dir)] == ["0", "1", "2", "3", "4"]

    moved = tmp_path / "copied-from-the-cluster"
    study_dir.rename(moved)
    a = subprocess.run(
        [sys.executable, "-m", "budgetsweep", "analyze", str(moved)], capture_output=True, text=True, env=env()
    )
    assert a.returncode == 0, a.stderr[-3000:]
    assert "5 trials: 5 complete" in a.stdout


def test_a_storage_node_on_the_command_line_is_the_study_s_storage_in_every_job(tmp_path):
    r = run_foreign_app(tmp_path, "xy", *xy_sweep("hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={JOURNAL_NODE}"))
    assert r.returncode == 0, r.stderr[-3000:]
    study_dir = tmp_path / "outputs" / "optuna" / "s"
    spec = f"journal:{tmp_path / 'node.journal'}"
    assert json.loads((study_dir / "study.json").read_text())["storage"] == spec
    assert f"hydra.sweeper.storage='{spec}'" in (study_dir / "0" / ".hydra" / "hydra.yaml").read_text()
    assert [len(t.intermediate_values) for t in trained(load_study(study_dir))] == [3, 3]


@pytest.mark.slow
def test_a_killed_worker_s_trial_on_a_journal_runs_again_in_its_folder(tmp_path):
    script = install_app("xy", tmp_path)
    args = [
        sys.executable,
        str(script),
        "-m",
        *xy_sweep(
            "steps=8",
            "sleep=0.5",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.storage=journal",
            "hydra.sweeper.heartbeat.interval=1",
            "hydra.sweeper.heartbeat.grace_period=3",
        ),
    ]
    study_dir = tmp_path / "outputs" / "optuna" / "s"
    progress = study_dir / "0" / "progress.json"
    kill_when(start_sweep(args, tmp_path), lambda: progress.exists() and '"step": 2' in progress.read_text(), 120)
    r = subprocess.run(args, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "trial 0: its process stopped (no heartbeat for 3 s)" in r.stdout + r.stderr
    study = load_study(study_dir)
    assert [(t.number, t.state) for t in trained(study)] == [(0, TrialState.COMPLETE), (1, TrialState.COMPLETE)]
    assert [p.name for p in run_folders(study_dir)] == ["0", "1"]
    assert json.loads((study_dir / "0" / "times.json").read_text())["first_step"] >= 3


@pytest.mark.slow
def test_workers_behind_a_storage_proxy_share_one_study(tmp_path):
    port = free_port()
    db = f"sqlite:///{tmp_path / 'proxied.db'}"
    proxy = subprocess.Popen(
        [sys.executable, "-m", "budgetsweep", "storage-proxy", db, "--host", "127.0.0.1", "--port", str(port)],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        assert proxy.stdout.readline().strip() == f"storage proxy for {db} on grpc://127.0.0.1:{port}; Ctrl-C stops"
        script = install_app("xy", tmp_path)
        args = [
            sys.executable,
            str(script),
            "-m",
            *xy_sweep("hydra.sweeper.n_trials=6", f"hydra.sweeper.storage=grpc://127.0.0.1:{port}"),
        ]
        workers = [start_sweep(args, tmp_path, subprocess.PIPE, subprocess.PIPE) for _ in range(2)]
        outputs = [w.communicate(timeout=300) for w in workers]
        for w, (_, err) in zip(workers, outputs):
            assert w.returncode == 0, err[-3000:]
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    study_dir = tmp_path / "outputs" / "optuna" / "s"
    launched = sorted(n for out, err in outputs for n in _launched((out + err).decode()))
    assert launched == list(range(6))  # each trial launched once, by one of the two
    done = trained(load_study(study_dir, storage=db))
    assert [t.number for t in done] == list(range(6)) and all(t.state == TrialState.COMPLETE for t in done)
    assert all(len(t.intermediate_values) == 3 for t in done)  # jobs report through the proxy too


def _launched(output: str) -> list[int]:
    import re

    return [int(n) for n in re.findall(r"trial (\d+): launching", output)]


def test_workers_racing_to_create_one_study_retry_whatever_optuna_calls_the_error():
    import sqlalchemy.exc
    from optuna.exceptions import StorageInternalError

    def raised(error: Exception, cause: BaseException) -> Exception:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise error from inner
        except Exception as e:
            return e

    duplicate = sqlalchemy.exc.IntegrityError("INSERT INTO studies", {}, Exception("unique violation"))
    assert optuna_storage._race(raised(StorageInternalError("An exception is raised during the commit."), duplicate))
    assert optuna_storage._race(Exception('relation "studies" already exists'))
    assert not optuna_storage._race(raised(StorageInternalError("commit"), ValueError("value too long")))
