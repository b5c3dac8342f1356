"""optuna-dashboard reads our studies: its WSGI app served in-process on a tiny finished study,
checked through its HTTP API (the study, each trained trial with its params and per-epoch
intermediate values, infeasible suggestions told apart from pruned trials by the user
attributes our sweeper sets)."""

from __future__ import annotations

import csv
import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from budgetsweep.analysis.dashboard import dashboard_app
from budgetsweep.contract import load_metrics

from helpers import load_study, run_sweep, study_dirs, trained


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # no access log in the test output
        pass


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    # grid over C x epochs under a 20k budget: C=32 (79,786 params) is infeasible; C=8 trains;
    # ThresholdPruner(lower=1.01, n_warmup_steps=2) stops the epochs=3 trial after epoch 2,
    # the epochs=1 one completes.
    cwd = tmp_path_factory.mktemp("dash")
    r = run_sweep(
        cwd,
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.sampler.seed=0",
        "model.C=choice(8,32)",
        "epochs=choice(1,3)",
        "budget.max_params=20000",
        "hydra.sweeper.n_trials=2",
        "++hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,lower:1.01,n_warmup_steps:2}",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    (study_dir,) = study_dirs(cwd)
    return study_dir


@pytest.fixture
def served(study_dir):
    """The dashboard on a free local port, in this process; yields a GET-JSON function."""
    server = make_server("127.0.0.1", 0, dashboard_app(str(study_dir)), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"

    def get(path: str):
        with urllib.request.urlopen(base + path, timeout=30) as response:
            assert response.status == 200
            return json.loads(response.read())

    yield get
    server.shutdown()
    server.server_close()


def test_the_dashboard_shows_every_trial_and_tells_infeasible_from_pruned(study_dir, served):
    study = load_study(study_dir)
    (listed,) = [s for s in served("/api/studies")["study_summaries"] if s["study_name"] == study.study_name]
    detail = served(f"/api/studies/{listed['study_id']}")
    shown = {t["number"]: t for t in detail["trials"]}
    assert sorted(shown) == [t.number for t in study.trials]  # every suggestion, trained or not

    kinds = {}
    for t in trained(study):
        row = shown[t.number]
        params = {p["name"]: p["param_external_value"] for p in row["params"]}
        assert params == {k: str(v) for k, v in t.params.items()} and params["model.C"] == "8"
        with open(study_dir / str(t.number) / "history.csv") as f:
            val_acc = [float(r["val_acc"]) for r in csv.DictReader(f)]
        steps = [(v["step"], v["value"]) for v in row["intermediate_values"]]
        assert steps == [(e, pytest.approx(a)) for e, a in enumerate(val_acc, 1)]  # one value per epoch
        attrs = {a["key"]: a["value"] for a in row["user_attrs"]}
        assert attrs["run_dir"] == str(t.number)
        kinds[row["state"]] = attrs["status"]
        if attrs["status"] == "completed":  # the run's numbers, without opening its folder
            run = load_metrics(study_dir / str(t.number))
            for key in ("val_acc", "test_acc", "params", "flops"):
                assert float(attrs[key]) == pytest.approx(run[key])
    assert kinds == {"Complete": "completed", "Pruned": "pruned"}

    infeasible = [row for n, row in shown.items() if n not in {t.number for t in trained(study)}]
    assert infeasible, "the grid holds over-budget points"
    for row in infeasible:  # the same state as a pruned trial, told apart by our status and size
        attrs = {a["key"]: a["value"] for a in row["user_attrs"]}
        assert row["state"] == "Pruned" and attrs["status"] == "over_budget" and int(attrs["params"]) > 20000
        # optuna-dashboard 0.21 reads the list Optuna < 5 kept under "constraints"; Optuna 5's
        # named constraints (trial.set_constraint) do not show there: the status is what tells
        assert row["constraints"] == []
        # so `budgetsweep dashboard` gives each one a note, shown on the trial's page
        assert "Over budget: never trained." in row["note"]["body"] and "params" in row["note"]["body"]
        assert (
            not row["intermediate_values"]
            and {p["name"]: p["param_external_value"] for p in row["params"]}["model.C"] == "32"
        )
    best = detail["best_trials"][0]
    assert shown[best["number"]]["state"] == "Complete"


def test_the_dashboard_command_refuses_a_folder_without_a_study(tmp_path):
    from budgetsweep.analysis.dashboard import main

    assert main([str(tmp_path)]) == 2
