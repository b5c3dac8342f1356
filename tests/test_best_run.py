"""One best run everywhere: the contract's `best_run` on its own (direction, NaN, nothing feasible,
ties), and a hand-made study whose completed trials tie, named alike by analysis (the report's
best line, its tables, the plot's marker, the study summary), `budgetsweep evaluate` and the
sweeper's `optimization_results.yaml`."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from budgetsweep.contract import WEIGHTS_FILE, new_metrics, write_metrics
from budgetsweep.contract.layouts import OPTIMIZATION_RESULTS_FILE, STUDY_FILE, StudyRecord, write_study
from budgetsweep.contract.sweep import (
    SLOT,
    best_run,
    direction_of,
    folder_order,
    ranked_runs,
    sweep_direction,
)


def done(value, trial=None, status="completed", **more):
    return {"status": status, "objective": value, "trial": trial, **more}


# --- the rule on its own ---------------------------------------------------------------------


def test_the_direction_decides():
    runs = [done(0.2, 0), done(0.9, 1), done(0.5, 2)]
    assert best_run(runs)["trial"] == 1 and best_run(runs, "maximize")["trial"] == 1
    assert best_run(runs, "minimize")["trial"] == 0
    with pytest.raises(ValueError, match="'largest' is not one of"):
        best_run(runs, "largest")


def test_nan_and_non_numbers_never_win():
    runs = [done(math.nan, 0), done(None, 1), done("0.99", 2), done("high", 3), done(0.1, 4)]
    # "0.99" is a number written as text: it counts; NaN, None and "high" do not
    assert best_run(runs)["trial"] == 2
    assert best_run(runs, "minimize")["trial"] == 4
    assert [r["trial"] for r in ranked_runs(runs)] == [2, 4]


def test_no_feasible_run_gives_none():
    assert best_run([]) is None
    infeasible = [
        done(0.99, 0, "over_budget"),
        done(0.98, 1, "pruned"),
        done(0.97, 2, "failed"),
        done(math.nan, 3),
        {"objective": 0.96},  # no status: not a completed run
    ]
    assert best_run(infeasible) is None and ranked_runs(infeasible) == []


def test_an_infeasible_run_with_a_better_value_loses():
    runs = [done(0.5, 0), done(0.99, 1, "over_budget"), done(0.6, 2)]
    assert best_run(runs)["trial"] == 2
    assert best_run(runs, feasible=lambda r: True)["trial"] == 1  # only the feasibility rule keeps it out


def test_ties_go_to_the_lowest_trial_number_whatever_the_order():
    runs = [done(1.0, 12), done(1.0, 8), done(0.3, 2), done(1.0, 14)]
    assert best_run(runs)["trial"] == 8
    assert [r["trial"] for r in ranked_runs(runs)] == [8, 12, 14, 2]
    assert best_run(list(reversed(runs)), "minimize")["trial"] == 2


def test_ties_without_trial_numbers_go_to_the_first_given():
    a, b, c = done(0.7, label="a"), done(0.7, label="b"), done(0.7, trial=math.nan, label="c")
    assert best_run([a, b, c]) is a and best_run([c, b, a]) is c
    # a trial number beats none on a tie: a run from a study before a stray one
    numbered = done(0.7, 5, label="d")
    assert best_run([a, numbered, b]) is numbered


def test_objective_falls_back_to_val_acc():
    runs = [{"status": "completed", "val_acc": 0.8}, done(0.7, val_acc=0.99), done(None, val_acc=0.75)]
    assert best_run(runs) is runs[0]
    assert [r.get("val_acc") for r in ranked_runs(runs)] == [0.8, 0.75, 0.99]


def test_value_feasible_and_trial_can_be_read_from_any_object():
    class Trial:
        def __init__(self, number, value, ok=True):
            self.number, self.value, self.ok = number, value, ok

    trials = [Trial(3, 1.0), Trial(1, 2.0, ok=False), Trial(2, 1.0)]
    rule = dict(value=lambda t: t.value, feasible=lambda t: t.ok, trial=lambda t: t.number)
    assert best_run(trials, **rule).number == 2
    assert best_run(trials, **{**rule, "trial": None}).number == 3  # no numbers: the first given


def test_the_direction_of_a_folder():
    assert direction_of("val_acc") == "maximize" and direction_of("final_val_loss") == "minimize"
    assert direction_of("my_score") == "maximize" and direction_of("my_score", "minimize") == "minimize"
    assert sweep_direction("minimize", "val_acc") == "minimize"  # the study's record wins
    assert sweep_direction(["maximize", "minimize"], "val_loss") == "minimize"  # several: the objective's
    assert sweep_direction(None, None) == "maximize" and sweep_direction(None, "test_loss") == "minimize"


def test_folders_sort_as_numbers_first():
    assert sorted(["12", "b", "8", "a", "14", "2"], key=folder_order) == ["2", "8", "12", "14", "a", "b"]


# --- a study whose trials tie: every side names the same one ------------------------------------

TIED = (8, 12, 14)  # folder names: string order (12, 14, 8) differs from number order
OVER_BUDGET = 9  # a better value, but over the parameter budget: never the best
N_TRIALS = 15


def make_tied_study(folder: Path, direction: str, objective: str) -> optuna.Study:
    """A SQLite study of N_TRIALS trials in `folder`, as our sweeper leaves it: study.json, and
    the run folders of trials 2, 8, 9, 12 and 14 (`<folder>/<trial number>/`)."""
    sign = 1 if direction == "maximize" else -1
    best = 1.0 if direction == "maximize" else 0.1
    value = {n: best - sign * (0.5 + n / 100) for n in range(N_TRIALS)}
    value.update({n: best for n in TIED})
    value[OVER_BUDGET] = best + sign * 0.05
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="tied", storage=url, direction=direction)
    for n in range(N_TRIALS):
        over = n == OVER_BUDGET
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                value=value[n],
                params={"model.C": 8 + n},
                distributions={"model.C": IntDistribution(8, 64)},
                system_attrs={SLOT: True},
                constraints={"params": 1000.0 if over else -1000.0},
            )
        )
    write_study(folder, StudyRecord(url, "tied", direction, N_TRIALS))
    for n in (2, *TIED, OVER_BUDGET):
        run = folder / str(n)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"objective": objective, "sweep": {"trial": n}}))
        # val_acc highest for trial 2 (and 12 among the tied): ranking by it would name another trial
        val_acc = {2: 0.99, 12: 0.95}.get(n, 0.9) if objective != "val_acc" else value[n]
        metrics = new_metrics(
            status="over_budget" if n == OVER_BUDGET else "completed",
            objective=value[n],
            val_acc=val_acc,
            params=10_000 + n,
            trial=n,
            study="tied",
            weights=None if n == OVER_BUDGET else WEIGHTS_FILE,
        )
        if objective != "val_acc":
            metrics[objective] = value[n]
        write_metrics(run, metrics)
        if n != OVER_BUDGET:
            (run / WEIGHTS_FILE).write_bytes(b"")  # find_run only checks that the file is there
    return study


@pytest.mark.parametrize("direction,objective", [("maximize", "val_acc"), ("minimize", "final_val_loss")])
def test_every_side_names_the_earliest_tied_trial(tmp_path, monkeypatch, direction, objective):
    from matplotlib.axes import Axes

    from budgetsweep.analysis import analyze
    from budgetsweep.analysis.best import best_run as best_of_df
    from budgetsweep.analysis.best import ranked
    from budgetsweep.analysis.plots import accuracy_vs_params
    from budgetsweep.analysis.report import markdown, terminal_text
    from budgetsweep.analysis.tables import trials_display
    from budgetsweep.sweeper.summary import Progress, write_results
    from budgetsweep.trainer.evaluate import find_run

    folder = tmp_path / "optuna" / "tied"
    study = make_tied_study(folder, direction, objective)
    expected = (folder / "8").resolve()

    # the sweeper's summary: optimization_results.yaml and the progress line
    assert write_results(study, folder, objective)
    results = yaml.safe_load((folder / OPTIMIZATION_RESULTS_FILE).read_text())
    assert results["best_trial"] == 8 and Path(results["best_run_dir"]) == expected
    assert results["best_weights"] == str(expected / WEIGHTS_FILE)
    assert "best so far: trial 8," in Progress(study, objective, N_TRIALS)(study.get_trials(deepcopy=False))

    # budgetsweep evaluate
    assert find_run(folder).resolve() == expected

    # analysis: the DataFrame's best, the report's line and tables, the study summary
    result = analyze([folder])
    assert best_of_df(result.runs)["trial"] == 8
    assert list(ranked(result.runs)["job"]) == ["8", "12", "14", "2"]  # the over-budget trial 9 is out
    assert f"Best run: {expected} (trial 8, " in terminal_text(result)
    report = markdown(result, set())
    assert f"**Best run:** {expected} (trial 8, " in report
    table = report.split("### Best runs", 1)[1].split("**Best run:**", 1)[0]
    rows = [line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["trial 8", "trial 12", "trial 14", "trial 2"]  # after the header row
    (summary,) = result.studies
    assert summary.best["number"] == 8
    assert list(trials_display(summary.trials, summary.direction)["trial"][:3]) == [8, 12, 14]

    # the plot's marker
    texts = []
    annotate = Axes.annotate
    monkeypatch.setattr(Axes, "annotate", lambda ax, text, *a, **k: texts.append(text) or annotate(ax, text, *a, **k))
    assert accuracy_vs_params(result.runs, None, tmp_path / "size.png") is not None
    assert texts == ["best: trial 8"]

    # without study.json the runs' objective name gives the same direction, so the same run
    (folder / STUDY_FILE).unlink()
    assert find_run(folder).resolve() == expected
    assert best_of_df(analyze([folder]).runs)["trial"] == 8


def test_the_progress_line_kept_across_trials_says_what_a_fresh_one_says():
    """`Progress` looks only at trials finished since its last call; trial by trial, in a study
    where an older trial ends after newer ones and ties fall on the lowest number, its line is
    the one computed from scratch."""
    from budgetsweep.sweeper.summary import Progress

    study = optuna.create_study(direction="maximize")
    kept = Progress(study, "val_acc", 10)
    running = study.ask()  # trial 0 runs throughout; it ends last, with the best value
    running.storage.set_trial_system_attr(running._trial_id, SLOT, True)
    lines = []
    for value, fits in [(0.3, True), (0.5, False), (0.5, True), (0.4, True), (0.5, True)]:
        trial = study.ask()
        trial.storage.set_trial_system_attr(trial._trial_id, SLOT, True)
        trial.set_constraint("params", 0.0 if fits else 1.0)
        study.tell(trial, value)
        trials = study.get_trials(deepcopy=False)
        lines.append(kept(trials))
        assert lines[-1] == Progress(study, "val_acc", 10)(trials)  # from scratch
    study.tell(running, 0.9)
    trials = study.get_trials(deepcopy=False)
    lines.append(kept(trials))
    assert lines[-1] == Progress(study, "val_acc", 10)(trials)  # from scratch
    assert lines[0] == "1/10 trained, best so far: trial 1, val_acc=0.3"
    assert lines[2] == "3/10 trained, best so far: trial 3, val_acc=0.5"  # trial 2 is over budget
    assert lines[4] == "5/10 trained, best so far: trial 3, val_acc=0.5"  # trial 5 ties: the lower number
    assert lines[5] == "6/10 trained, best so far: trial 0, val_acc=0.9"
