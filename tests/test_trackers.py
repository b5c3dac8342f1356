"""Experiment trackers (`logger=`), read back from the files they wrote: TensorBoard event files
through tensorboard's reader, the MLflow store through MlflowClient, W&B offline run files
through wandb's own protobuf records. A resumed run continues its tracker runs and logs each
epoch once; an Optuna sweep groups its trials per study; a missing package is one line."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from budgetsweep.contract import HISTORY_FILE, TRACKERS_FILE, load_metrics
from budgetsweep.trainer import train

from helpers import ROOT, TINY_RUN, run_sweep, study_dirs

ALL = "logger=[csv,tensorboard,mlflow,wandb]"


# ------------------------------------------------------------------------ reading them back


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] over every event file of one TensorBoard run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tensorboard_hparams(folder: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    info = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    return {
        k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in info.session_start_info.hparams.items()
    }


def wandb_records(run_file: Path) -> list:
    """The protobuf Records of a W&B `.wandb` file: a 7-byte header, then LevelDB-log chunks
    (crc32 4 bytes, length 2, type 1; 32 KiB blocks) whose payloads are wandb Record messages."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = run_file.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, records, pending = 7, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the block's tail is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, LAST
            records.append(pb.Record.FromString(pending))
            pending = b""
        elif kind == 0:
            break
    return records


def wandb_run(root: Path, run_id: str) -> dict:
    """What the offline run files of `run_id` hold: run info, history rows by step, summary."""
    out = {"history": {}, "summary": {}, "files": sorted(root.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))}
    for path in out["files"]:
        for r in wandb_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                out.update(group=r.run.run_group, name=r.run.display_name, tags=list(r.run.tags), run_id=r.run.run_id)
                out["config"] = {i.key: json.loads(i.value_json) for i in r.run.config.update}
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                out["history"].setdefault(row["_step"], []).append(row)
            elif kind == "summary":
                out["summary"].update(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.summary.update}
                )
    return out


def mlflow_client(cwd: Path):
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{cwd / 'outputs' / 'mlflow' / 'mlflow.db'}")


def history(run_dir: Path) -> list[dict]:
    import csv

    with open(run_dir / HISTORY_FILE) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


# ----------------------------------------------------------------------------------- tests


def test_every_tracker_records_the_run(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the trackers' default folders are relative to where run.py starts
    run_dir = tmp_path / "outputs" / "runs" / "one"
    metrics = train(tiny_cfg(["epochs=2", ALL, "tags=[baseline,cpu]"]), run_dir)
    rows = history(run_dir)
    assert metrics["status"] == "completed" and metrics["tags"] == ["baseline", "cpu"]

    tb = tensorboard_scalars(tmp_path / "outputs" / "tensorboard" / "runs" / "one")
    assert tb["epoch/val_acc"] == [(1, pytest.approx(rows[0]["val_acc"])), (2, pytest.approx(rows[1]["val_acc"]))]
    assert tb["result/test_acc"][0][1] == pytest.approx(metrics["test_acc"])
    hp = tensorboard_hparams(tmp_path / "outputs" / "tensorboard" / "runs" / "one")
    assert hp["model.C"] == 8 and hp["optimizer.lr"] == pytest.approx(0.01) and hp["tags"] == "['baseline', 'cpu']"

    state = json.loads((run_dir / TRACKERS_FILE).read_text())
    client = mlflow_client(tmp_path)
    run = client.get_run(state["trackers"]["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "runs/one"
    assert client.get_experiment(run.info.experiment_id).name == "budgetsweep"
    assert run.data.params["model.C"] == "8" and run.data.params["epochs"] == "2"
    assert run.data.metrics["result/test_acc"] == pytest.approx(metrics["test_acc"])
    assert run.data.tags["budgetsweep.tags"] == "baseline,cpu" and run.data.tags["budgetsweep.status"] == "completed"
    curve = client.get_metric_history(run.info.run_id, "epoch/val_acc")
    assert [(m.step, m.value) for m in curve] == [(1, pytest.approx(r["val_acc"])) for r in rows[:1]] + [
        (2, pytest.approx(rows[1]["val_acc"]))
    ]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["weights.pt"]

    wb = wandb_run(tmp_path / "outputs", state["trackers"]["wandb"]["id"])
    assert wb["name"] == "runs/one" and wb["group"] == "" and wb["tags"] == ["baseline", "cpu"]
    assert wb["config"]["model"]["C"] == 8
    assert sorted(wb["history"]) == [1, 2] and wb["history"][2][0]["epoch/val_acc"] == pytest.approx(rows[1]["val_acc"])
    assert wb["summary"]["result/test_acc"] == pytest.approx(metrics["test_acc"])


def test_a_killed_run_continues_its_tracker_runs_and_logs_each_epoch_once(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "outputs" / "runs" / "killed"
    cfg = tiny_cfg(["epochs=3", "logger=[tensorboard,mlflow,wandb]"])

    def die_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt  # killed after epoch 2 was checkpointed and logged

    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir, on_epoch=die_after_two)
    first = json.loads((run_dir / TRACKERS_FILE).read_text())
    assert first["logged_epochs"] == 2
    train(cfg, run_dir)
    rows = history(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and load_metrics(run_dir)["status"] == "completed"

    again = json.loads((run_dir / TRACKERS_FILE).read_text())
    assert again["trackers"] == first["trackers"] and again["logged_epochs"] == 3  # the same tracker runs
    tb = tensorboard_scalars(tmp_path / "outputs" / "tensorboard" / "runs" / "killed")
    assert [s for s, _ in tb["epoch/val_acc"]] == [1, 2, 3]  # none twice
    assert [v for _, v in tb["epoch/val_acc"]] == pytest.approx([r["val_acc"] for r in rows])

    client = mlflow_client(tmp_path)
    run = client.get_run(first["trackers"]["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and len(client.search_runs([run.info.experiment_id])) == 1
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/val_acc")] == [1, 2, 3]

    wb = wandb_run(tmp_path / "outputs", first["trackers"]["wandb"]["id"])
    assert len(wb["files"]) == 2 and sorted(wb["history"]) == [1, 2, 3]  # one run id, resumed offline
    assert all(len(v) == 1 for v in wb["history"].values())


def test_epochs_a_kill_left_unlogged_are_sent_from_history_csv(tiny_cfg, tmp_path):
    # killed after epoch 2's checkpoint, before the trackers heard of it: the resumed job sends
    # epoch 2 from history.csv before epoch 3, and skips an epoch they already have
    from budgetsweep.contract import CHECKPOINT_FILE, write_history
    from budgetsweep.trainer.trackers import TensorBoardTracker, Trackers

    cfg, run_dir = tiny_cfg(["epochs=3"]), tmp_path / "runs" / "one"
    rows = [
        dict(epoch=e, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=e / 10, lr=0.01, seconds=1.0)
        for e in (1, 2, 3)
    ]
    (run_dir / CHECKPOINT_FILE).parent.mkdir(parents=True)
    (run_dir / CHECKPOINT_FILE).write_bytes(b"")  # a checkpoint to resume from
    first = Trackers({"tensorboard": TensorBoardTracker(str(tmp_path / "tb"))}, run_dir, "same-config")
    first.start(cfg)
    write_history(run_dir, rows[:1])
    first.on_epoch(1, rows[0])
    write_history(run_dir, rows)  # epochs 2 and 3 done; the process dies before logging them
    resumed = Trackers({"tensorboard": TensorBoardTracker(str(tmp_path / "tb"))}, run_dir, "same-config")
    resumed.start(cfg)
    resumed.on_epoch(3, rows[2])
    resumed.on_epoch(2, rows[1])  # already sent: skipped
    resumed.end({"status": "completed", "epochs": 3, "test_acc": 0.5})
    scalars = tensorboard_scalars(tmp_path / "tb" / "runs" / "one")
    assert scalars["epoch/val_acc"] == [(1, pytest.approx(0.1)), (2, pytest.approx(0.2)), (3, pytest.approx(0.3))]
    assert json.loads((run_dir / TRACKERS_FILE).read_text())["logged_epochs"] == 3


def test_another_config_in_the_folder_starts_new_tracker_runs(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "outputs" / "runs" / "reused"
    with pytest.raises(KeyboardInterrupt):
        train(
            tiny_cfg(["epochs=2", "logger=mlflow"]),
            run_dir,
            on_epoch=lambda e, r: (_ for _ in ()).throw(KeyboardInterrupt),
        )
    before = json.loads((run_dir / TRACKERS_FILE).read_text())["trackers"]["mlflow"]["run_id"]
    train(tiny_cfg(["epochs=2", "logger=mlflow", "optimizer.lr=0.005"]), run_dir)
    after = json.loads((run_dir / TRACKERS_FILE).read_text())["trackers"]["mlflow"]["run_id"]
    client = mlflow_client(tmp_path)
    assert before != after and client.get_run(after).info.status == "FINISHED"
    assert client.get_run(before).info.status == "RUNNING"  # the abandoned one is left as the kill left it
    assert [m.step for m in client.get_metric_history(after, "epoch/val_acc")] == [1, 2]


def test_an_optuna_sweep_groups_its_trials_per_study(tmp_path):
    r = run_sweep(tmp_path, "model.C=choice(8,12)", "hydra.sweeper.n_trials=2", ALL, "tags=[search]")
    assert r.returncode == 0, r.stderr[-3000:]
    (study_dir,) = study_dirs(tmp_path)
    study = study_dir.name
    assert sorted(p.name for p in (tmp_path / "outputs" / "tensorboard" / study).iterdir()) == ["trial-0", "trial-1"]
    assert [p.name for p in (tmp_path / "outputs" / "tensorboard").iterdir()] == [study]  # one folder per study
    for trial in (0, 1):
        steps = tensorboard_scalars(tmp_path / "outputs" / "tensorboard" / study / f"trial-{trial}")["epoch/val_acc"]
        assert [s for s, _ in steps] == [1]

    client = mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["trial-0", "trial-1"]
    assert all(r.data.params["sweep.study"] == study and r.data.tags["budgetsweep.tags"] == "search" for r in runs)

    for trial in (0, 1):
        state = json.loads((study_dir / str(trial) / TRACKERS_FILE).read_text())
        wb = wandb_run(tmp_path / "outputs", state["trackers"]["wandb"]["id"])
        assert wb["group"] == study and wb["name"] == f"trial-{trial}"


def test_a_missing_tracker_package_is_one_line_naming_the_extra(tmp_path):
    # a `tensorboard` that cannot be imported, found first on the path
    (tmp_path / "shadow" / "tensorboard").mkdir(parents=True)
    (tmp_path / "shadow" / "tensorboard" / "__init__.py").write_text("raise ImportError('not installed here')\n")
    r = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *TINY_RUN, "logger=[csv,tensorboard]"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "shadow"), "HYDRA_FULL_ERROR": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: logger=tensorboard: the tensorboard package is not installed: pip install 'budgetsweep[tensorboard]' "
        '(from a checkout: pip install -e ".[tensorboard]")'
    ], r.stderr


def test_a_logger_node_naming_another_class_is_refused(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["+logger.evil._target_=os.system"]), tmp_path)
    assert metrics["status"] == "invalid" and metrics["error"].startswith("logger.evil._target_:")
