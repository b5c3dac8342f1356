"""Results for any Hydra app: the sweepers record every job of an app that writes nothing of ours
(`sweep_record.json`, budgetsweep.contract.record), then `budgetsweep analyze` and `budgetsweep
evaluate` read the app's sweep as they read run.py's, with the objective's own name and
direction, and name the study's best trial.

The apps: the x-y function (tests/apps/xy: returns an unnamed number, reports steps), the MLP
example (examples/mlp: a loss named through `hydra.sweeper.objectives`), and an app with its own
`models`/`data` packages that names and declares its loss with `budgetsweep.record`
(tests/apps/ownpkgs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers import ABLATION, OPTUNA, env, load_study, run_foreign_app, study_dirs, trained


def ok(r: subprocess.CompletedProcess) -> str:
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    return out


def budgetsweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "budgetsweep", *args]
    return subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)


def record(run_dir: Path) -> dict:
    return json.loads((run_dir / "sweep_record.json").read_text())


def analyzed(study_dir: Path, where: Path) -> tuple[str, str, pd.DataFrame]:
    """`budgetsweep analyze` on the study: what it printed, report.md and runs.csv."""
    out = ok(budgetsweep("analyze", str(study_dir), cwd=where))
    assert "WARNING" not in out and "missing" not in out, out[-3000:]  # no false warning
    report = (study_dir / "analysis" / "report.md").read_text()
    return out, report, pd.read_csv(study_dir / "analysis" / "runs.csv")


def best_line(report: str) -> str:
    (line,) = [line for line in report.splitlines() if line.startswith("**Best run:**")]
    return line


@pytest.fixture(scope="module")
def xy_study(tmp_path_factory):
    where = tmp_path_factory.mktemp("xy")
    r = run_foreign_app(
        where, "xy", OPTUNA, "x=interval(-2,2)", "y=interval(-2,2)", "steps=3", "hydra.sweeper.n_trials=5"
    )
    ok(r)
    (study_dir,) = study_dirs(where)
    return where, study_dir, load_study(study_dir)


def test_each_trial_of_an_app_that_returns_a_number_is_recorded_by_the_sweeper(xy_study):
    _, study_dir, study = xy_study
    for t in trained(study):
        got = record(study_dir / str(t.number))
        assert got["source"] == "sweeper" and got["status"] == "completed"
        assert got["objective"] == pytest.approx(t.value) and got["objective_name"] == "objective"
        assert got["metrics"] == {"objective": pytest.approx(t.value)}
        assert got["directions"] == {"objective": "minimize"}  # the plugin's default direction
        assert (got["trial"], got["study"]) == (t.number, study.study_name)
        # what the job reported through trial_reporter, step by step
        assert {int(k): v for k, v in got["intermediate"].items()} == pytest.approx(t.intermediate_values)
        assert len(got["intermediate"]) == 3 and got["train_seconds"] > 0
        assert sorted(o.split("=")[0] for o in got["overrides"]) == ["x", "y"]
    assert json.loads((study_dir / "study.json").read_text())["objectives"] == ["objective"]


def test_analysis_of_an_apps_study_names_its_best_trial_without_warnings(xy_study):
    where, study_dir, study = xy_study
    out, report, runs = analyzed(study_dir, where)
    best = study.best_trial.number
    assert f"{study_dir / str(best)} (trial {best}, objective {study.best_value:.4g})" in best_line(report)
    assert "no weights kept by the app" in best_line(report)
    # what run.py has and the app lacks is left out, not shown empty or warned about
    assert "val acc" not in report and "test acc" not in report and "Learning curves" not in report
    assert len(runs) == 5 and set(runs["status"]) == {"completed"}
    assert runs.set_index("trial")["objective"].to_dict() == pytest.approx({t.number: t.value for t in trained(study)})
    assert f"Best run: {study_dir / str(best)}" in out
    # short names: a trial is "trial N", its values columns of their own to 4 digits; rows stay readable
    assert all(len(line) <= 200 for line in report.splitlines() if line.startswith("|")), max(
        map(len, report.splitlines())
    )
    assert f"| trial {best} " in report and "| x " in report and "| y " in report


def test_evaluate_on_an_apps_study_says_in_one_line_that_it_kept_no_weights(xy_study):
    where, study_dir, _ = xy_study
    r = budgetsweep("evaluate", str(study_dir), cwd=where)
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stdout + r.stderr
    assert "weights" in lines[0] and str(study_dir) in lines[0]


def test_the_mlp_examples_loss_is_named_by_the_sweeper_config_and_minimised(tmp_path):
    r = run_foreign_app(
        tmp_path,
        "mlp",
        OPTUNA,
        "model.hidden=choice(4,8,16)",
        "epochs=2",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.objectives=[val_loss]",
    )
    ok(r)
    (study_dir,) = study_dirs(tmp_path)
    study = load_study(study_dir)
    for t in trained(study):
        got = record(study_dir / str(t.number))
        assert got["objective_name"] == "val_loss" and got["metrics"] == {"val_loss": pytest.approx(t.value)}
        assert got["params"] == t.user_attrs["params"] and got["max_params"] == 2000  # the trial's sizing
        assert len(got["intermediate"]) == 2  # the reporter's epochs
    out, report, runs = analyzed(study_dir, tmp_path)
    best = study.best_trial.number
    assert f"trial {best}, val_loss {study.best_value:.4g}" in best_line(report)
    assert "## `val_loss` against size" in report  # the app's objective against its models' sizes
    assert (study_dir / "analysis" / "accuracy_vs_params.png").is_file()
    assert "| run " in report and "val_loss" in report.split("### Best runs")[1].splitlines()[2]
    assert runs["val_loss"].notna().all()


# ---------------------------------------------------------------------- ablation sweeps, then analysis
def test_an_apps_ablation_reads_as_tables_named_after_its_objective(tmp_path):
    ok(run_foreign_app(tmp_path, "xy", ABLATION, "x=-1,0,1", "y=0,2", "hydra.sweeper.repeats=2"))
    (sweep_dir,) = (tmp_path / "outputs" / "ablation").iterdir()
    out, report, runs = analyzed(sweep_dir, tmp_path)
    assert len(runs) == 8 and set(runs["status"]) == {"completed"}
    # (x - 1)^2 + (y + 0.5)^2, minimised: x=1 is the best value, y=2 is worse than the baseline 0
    table = pd.read_csv(sweep_dir / "analysis" / "ablation_x.csv").set_index("value")
    assert table.loc[1, "objective_mean"] == pytest.approx(0.25) and table.loc[1, "delta_objective"] == pytest.approx(
        -1
    )
    assert "`objective` (lower is better)" in report and "predicted objective 0.25" in report
    assert f"**Best run:** {(sweep_dir / '2').resolve()} (objective 0.25)" in best_line(report)
    assert "python app.py x=1" in report  # the app's own command, not run.py's
    assert "val acc" not in report and "test acc" not in report


def test_the_ablation_of_an_app_with_its_own_packages_names_its_loss(tmp_path):
    ok(run_foreign_app(tmp_path, "ownpkgs", ABLATION, "model.width=16,24"))
    (sweep_dir,) = (tmp_path / "outputs" / "ablation").iterdir()
    out, report, runs = analyzed(sweep_dir, tmp_path)
    assert "| loss " in report and "`loss` (lower is better)" in report
    assert f"{(sweep_dir / '2').resolve()} (loss 0)" in best_line(report)  # job 2: width 24
    assert "Train it with:" in report and "model.width=24" in report
    r = budgetsweep("evaluate", str(sweep_dir), cwd=tmp_path)
    assert r.returncode != 0 and len((r.stdout + r.stderr).strip().splitlines()) == 1


def test_the_mlp_examples_ablation_reads_and_evaluates_in_one_line(tmp_path):
    ok(run_foreign_app(tmp_path, "mlp", ABLATION, "model.hidden=8,32", "epochs=2", "hydra.sweeper.objective=val_loss"))
    (sweep_dir,) = (tmp_path / "outputs" / "ablation").iterdir()
    out, report, runs = analyzed(sweep_dir, tmp_path)
    assert len(runs) == 3 and runs["val_loss"].notna().all() and runs["params"].notna().all()
    assert "`val_loss` (lower is better)" in report and "| val_loss " in report
    best = runs.loc[runs["val_loss"].idxmin(), "job"]
    assert f"{(sweep_dir / str(best)).resolve()} (val_loss " in best_line(report)
    r = budgetsweep("evaluate", str(sweep_dir), cwd=tmp_path)
    said = (r.stdout + r.stderr).strip()
    assert r.returncode == 2 and said.startswith(f"evaluate: error: no weights kept in {sweep_dir}")
