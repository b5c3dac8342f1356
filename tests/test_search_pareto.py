"""Several objectives: accuracy against size as a Pareto search under the
budget. run.py's objectives are read by name from each run's metrics.json; a foreign app returns
a tuple. The budget stays a hard constraint: infeasible suggestions are never trained.
`python -m budgetsweep.analysis` reports the study's front (study.best_trials): table, plot, knee choices."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from helpers import OPTUNA, ROOT, env, load_study, metrics, only_study_dir, run_folders, run_foreign_app, run_sweep

MAX_PARAMS, MAX_FLOPS = 12_000, 7_500_000


@pytest.fixture(scope="module")
def pareto_sweep(tmp_path_factory):
    """A two-objective NSGA-II sweep of run.py on tiny data, under a parameter and a FLOPs budget."""
    where = tmp_path_factory.mktemp("pareto")
    r = run_sweep(
        where,
        "model.C=int(interval(8,24))",
        "model.P=choice(4,8)",
        f"budget.max_params={MAX_PARAMS}",
        f"budget.max_flops={MAX_FLOPS}",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra.sweeper.objectives=[val_acc,flops]",
        "hydra.sweeper.n_trials=5",
        "hydra/sweeper/sampler=nsgaii",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.sampler.population_size=4",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (study_dir,) = (where / "outputs" / "optuna").iterdir()
    return where, study_dir, r


def test_infeasible_suggestions_are_never_trained(pareto_sweep):
    _, study_dir, _ = pareto_sweep
    study = load_study(study_dir)
    trained = {int(p.name) for p in run_folders(study_dir)}
    infeasible = {t.number for t in study.trials if any(v > 0 for v in t.constraints.values())}
    assert infeasible and trained and not infeasible & trained
    for run in run_folders(study_dir):
        m = metrics(run)
        assert m["params"] <= MAX_PARAMS and m["flops"] <= MAX_FLOPS and m["max_flops"] == MAX_FLOPS


def test_each_trial_is_told_both_objectives_from_its_metrics(pareto_sweep):
    _, study_dir, _ = pareto_sweep
    study = load_study(study_dir)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_acc", "flops"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 5
    for t in done:
        m = metrics(study_dir / str(t.number))
        assert t.values == [m["val_acc"], m["flops"]]


def test_the_sweep_reports_its_front(pareto_sweep):
    _, study_dir, r = pareto_sweep
    study = load_study(study_dir)
    results = yaml.safe_load((study_dir / "optimization_results.yaml").read_text())
    assert results["objectives"] == ["val_acc", "flops"]
    assert [p["trial"] for p in results["pareto_front"]] == sorted(t.number for t in study.best_trials)
    # the standard plugin's key, beside ours: the same trials, params and values
    front = {t.number: t for t in study.best_trials}
    assert results["solutions"] == [
        {"params": front[p["trial"]].params, "values": front[p["trial"]].values} for p in results["pareto_front"]
    ]
    assert "Pareto front (val_acc,flops)" in r.stdout + r.stderr


def test_analysis_reports_the_front_of_best_trials(pareto_sweep, tmp_path):
    where, study_dir, _ = pareto_sweep
    out = tmp_path / "analysis"
    r = subprocess.run(
        [sys.executable, "-m", "budgetsweep.analysis", str(study_dir), "--out", str(out)],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    study = load_study(study_dir)
    name = study.study_name
    table = pd.read_csv(out / f"optuna_{name}_pareto.csv")
    front = {t.number: t for t in study.best_trials}
    assert sorted(table["trial"]) == sorted(front)
    for _, row in table.iterrows():
        t = front[int(row["trial"])]
        assert [row["objective val_acc"], row["objective flops"]] == pytest.approx(t.values)
        m = metrics(study_dir / str(t.number))
        assert (row["params"], row["flops"], row["test_acc"]) == (m["params"], m["flops"], pytest.approx(m["test_acc"]))
        assert row["run_dir"] == str(study_dir / str(t.number))
    assert (out / f"optuna_{name}_pareto.png").stat().st_size > 0
    assert (out / "accuracy_vs_params.png").stat().st_size > 0
    best = max(front.values(), key=lambda t: t.values[0])
    assert f"Best under the budget: trial #{best.number}" in r.stdout
    near = [t for t in front.values() if t.values[0] >= best.values[0] - 0.005]
    smallest = min(near, key=lambda t: (metrics(study_dir / str(t.number))["params"], t.number))
    assert f"Smallest within 0.5 points of the best: trial #{smallest.number}" in r.stdout
    report = (out / "report.md").read_text()
    assert f"optuna_{name}_pareto.png" in report and "Pareto front" in report


def test_the_knee_choices(tmp_path):
    """Unit: best under the budget = the most accurate; smallest within 0.5 points of it."""
    import optuna

    from budgetsweep.analysis.pareto import pareto_front

    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, params in ((0.90, 9000), (0.897, 5000), (0.896, 4000), (0.80, 1000), (0.70, 9500)):
        t = study.ask()
        t.set_user_attr("val_acc", acc)
        t.set_user_attr("params", params)
        t.set_user_attr("run_dir", str(t.number))
        study.tell(t, [acc, params])
    front = pareto_front(study, tmp_path)
    assert sorted(front.table["trial"]) == sorted(t.number for t in study.best_trials) == [0, 1, 2, 3]
    assert front.best["trial"] == 0 and front.smallest_within["trial"] == 2
    assert front.best["run_dir"] == str(tmp_path / "0")


def test_a_foreign_app_returning_a_tuple_with_tpe(tmp_path):
    r = run_foreign_app(
        tmp_path,
        "sized",
        OPTUNA,
        "model.C=int(interval(8,48))",
        "model.B=range(1,3)",
        "model.N=2",
        "two_objectives=true",
        "budget.max_params=20000",
        "hydra.sweeper.direction=[maximize,minimize]",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/sampler=tpe",
        "hydra.sweeper.sampler.seed=1",
        "hydra.sweeper.sampler.n_startup_trials=2",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    study = load_study(only_study_dir(tmp_path))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 4 and all(len(t.values) == 2 for t in done)
    assert all(t.user_attrs["params"] <= 20000 for t in done)
    assert study.best_trials


def test_several_directions_need_the_objectives_named_for_run_py(tmp_path):
    r = run_sweep(tmp_path, "hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.n_trials=1")
    assert r.returncode == 1
    assert "name the objectives to read from each run's metrics.json" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("objectives", "said"),
    [
        ("[val_acc,nonexistent_metric]", "nonexistent_metric: not a number metrics.json holds"),
        ("[test_acc,params]", "test_acc: a search tuned on the test split reports a biased test score"),
    ],
)
def test_objectives_run_py_cannot_give_are_refused_before_anything_trains(tmp_path, objectives, said):
    r = run_sweep(tmp_path, "hydra.sweeper.direction=[maximize,minimize]", f"hydra.sweeper.objectives={objectives}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"hydra.sweeper.objectives: {said}" in r.stderr
    assert not any((tmp_path / "outputs" / "optuna").glob("*/0"))  # no trial folder: nothing launched
