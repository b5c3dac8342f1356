"""analysis/ on the runs of an app that is not run.py: sweeper records (sweep_record.json) with
the app's own objective name and direction, tables named after it, the best in its direction,
nothing of run.py's asked for; and impossible numbers flagged, never ranked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from budgetsweep.analysis import analyze, collect
from budgetsweep.analysis.ablation import ablation_tables
from budgetsweep.analysis.best import best_run, score
from budgetsweep.analysis.combine import combine_best
from budgetsweep.analysis.output import write
from budgetsweep.analysis.tables import ablation_display
from budgetsweep.contract.record import new_record, write_record

from helpers import make_run


def app_run(root: Path, job: str, width: int, loss: float | None, *, factor=None, status="completed") -> Path:
    """A job of an app that minimises `loss` over `width`, recorded by the ablation sweeper."""
    run = root / job
    (run / ".hydra").mkdir(parents=True)
    overrides = [] if factor is None else [f"width={width}"]
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"width": width, "depth": 1}))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {"hydra": {"job": {"name": "app"}, "runtime": {"choices": {"hydra/sweeper": "ablation"}}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    coordinates = {"factor": factor, "value": None if factor is None else str(width), "baseline": factor is None}
    record = new_record(
        status=status,
        objective=loss,
        objective_name="loss",
        metrics={} if loss is None else {"loss": loss},
        directions={"loss": "minimize"},
        overrides=overrides,
        **coordinates,
    )
    write_record(run, record)
    return run


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    app_run(root, "0", 8, 0.40)
    app_run(root, "1", 16, 0.10, factor="width")
    app_run(root, "2", 32, 0.25, factor="width")
    app_run(root, "3", 64, None, factor="width", status="failed")
    return root


def test_the_score_is_the_apps_objective_in_its_declared_direction(sweep):
    df = collect(sweep)
    got = score(df)
    assert (got.name, got.column, got.direction, got.percent) == ("loss", "loss", "minimize", False)
    assert best_run(df)["job"] == "1"  # the lowest loss, not the highest


def test_ablation_tables_of_an_app_are_named_after_its_objective(sweep):
    df = collect(sweep)
    abl = ablation_tables(df)
    table = abl.tables["width"].set_index("value")
    assert table.loc["16", "loss_mean"] == pytest.approx(0.10)
    assert table.loc["16", "delta_loss"] == pytest.approx(-0.30)  # lower is better: a gain
    assert "val_acc_mean" not in table.columns
    shown = ablation_display(abl.tables["width"], abl.score)
    assert "loss" in shown.columns and "Δ loss" in shown.columns
    assert "test acc (%)" not in shown.columns and "params" not in shown.columns  # nothing recorded there
    combined = combine_best(df, abl, check_budget=None)
    assert combined.best_each.changes == {"width": "16"}
    assert combined.predicted(combined.best_each) == pytest.approx(0.10)
    assert combined.best_each.command == "python app.py width=16"  # the app's own script


def test_the_report_of_an_apps_ablation_speaks_of_its_objective(sweep, tmp_path):
    result = analyze([sweep])
    assert result.warnings == []  # no history, no metrics.json: nothing to warn about
    files = write(result, tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "`loss` (lower is better)" in report and "Baseline loss 0.4 (lower is better)" in report
    assert "val acc" not in report and "test acc" not in report
    assert any(f.name == "ablation_width.png" for f in files)
    assert f"**Best run:** {(sweep / '1').resolve()} (loss 0.1); no weights kept by the app" in report


@pytest.mark.parametrize(
    ("key", "value"),
    [("val_acc", 1e308), ("val_acc", 1.5), ("val_acc", -0.1), ("test_acc", 2.0), ("epochs", -1), ("params", -5)],
)
def test_impossible_numbers_make_a_run_corrupt_and_never_ranked(tmp_path, key, value):
    root = tmp_path / "runs"
    make_run(root, "0", val=0.5)
    bad = make_run(root, "1", val=0.6)
    metrics = json.loads((bad / "metrics.json").read_text())
    metrics[key] = value
    (bad / "metrics.json").write_text(json.dumps(metrics))
    df = collect(root)
    row = df.set_index("job").loc["1"]
    assert row["status"] == "corrupt" and repr(key) in row["error"]
    assert best_run(df)["job"] == "0"
    (line,) = [w for w in df.attrs["warnings"] if "corrupt" in w]
    assert str(bad / "metrics.json") in line and repr(key) in line


def test_infinity_and_nan_in_a_metrics_file_are_corrupt(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "0", val=0.5)
    for job, text in (("1", "Infinity"), ("2", "NaN")):
        bad = make_run(root, job, val=0.6)
        (bad / "metrics.json").write_text(
            (bad / "metrics.json").read_text().replace('"val_acc": 0.6', f'"val_acc": {text}')
        )
    df = collect(root).set_index("job")
    assert list(df["status"]) == ["completed", "corrupt", "corrupt"]
