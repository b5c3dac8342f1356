import csv
import json

import pytest

from budgetsweep import models
from budgetsweep.contract import HISTORY_COLUMNS, METRICS_KEYS, STATUSES, SWEEP_FIELDS
from budgetsweep.trainer import train
from budgetsweep.trainer.loop import NONFINITE_CHECK_STEPS


def read(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with open(run_dir / "history.csv") as f:
        return metrics, list(csv.DictReader(f))


def test_a_run_writes_the_contract(tiny_cfg, tmp_path):
    cfg = tiny_cfg(["epochs=2"])
    returned = train(cfg, tmp_path, overrides=["epochs=2"])
    metrics, history = read(tmp_path)
    assert returned == metrics
    assert metrics["status"] == "completed" and metrics["epochs"] == 2 and metrics["overrides"] == ["epochs=2"]
    assert metrics["params"] == models.count_params(cfg.model) and metrics["flops"] == models.count_flops(cfg.model)
    assert list(history[0]) == list(HISTORY_COLUMNS) and [r["epoch"] for r in history] == ["1", "2"]
    best = max(float(r["val_acc"]) for r in history)
    assert metrics["objective"] == metrics["val_acc"] == best
    assert metrics["val_acc"] > 0.3  # chance is 0.1: the synthetic classes are learnable in six steps
    assert 0 <= metrics["test_acc"] <= 1 and metrics["images_per_second"] > 0
    assert not (tmp_path / "checkpoint.pt").exists()


def test_same_seed_same_history_on_cpu(tiny_cfg, tmp_path):
    train(tiny_cfg(), tmp_path / "a")
    train(tiny_cfg(), tmp_path / "b")
    train(tiny_cfg(["seed=1"]), tmp_path / "c")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read(tmp_path / "a")[1]) == strip(read(tmp_path / "b")[1])
    assert strip(read(tmp_path / "a")[1]) != strip(read(tmp_path / "c")[1])


def test_over_budget_is_not_trained(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["budget.max_params=1000"]), tmp_path)
    assert metrics["status"] == "over_budget" and metrics["epochs"] == 0 and metrics["objective"] is None
    assert metrics["params"] > 1000 and "budget.max_params" in metrics["error"]
    assert not (tmp_path / "history.csv").exists()


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.P=9", "model.P:"),
        ("objective=loss", "objective:"),
        ("optimizer.lr=-1", "optimizer.lr:"),
        ("label_smoothing=1.0", "label_smoothing:"),
        ("device=tpu9", "device:"),
        ("optimizer._target_=torch.optim.Nope", "optimizer:"),
        ("+optimizer.foo=1", "optimizer:"),
        ("optimizer._target_=os.system", "optimizer._target_:"),
    ],
)
def test_invalid_config_is_recorded(tiny_cfg, tmp_path, override, key):
    metrics = train(tiny_cfg([override]), tmp_path)
    assert metrics["status"] == "invalid" and metrics["error"].startswith(key) and "\n" not in metrics["error"]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "invalid"
    assert not (tmp_path / "history.csv").exists()  # refused before any data was loaded


def test_the_sweep_node_is_copied_into_the_metrics(tiny_cfg, tmp_path):
    sweep = dict(trial=None, study=None, factor="model.C", value="8", baseline=False, repeat=1)
    cfg = tiny_cfg([f"sweep.{k}={'null' if v is None else v}" for k, v in sweep.items()] + ["budget.max_params=1000"])
    metrics = train(cfg, tmp_path)
    assert {k: metrics[k] for k in SWEEP_FIELDS} == sweep
    assert list(metrics) == list(METRICS_KEYS)  # the contract's keys, in its order, and no others


def test_an_optimizer_is_one_config_node(tiny_cfg, tmp_path):
    # no code names RMSprop: the _target_ node is the whole optimizer
    cfg = tiny_cfg(["optimizer._target_=torch.optim.RMSprop", "~optimizer.betas", "+optimizer.alpha=0.9"])
    assert train(cfg, tmp_path)["status"] == "completed"


def test_non_finite_loss_ends_the_run_as_diverged(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["optimizer=sgd", "optimizer.lr=1e30", "epochs=3"]), tmp_path)
    assert metrics["status"] == "diverged" and "non-finite loss" in metrics["error"]
    assert metrics["objective"] is None and metrics["epochs"] < 3
    assert metrics["status"] in STATUSES


def test_a_diverged_run_stops_within_the_check_interval(tiny_cfg, tmp_path):
    # 48 steps an epoch; the loss is non-finite from the second: the first check (step 20) stops it
    metrics = train(tiny_cfg(["optimizer=sgd", "optimizer.lr=1e30", "batch_size=2"]), tmp_path)
    assert metrics["status"] == "diverged" and metrics["epochs"] == 0
    assert metrics["error"] == f"non-finite loss at epoch 1, between steps 1 and {NONFINITE_CHECK_STEPS}"


def test_epoch_callback_prunes_and_keeps_the_files(tiny_cfg, tmp_path):
    seen = []
    metrics = train(tiny_cfg(["epochs=3"]), tmp_path, on_epoch=lambda epoch, row: seen.append(row) or epoch == 1)
    _, history = read(tmp_path)
    assert metrics["status"] == "pruned" and metrics["epochs"] == 1 and len(history) == 1
    assert seen[0]["val_acc"] == float(history[0]["val_acc"]) and metrics["objective"] is None


def test_a_killed_run_resumes_from_its_checkpoint(tiny_cfg, tmp_path):
    cfg = tiny_cfg(["epochs=3"])
    train(cfg, tmp_path / "whole")

    def die_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt  # as if killed between epochs

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", on_epoch=die_after_two)
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    epochs_run = []
    train(cfg, tmp_path / "resumed", on_epoch=lambda epoch, row: epochs_run.append(epoch))
    assert epochs_run == [3]  # epochs 1-2 came from the checkpoint
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read(tmp_path / "resumed")[1]) == strip(read(tmp_path / "whole")[1])
    assert read(tmp_path / "resumed")[0]["test_acc"] == read(tmp_path / "whole")[0]["test_acc"]


def test_a_checkpoint_of_another_config_is_not_resumed(tiny_cfg, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(["epochs=3"]), tmp_path, on_epoch=lambda e, r: (_ for _ in ()).throw(KeyboardInterrupt))
    epochs_run = []
    train(tiny_cfg(["epochs=3", "optimizer.lr=0.005"]), tmp_path, on_epoch=lambda e, r: epochs_run.append(e))
    assert epochs_run == [1, 2, 3]


@pytest.mark.slow
def test_shipped_cifar10_sample_beats_chance(tiny_cfg, tmp_path):
    # Measured: resnet_small, 3 epochs, batch 128 on the 2,000-image sample: 34% test accuracy.
    cfg = tiny_cfg(["model=resnet_small", "data=cifar10_sample", "epochs=3", "batch_size=128", "optimizer.lr=0.002"])
    metrics = train(cfg, tmp_path)
    assert metrics["status"] == "completed"
    assert metrics["test_acc"] > 0.25 and metrics["val_acc"] > 0.2


@pytest.mark.slow
def test_compiled_model_learns_like_the_eager_one(tiny_cfg, tmp_path):
    # torch.compile on the CPU (inductor + the system C++ compiler): ~40 s of compiling
    eager = train(tiny_cfg(), tmp_path / "eager")
    compiled = train(tiny_cfg(["compile=true"]), tmp_path / "compiled")
    assert compiled["status"] == "completed"
    assert compiled["val_acc"] == pytest.approx(eager["val_acc"], abs=0.05)
    eager_loss = float(read(tmp_path / "eager")[1][0]["train_loss"])
    assert float(read(tmp_path / "compiled")[1][0]["train_loss"]) == pytest.approx(eager_loss, rel=1e-2)
