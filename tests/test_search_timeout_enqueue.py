"""A time limit and a warm start.

`hydra.sweeper.timeout`: no trial starts after it; the sweep ends with the usual summary and a
line saying it stopped on time (exit 0). `hydra.sweeper.enqueue`: known configurations are the
study's first trials (Optuna's queue), sized like any other, queued once per study."""

from __future__ import annotations

from datetime import timedelta

import yaml

from helpers import OPTUNA, load_study, only_study_dir, run_folders, run_foreign_app, run_sweep

XY = ["x=interval(-2,2)", "y=interval(-2,2)", "hydra.sweeper.n_jobs=1"]


def test_a_sweep_with_a_timeout_starts_no_trial_after_it(tmp_path):
    timeout = 3.0
    r = run_foreign_app(
        tmp_path, "xy", OPTUNA, *XY, "sleep=1.0", "hydra.sweeper.n_trials=50", f"hydra.sweeper.timeout={timeout}"
    )
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert f"Stopped on time: hydra.sweeper.timeout={timeout:g} s reached" in log
    study_dir = only_study_dir(tmp_path)
    results = yaml.safe_load((study_dir / "optimization_results.yaml").read_text())
    assert 1 <= results["n_trained"] <= 5  # each trial sleeps 1 s: far from n_trials=50
    study = load_study(study_dir)
    trials = sorted((t for t in study.trials if t.datetime_start), key=lambda t: t.datetime_start)
    assert all(t.state.is_finished() for t in trials)  # the running one finished, none left behind
    # the clock starts before the first trial: none may start later than timeout after it
    assert trials[-1].datetime_start <= trials[0].datetime_start + timedelta(seconds=timeout)


def test_enqueued_configs_come_first_are_sized_and_are_queued_once(tmp_path):
    args = [
        "model.C=int(interval(8,80))",
        "budget.max_params=20000",
        "hydra.sweeper.enqueue=[{model.C:64},{model.C:9}]",
        "hydra.sweeper.sampler.seed=0",
    ]
    r = run_sweep(tmp_path, *args, "hydra.sweeper.n_trials=1")
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    (study_dir,) = (tmp_path / "outputs" / "optuna").iterdir()
    study = load_study(study_dir)
    first, second = study.trials[:2]
    assert first.params == {"model.C": 64} and first.user_attrs["enqueued"] is True
    assert first.state.name == "PRUNED" and first.user_attrs["status"] == "over_budget"  # sized, not trained
    assert "trial 0 (enqueued): over_budget, not trained" in log
    assert second.params == {"model.C": 9} and second.state.name == "COMPLETE"
    assert [p.name for p in run_folders(study_dir)] == ["1"]

    r = run_sweep(tmp_path, *args, "hydra.sweeper.n_trials=3")  # the same study, continued
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    study = load_study(study_dir)
    enqueued = [t for t in study.trials if t.user_attrs.get("enqueued")]
    assert [t.number for t in enqueued] == [0, 1]  # not queued again
    assert sum(t.params.get("model.C") == 64 for t in study.trials if t.user_attrs.get("enqueued")) == 1
    assert len(run_folders(study_dir)) == 3


def test_an_enqueued_config_outside_the_space_is_one_line(tmp_path):
    r = run_foreign_app(tmp_path, "xy", OPTUNA, *XY, "hydra.sweeper.enqueue=[{x:5}]")
    assert r.returncode == 1
    assert "hydra.sweeper.enqueue[0]: x=5 is outside its search space" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_foreign_app(tmp_path, "xy", OPTUNA, *XY, "hydra.sweeper.enqueue=[{z:1}]")
    assert r.returncode == 1 and "hydra.sweeper.enqueue[0]: z is not a searched key" in r.stderr


def test_the_preset_enqueues_the_studys_final_model():
    from hydra import compose, initialize_config_dir

    from budgetsweep.sweeper.space import check_enqueued, params_to_overrides, parse_space
    from budgetsweep.trainer import register_configs

    from helpers import CONF

    register_configs()
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(config_name="config", overrides=["experiment=search_from_final"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    (final,) = sweeper.enqueue
    space = parse_space(params_to_overrides(sweeper.params))
    params, dropped = check_enqueued(space, dict(final), "enqueue")  # inside the preset's space
    assert dropped == []
    model = {**{k: v for k, v in space.fixed.items() if k.startswith("model.")}, **params}
    assert {k: str(v) for k, v in model.items()} == {
        "model.N": "3",
        "model.B": "3",
        "model.C": "68",
        "model.F": "3",
        "model.K": "1",
        "model.P": "7",
        "model.stem_kernel": "2",
    }
    assert cfg.epochs == 30 and cfg.label_smoothing == 0.1  # budget_search's recipe
