"""The record of a job of any app (budgetsweep.contract.record, `budgetsweep.record`) and how the
Optuna sweeper reads a job's result from it or from what the task returned (`launch.outcome`):
names, dicts, several values, results the plugin would reject, and our own record of an
earlier launch never taken for this one's result."""

from __future__ import annotations

import concurrent.futures as cf

import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import TrialState

import budgetsweep
from budgetsweep.contract import load_metrics, new_metrics, record_path, write_metrics
from budgetsweep.contract.record import named_values, new_record, read_record, write_record
from budgetsweep.sweeper.launch import outcome


def returned(value=None, error=None) -> cf.Future:
    future: cf.Future = cf.Future()
    ret = JobReturn(status=JobStatus.FAILED if error else JobStatus.COMPLETED)
    ret.return_value = error if error else value
    future.set_result(ret)
    return future


def test_a_returned_dict_gives_the_objective_by_name_and_keeps_the_other_numbers(tmp_path):
    got = outcome(returned({"loss": 0.25, "acc": 0.9, "note": "x"}), tmp_path, objective="loss")
    assert (got.status, got.value, got.state) == ("completed", 0.25, TrialState.COMPLETE)
    assert got.named == {"loss": 0.25, "acc": 0.9}
    missing = outcome(returned({"acc": 0.9}), tmp_path, objective="loss")
    assert missing.status == "failed" and "no ['loss']" in missing.error and not missing.counted


def test_several_values_are_named_by_objectives_from_a_sequence_or_a_dict(tmp_path):
    seq = outcome(returned([0.5, 1200]), tmp_path, objectives=["loss", "params"], n_values=2)
    assert seq.value == [0.5, 1200.0] and seq.named == {"loss": 0.5, "params": 1200}
    by_name = outcome(returned({"params": 7, "loss": 0.1}), tmp_path, objectives=["loss", "params"], n_values=2)
    assert by_name.value == [0.1, 7.0]
    unnamed = outcome(returned((1.0, 2.0)), tmp_path, n_values=2)
    assert unnamed.value == [1.0, 2.0] and unnamed.named == {"objective_0": 1.0, "objective_1": 2.0}


def test_a_result_the_plugin_would_reject_fails_its_trial_without_counting_as_a_failure(tmp_path):
    # as the standard plugin: the trial is FAIL, the sweep goes on (max_failure_rate untouched)
    for value, n in ((float("nan"), 1), ([1.0], 2), ([1.0, 2.0, 3.0], 2), ("text", 1), (None, 1)):
        got = outcome(returned(value), tmp_path, n_values=n)
        assert (got.status, got.state, got.counted) == ("failed", TrialState.FAIL, False), value
    raised = outcome(returned(error=ValueError("bad lr")), tmp_path)
    assert raised.status == "failed" and raised.counted  # a job that raised does count


def test_our_record_of_an_earlier_launch_is_not_this_launchs_result(tmp_path):
    write_record(tmp_path, new_record(status="failed", objective=None, error="old", trial=3))
    again = outcome(returned(0.5), tmp_path)
    assert (again.status, again.value, again.error) == ("completed", 0.5, None)
    # the folder read back after an interruption (no launch: nothing returned) is its record
    write_record(tmp_path, new_record(status="completed", objective=0.4, trial=3))
    done = cf.Future()
    done.set_result(None)
    assert outcome(done, tmp_path).value == 0.4


def test_the_sweepers_record_is_the_folders_record_where_it_exists(tmp_path):
    (tmp_path / "metrics.json").write_text('{"the_apps_own": 1}')  # never overwritten, never read as ours
    assert record_path(tmp_path).name == "metrics.json"
    write_record(tmp_path, new_record(status="completed", objective=float("nan"), metrics={"loss": float("inf")}))
    assert record_path(tmp_path).name == "sweep_record.json"
    got = load_metrics(tmp_path)
    assert (
        got["source"] == "sweeper" and got["objective"] is None and got["metrics"] == {"loss": None}
    )  # JSON has no NaN
    assert (tmp_path / "metrics.json").read_text() == '{"the_apps_own": 1}'
    with pytest.raises(KeyError):
        new_record(val_acc=0.9)  # run.py's keys are run.py's
    with pytest.raises(ValueError):
        write_record(tmp_path, new_record(status="done"))


def test_named_values_keeps_numbers_only():
    assert named_values({"a": 1, "b": "x", "c": True, "d": "2.5"}, None) == {"a": 1, "d": "2.5"}
    assert named_values(3, ["loss"]) == {"loss": 3}
    assert named_values([1, 2], ["a"]) == {"objective_0": 1, "objective_1": 2}  # names that do not fit: by position


def test_budgetsweep_record_writes_the_apps_record_with_its_sweep_coordinates(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETSWEEP_TRIAL", "4")
    monkeypatch.setenv("BUDGETSWEEP_STUDY", "s")
    (tmp_path / "model.pt").write_bytes(b"")
    path = budgetsweep.record(
        {"val_loss": 0.3, "val_acc": 0.8},
        objective="val_loss",
        directions={"val_loss": "minimize", "val_acc": "maximize"},
        weights="model.pt",
        run_dir=tmp_path,
    )
    got = read_record(tmp_path)
    assert path == tmp_path / "sweep_record.json" and got["source"] == "app"
    assert (got["objective"], got["objective_name"], got["weights"]) == (0.3, "val_loss", "model.pt")
    assert got["metrics"] == {"val_loss": 0.3, "val_acc": 0.8} and (got["trial"], got["study"]) == (4, "s")
    # the sweeper reads the app's record as the job's result
    assert outcome(returned(123.0), tmp_path, objective="val_loss").value == 0.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metrics": {"loss": "low"}}, "not numbers: ['loss']"),
        ({"metrics": {"loss": 1.0}, "objective": "acc"}, "objective 'acc' is not among the metrics ['loss']"),
        ({"metrics": {"loss": 1.0}, "directions": "down"}, "direction 'down' is not one of"),
    ],
)
def test_budgetsweep_record_refuses_what_it_cannot_record_in_one_line(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        budgetsweep.record(kwargs.pop("metrics"), run_dir=tmp_path, **kwargs)


def test_budgetsweep_record_outside_a_hydra_job_asks_for_the_folder(monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # as outside any job (a test before may set it)
    with pytest.raises(RuntimeError, match="pass run_dir="):
        budgetsweep.record(1.0)


def test_run_pys_metrics_json_still_reads_as_before(tmp_path):
    write_metrics(tmp_path, new_metrics(status="completed", objective=0.7, val_acc=0.7))
    assert record_path(tmp_path).name == "metrics.json" and load_metrics(tmp_path)["val_acc"] == 0.7
    assert outcome(returned(0.7), tmp_path, objective="val_acc").value == 0.7
