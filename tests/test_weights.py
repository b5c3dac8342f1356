"""save_weights: weights.pt in the run folder (best, last or none), test_acc measured on the kept
weights, schema version 2, and analysis reading both schema versions with the best run's paths."""

from __future__ import annotations

import json

import pytest
import torch

from budgetsweep.contract import METRICS_KEYS, SCHEMA_VERSION, WEIGHTS_FILE, is_missing, load_metrics
from budgetsweep.trainer import train
from budgetsweep.trainer.weights import load_weights

# With this setting the tiny run's best validation epoch is the first of three (checked below),
# so the kept weights and the last epoch's differ.
BEST_IS_FIRST = ["epochs=3", "optimizer.lr=0.02", "scheduler=none"]


@pytest.fixture(scope="module")
def kept_runs(tmp_path_factory):
    from helpers import compose_cfg

    root = tmp_path_factory.mktemp("kept")
    return {
        mode: (root / mode, train(compose_cfg([*BEST_IS_FIRST, f"save_weights={mode}"]), root / mode))
        for mode in ("best", "last", "none")
    }


def test_best_weights_are_kept_and_the_test_split_is_measured_on_them(kept_runs):
    run_dir, metrics = kept_runs["best"]
    assert metrics["best_epoch"] == 1 < metrics["epochs"] == 3  # the precondition of this test
    assert metrics["schema_version"] == SCHEMA_VERSION == 2
    assert metrics["weights"] == WEIGHTS_FILE and metrics["test_epoch"] == 1
    state = torch.load(run_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True)  # plain data only
    assert state["epoch"] == 1 and state["val_acc"] == metrics["val_acc"] and state["kept"] == "best"
    assert state["model_config"]["name"] == "resnet"
    # the last epoch's weights test differently: test_acc is the kept ones'
    _, last = kept_runs["last"]
    assert last["test_epoch"] == 3 and last["test_acc"] != metrics["test_acc"]
    assert not (run_dir / "checkpoint.pt").exists()


def test_last_keeps_the_last_epoch_and_none_keeps_nothing(kept_runs):
    run_dir, metrics = kept_runs["last"]
    assert load_weights(run_dir).epoch == 3 and metrics["weights"] == WEIGHTS_FILE
    run_dir, metrics = kept_runs["none"]
    assert not (run_dir / WEIGHTS_FILE).exists() and metrics["weights"] is None
    assert metrics["test_epoch"] == 3 and metrics["test_acc"] == kept_runs["last"][1]["test_acc"]


def test_the_kept_model_rebuilds_from_the_file_alone(kept_runs, tiny_cfg):
    run_dir, metrics = kept_runs["best"]
    kept = load_weights(run_dir / WEIGHTS_FILE)
    assert sum(p.numel() for p in kept.model.parameters()) == metrics["params"]
    assert not kept.model.training and kept.mean.shape == (3,) and kept.std.shape == (3,)


def test_a_resumed_run_keeps_the_best_epoch_of_both_parts(tiny_cfg, tmp_path):
    cfg = tiny_cfg(BEST_IS_FIRST)
    whole = train(cfg, tmp_path / "whole")

    def die_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt  # killed after epoch 2: weights.pt holds epoch 1 already

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", on_epoch=die_after_two)
    assert load_weights(tmp_path / "resumed").epoch == 1
    resumed = train(cfg, tmp_path / "resumed")
    assert resumed["test_epoch"] == whole["test_epoch"] == 1 and resumed["test_acc"] == whole["test_acc"]
    a = torch.load(tmp_path / "whole" / WEIGHTS_FILE, weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "resumed" / WEIGHTS_FILE, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_corrupt_weights_file_is_one_clear_error(tmp_path):
    from budgetsweep.trainer.weights import WeightsError

    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="not a weights file"):
        load_weights(tmp_path)
    with pytest.raises(WeightsError, match="save_weights=none"):
        load_weights(tmp_path / "elsewhere")


def test_analysis_reads_both_schema_versions_and_names_the_best_run_and_its_weights(kept_runs, tmp_path):
    from budgetsweep.analysis import analyze
    from budgetsweep.analysis.report import markdown, terminal_text

    sweep = tmp_path / "sweep"
    new_dir, new = kept_runs["best"]
    (sweep / "v2").mkdir(parents=True)
    for name in ("metrics.json", "history.csv", WEIGHTS_FILE):
        (sweep / "v2" / name).write_bytes((new_dir / name).read_bytes())
    # a run written before schema 2: no weights, test_acc from the last epoch, no provenance keys
    old = {
        k: v
        for k, v in new.items()
        if k in METRICS_KEYS
        and k not in ("weights", "test_epoch", "tags", "versions", "git_commit", "git_dirty", "host")
    }
    old.update(schema_version=1, val_acc=0.99, objective=0.99, epochs=2)
    (sweep / "v1").mkdir()
    (sweep / "v1" / "metrics.json").write_text(json.dumps(old))
    result = analyze([sweep])
    df = result.runs.set_index("job")
    assert df.loc["v1", "schema_version"] == 1 and df.loc["v1", "test_epoch"] == 2  # the last epoch's weights
    assert df.loc["v2", "test_epoch"] == 1 and is_missing(df.loc["v1", "weights"])
    assert load_metrics(sweep / "v1")["schema_version"] == 1
    text = terminal_text(result)
    # the best run is v1 (val_acc 0.99) which has no weights; the report says so, with absolute paths
    assert f"Best run: {(sweep / 'v1').resolve()}" in text and "no weights kept" in text
    report = markdown(result, set())
    assert str((sweep / "v1").resolve()) in report
    # among runs with weights, the best one's file is given
    (sweep / "v1" / "metrics.json").write_text(json.dumps({**old, "val_acc": 0.01, "objective": 0.01}))
    text = terminal_text(analyze([sweep]))
    assert f"Best run: {(sweep / 'v2').resolve()}" in text and str((sweep / "v2" / WEIGHTS_FILE).resolve()) in text


@pytest.mark.parametrize(
    "change,says",
    [
        (lambda sd: sd.pop("head.bias"), "missing head.bias"),
        (lambda sd: sd.update(extra=torch.zeros(1)), "unexpected extra"),
        (lambda sd: sd.update({"head.bias": torch.zeros(3)}), "head.bias is 3, the config's model has 10"),
    ],
)
def test_weights_that_do_not_fit_their_model_config_are_one_line(kept_runs, tmp_path, change, says):
    from budgetsweep.trainer.weights import WeightsError

    state = torch.load(kept_runs["best"][0] / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    change(state["state_dict"])
    torch.save(state, tmp_path / WEIGHTS_FILE)
    with pytest.raises(WeightsError) as e:
        load_weights(tmp_path)
    assert str(e.value) == f"{tmp_path / WEIGHTS_FILE}: the weights do not fit the file's own model config: {says}"
