"""budgetsweep.analysis.study on a real tiny Optuna study in a SQLite file (no training: ask/tell only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from budgetsweep.analysis import find_studies, summarize
from budgetsweep.contract.layouts import StudyRecord, write_study

from helpers import ROOT

# (C, lr, state, value, params constraint): constraint > 0 = over the budget (infeasible).
TRIALS = [
    (16, 1e-3, TrialState.COMPLETE, 0.60, -0.5),
    (32, 1e-2, TrialState.COMPLETE, 0.70, -0.1),
    (64, 1e-2, TrialState.PRUNED, None, 0.2),  # over budget: told PRUNED, never trained
    (8, 1e-1, TrialState.FAIL, None, -0.9),
    (24, 3e-3, TrialState.COMPLETE, 0.65, -0.3),
    (28, 5e-3, TrialState.PRUNED, None, -0.2),  # stopped by the pruner
    (60, 1e-3, TrialState.COMPLETE, 0.99, 0.1),  # infeasible: must never be the best
    (20, 2e-3, TrialState.COMPLETE, 0.62, -0.4),
]


def make_study(folder: Path, name: str = "tiny", record: bool = True) -> str:
    """A SQLite study in `folder/study.db` with TRIALS; `study.json` as our sweeper writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    for c, lr, state, value, constraint in TRIALS:
        study.enqueue_trial({"model.C": c, "optimizer.lr": lr})  # ask() then suggests these
        trial = study.ask()
        trial.suggest_int("model.C", 8, 64)
        trial.suggest_float("optimizer.lr", 1e-4, 1e-1, log=True)
        trial.set_constraint("params", constraint)
        study.tell(trial, value, state=state)
    if record:
        write_study(folder, StudyRecord(url, name, "maximize", len(TRIALS)))
    return url


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "optuna" / "tiny"
    make_study(folder)
    return folder


def test_find_studies_from_study_json(study_dir):
    assert find_studies(study_dir) == [(f"sqlite:///{study_dir / 'study.db'}", "tiny")]


def test_find_studies_from_sqlite_files(tmp_path):
    folder = tmp_path / "sweep"
    make_study(folder, "first", record=False)
    optuna.create_study(study_name="second", storage=f"sqlite:///{folder / 'study.db'}")
    (folder / "notes.db").write_text("not a database")  # skipped with a warning
    found = find_studies(folder)
    assert sorted(name for _, name in found) == ["first", "second"]


def test_summary_counts_best_feasible_and_importances(study_dir):
    ((storage, name),) = find_studies(study_dir)
    s = summarize(storage, name)
    assert s.counts == {"complete": 4, "pruned": 1, "infeasible": 2, "failed": 1, "other": 0}
    # Trial 6 has the highest value but violates the budget: the best feasible is trial 1.
    assert s.best["number"] == 1 and s.best["value"] == 0.70
    assert s.best["params"]["model.C"] == 32
    assert list(s.trials["number"]) == list(range(8))
    assert list(s.trials["feasible"]) == [True, True, False, True, True, True, False, True]
    assert list(s.trials["state"])[:3] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert set(s.importances) == {"model.C", "optimizer.lr"}
    assert sum(s.importances.values()) == pytest.approx(1.0)


def test_cli_on_a_study_folder_without_runs(study_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "budgetsweep.analysis", str(study_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = study_dir / "analysis"
    assert (out / "optuna_tiny_history.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "optuna_tiny_importances.png").read_bytes()[:4] == b"\x89PNG"
    for ext in (".md", ".csv", ".tex"):
        assert (out / f"optuna_tiny_trials{ext}").is_file()
    report = (out / "report.md").read_text()
    assert "4 complete, 1 pruned, 2 infeasible, 1 failed" in report
    assert "Best feasible trial #1" in report and "](optuna_tiny_history.png)" in report
    assert "4 complete, 1 pruned, 2 infeasible, 1 failed" in proc.stdout


def test_the_whole_study_is_drawn_and_each_trial_says_what_became_of_it(tmp_path):
    from budgetsweep.analysis import plots
    from budgetsweep.analysis.output import _untrained
    from budgetsweep.analysis.pipeline import Analysis
    from budgetsweep.analysis.tables import trials_display

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    for reported, state, constraint, params, error in (
        ([0.5, 0.7], TrialState.COMPLETE, -1.0, 1000, None),
        ([0.2, 0.25], TrialState.PRUNED, -1.0, 2000, None),  # stopped by the pruner at step 2
        ([], TrialState.PRUNED, 0.5, 9000, "9,000 params > budget 5,000"),  # over the budget, never trained
        ([], TrialState.FAIL, -1.0, 1500, "RuntimeError: boom"),
    ):
        trial = study.ask()
        trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        trial.set_constraint("params", constraint)
        trial.set_user_attr("params", params)
        if error:
            trial.set_user_attr("error", error)
        for step, value in enumerate(reported, 1):
            trial.report(value, step)
        study.tell(trial, reported[-1] if state == TrialState.COMPLETE else None, state=state)
    summary = summarize(url, "s")
    shown = trials_display(summary.trials, summary.direction).set_index("trial")
    assert list(shown["status"]) == ["completed", "pruned at step 2", "over budget", "failed"]
    assert shown.loc[2, "reason"] == "9,000 params > budget 5,000" and shown.loc[3, "reason"] == "RuntimeError: boom"
    assert "user_params" not in shown.columns and list(shown["params"]) == ["1,000", "2,000", "9,000", "1,500"]
    assert _untrained(Analysis([], studies=[summary])) == [9000.0]  # drawn as a cross on accuracy vs size
    assert plots.pruning_chart(study, tmp_path / "reported.png") == tmp_path / "reported.png"
    assert plots.optuna_history(study, tmp_path / "history.png") == tmp_path / "history.png"
    flat = optuna.create_study()
    flat.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert plots.pruning_chart(flat, tmp_path / "none.png") is None  # nothing reported: nothing to draw
