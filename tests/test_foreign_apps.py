"""Our sweepers from Hydra apps that share no config with run.py (tests/apps/, examples/mlp/), each
run as `python app.py -m hydra/sweeper=budget_optuna|ablation ...` in a subprocess: no key of
ours required, sizing of a `_target_` model on the meta device, the public pruning hook, the
standard plugin's defaults and meanings, and the registered configs selected by name."""

from __future__ import annotations

import json

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from budgetsweep.contract import load_metrics

from helpers import (
    ABLATION,
    OPTUNA,
    ablation_dir,
    job_config,
    job_env,
    load_study,
    run_folders,
    run_foreign_app,
    study_dirs,
    times,
    trained,
)

XY_KEYS = {"x", "y", "steps", "sleep", "fail", "nan", "slow_trial", "slow_seconds"}


def ok(r) -> None:
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr


def the_study(where):
    (study_dir,) = study_dirs(where)
    return study_dir, load_study(study_dir)


# ------------------------------------------------------------------------ a function of x and y
def test_xy_optuna_needs_no_key_of_ours_and_minimizes_by_default(tmp_path):
    r = run_foreign_app(tmp_path, "xy", OPTUNA, "x=interval(-2,2)", "y=interval(-2,2)", "hydra.sweeper.n_trials=6")
    ok(r)
    assert "no budget (no budget.max_params in the config" in r.stdout  # said once, at the start
    study_dir, study = the_study(tmp_path)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # the plugin's default
    done = trained(study)
    assert len(done) == 6 and all(t.state == TrialState.COMPLETE for t in done)
    assert study.best_value == min(t.value for t in done)
    assert study.best_value == pytest.approx((study.best_params["x"] - 1) ** 2 + (study.best_params["y"] + 0.5) ** 2)
    for t in done:  # the app's config untouched; the trial reaches the job through Hydra's job config
        run_dir = study_dir / str(t.number)
        assert set(job_config(run_dir)) == XY_KEYS
        env = job_env(run_dir)
        assert env.pop("BUDGETSWEEP_CLAIM")  # the worker's claim on the trial (budgetsweep.sweeper.slots)
        assert env == {"BUDGETSWEEP_TRIAL": str(t.number), "BUDGETSWEEP_STUDY": study.study_name}
    results = OmegaConf.load(study_dir / "optimization_results.yaml")
    assert results.best_value == study.best_value


def test_xy_ablation_one_factor_at_a_time_without_seed_or_sweep_keys(tmp_path):
    r = run_foreign_app(tmp_path, "xy", ABLATION, "x=-1,0,1", "y=2", "hydra.sweeper.repeats=2")
    ok(r)
    assert "repeats run unseeded" in r.stdout + r.stderr
    jobs = run_folders(ablation_dir(tmp_path))
    got = [(job_config(d)["x"], job_config(d)["y"], job_env(d)) for d in jobs]
    base, minus, one = (
        {"BUDGETSWEEP_BASELINE": "true"},
        {"BUDGETSWEEP_FACTOR": "x", "BUDGETSWEEP_VALUE": "-1", "BUDGETSWEEP_BASELINE": "false"},
        {"BUDGETSWEEP_FACTOR": "x", "BUDGETSWEEP_VALUE": "1", "BUDGETSWEEP_BASELINE": "false"},
    )
    expected = [
        (x, 2, {**env, "BUDGETSWEEP_REPEAT": str(rep)})
        for rep in (0, 1)
        for x, env in ((0.0, base), (-1, minus), (1, one))
    ]
    assert got == expected  # x=0 is the baseline: skipped as a variant
    assert all(set(job_config(d)) == XY_KEYS for d in jobs)  # no sweep node, no seed added
    # its own folder, named by the plan, not Hydra's timestamped multirun/
    assert ablation_dir(tmp_path).name.startswith("ablation-") and not (tmp_path / "multirun").exists()
    for d, (x, y, env) in zip(jobs, expected):  # the sweeper's record of what each job returned
        record = json.loads((d / "sweep_record.json").read_text())
        assert record["status"] == "completed" and record["source"] == "sweeper"
        assert record["objective"] == pytest.approx((x - 1) ** 2 + (y + 0.5) ** 2)
        assert record["objective_name"] == "objective" and record["directions"] == {"objective": "minimize"}
        assert record["metrics"] == {"objective": record["objective"]}
        assert (record["factor"], record["value"]) == (env.get("BUDGETSWEEP_FACTOR"), env.get("BUDGETSWEEP_VALUE"))
        assert record["baseline"] == (env["BUDGETSWEEP_BASELINE"] == "true")
        assert record["repeat"] == int(env["BUDGETSWEEP_REPEAT"])
        assert record["overrides"] == ["y=2"] + ([f"x={x}"] if x != 0.0 else [])
        assert record["train_seconds"] > 0 and record["params"] is None  # timed; nothing sized
        assert load_metrics(d) == record  # what analysis and resume read


def summary(r) -> list[str]:
    """The log lines of the ablation's summary, without Hydra's time stamps."""
    lines = [line.split("] ", 1)[-1] for line in (r.stdout + r.stderr).splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("Ablation: ") and " runs: " in line)
    return lines[start : start + 6]


@pytest.mark.parametrize(
    "settings, best, gain, name",
    [
        ([], "x=1: 6.25", "+1", "objective"),  # minimised by default, as by the Optuna plugin
        (["hydra.sweeper.objective=dist", "hydra.sweeper.direction=maximize"], "x=-1: 10.25", "+3", "dist"),
    ],
    ids=["minimize", "maximize"],
)
def test_xy_ablation_summary_names_each_factors_best_value_and_a_rerun_resumes(tmp_path, settings, best, gain, name):
    # baseline x=0: 7.25; x=-1: 10.25; x=1: 6.25 (y=2 everywhere)
    args = ["x=-1,0,1", "y=2", *settings]
    r = run_foreign_app(tmp_path, "xy", ABLATION, *args)
    ok(r)
    sweep_dir = ablation_dir(tmp_path)
    shown = f"outputs/ablation/{sweep_dir.name}"
    job = "2" if best.startswith("x=1") else "1"
    direction = "maximize" if "maximize" in " ".join(settings) else "minimize"
    assert summary(r)[:5] == [
        "Ablation: 3 runs: 3 completed",
        f"Ablation: {name} ({direction}), mean over repeats of completed runs; baseline 7.25",
        f"  x: best {best}, gain {gain}",
        f"Best: {best.split(':')[0]}, repeat 0, {name}={best.split(': ')[1]}, in {shown}/{job}",
        f"tables and plots: budgetsweep analyze {shown}",
    ]
    assert json.loads((sweep_dir / "0" / "sweep_record.json").read_text())["directions"] == {name: direction}
    ran = {d.name: times(d) for d in run_folders(sweep_dir)}

    again = run_foreign_app(tmp_path, "xy", ABLATION, *args)  # the same command: the same folder
    ok(again)
    assert "3 of 3 jobs finished before (kept, not run again), 0 to run" in again.stdout
    assert {d.name: times(d) for d in run_folders(ablation_dir(tmp_path))} == ran  # none ran again
    assert summary(again)[:5] == summary(r)[:5]


def test_xy_ablation_records_a_job_that_raises_or_returns_no_number_as_failed(tmp_path):
    args = ["fail=choice(true)", "nan=choice(true)", "hydra.sweeper.max_failure_rate=0.5"]
    r = run_foreign_app(tmp_path, "xy", ABLATION, *args)
    ok(r)  # one of three raised: within the rate
    records = [load_metrics(d) for d in run_folders(ablation_dir(tmp_path))]
    got = [(m["factor"], m["status"], m["objective"], m["error"]) for m in records]
    assert got == [
        (None, "completed", 1.25, None),
        ("fail", "failed", None, "RuntimeError: asked to fail at x=0.0"),
        ("nan", "failed", None, "no objective value: nan"),
    ]
    assert summary(r)[0] == "Ablation: 3 runs: 1 completed, 2 failed"
    assert "  fail: no completed run" in summary(r)

    again = run_foreign_app(tmp_path, "xy", ABLATION, *args)  # failed jobs run again, in their folders
    ok(again)
    assert "1 of 3 jobs finished before (kept, not run again), 2 to run" in again.stdout


def test_xy_ablation_in_the_users_sweep_dir(tmp_path):
    r = run_foreign_app(tmp_path, "xy", ABLATION, "x=0,1", "hydra.sweep.dir=mine")
    ok(r)
    assert not (tmp_path / "outputs").exists() and (tmp_path / "mine" / "ablation_plan.yaml").is_file()
    assert [load_metrics(d)["objective"] for d in run_folders(tmp_path / "mine")] == [1.25, 0.25]
    assert "tables and plots: budgetsweep analyze mine" in r.stdout + r.stderr
    named = run_foreign_app(tmp_path, "xy", ABLATION, "x=0,1", "hydra.sweeper.name=first")
    ok(named)
    assert [p.name for p in (tmp_path / "outputs" / "ablation").iterdir()] == ["first"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["hydra.sweeper.direction=up"], "ablation: hydra.sweeper.direction must be null, maximize or minimize"),
        (["hydra.sweep.dir=a", "hydra.sweeper.dir=b"], "ablation: hydra.sweep.dir=a and hydra.sweeper.dir=b"),
    ],
    ids=["direction", "two folders"],
)
def test_xy_ablation_bad_settings_are_one_line(tmp_path, args, message):
    r = run_foreign_app(tmp_path, "xy", ABLATION, "x=0,1", *args)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("ablation:")]
    assert line.startswith(message)
    assert not list(tmp_path.rglob("sweep_record.json"))


# ------------------------------------------------------- plain PyTorch, an MLP node, a budget
PRUNE_FROM_EPOCH_2 = "+hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,upper:-1.0,n_warmup_steps:2}"


def mlp_params(hidden: int, depth: int = 2, inputs: int = 8, outputs: int = 2) -> int:
    sizes = [inputs] + [hidden] * depth + [outputs]
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def test_mlp_is_sized_on_the_meta_device_and_pruned_through_the_public_hook(tmp_path):
    # hidden=64 (4,866 params) is over the example's 2,000; epochs=3 trials report a loss > -1
    # at epoch 2, which the pruner stops; epochs=1 trials complete
    r = run_foreign_app(
        tmp_path,
        "mlp",
        OPTUNA,
        "model.hidden=choice(4,64)",
        "epochs=choice(1,3)",
        "hydra.sweeper.n_trials=4",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0",
        PRUNE_FROM_EPOCH_2,
    )
    ok(r)
    assert (
        "budget 2,000 parameters (budget.max_params): each config is sized from model, on the meta device" in r.stdout
    )
    study_dir, study = the_study(tmp_path)
    done = trained(study)
    assert len(done) == 4  # exactly n_trials trained
    infeasible = [t for t in study.trials if t not in done]
    assert infeasible and all(t.params["model.hidden"] == 64 for t in infeasible)
    for t in infeasible:  # never trained: no folder, told as over budget with its exact count
        assert t.state == TrialState.PRUNED and t.user_attrs["status"] == "over_budget"
        assert t.user_attrs["params"] == mlp_params(64) and t.constraints["params"] > 0
        assert not (study_dir / str(t.number)).exists()
    assert {t.params["epochs"] for t in done} == {1, 3}
    for t in done:
        assert t.params["model.hidden"] == 4 and t.user_attrs["params"] == mlp_params(4)
        assert (study_dir / str(t.number) / ".hydra").is_dir()
        if t.params["epochs"] == 3:
            assert t.state == TrialState.PRUNED and sorted(t.intermediate_values) == [1, 2]
            assert "epoch 3:" not in r.stdout  # the jobs ran in this process (basic launcher)
        else:
            assert t.state == TrialState.COMPLETE and list(t.intermediate_values) == [1]


def test_mlp_ablation_never_runs_an_over_budget_variant(tmp_path):
    r = run_foreign_app(tmp_path, "mlp", ABLATION, "model.hidden=8,64", "epochs=1")
    ok(r)
    log = r.stdout + r.stderr
    assert f"model.hidden=64: {mlp_params(64):,} params > budget 2,000: not run" in log
    jobs = run_folders(ablation_dir(tmp_path))
    assert [job_config(d)["model"]["hidden"] for d in jobs] == [16, 8]  # baseline, then hidden=8
    records = [load_metrics(d) for d in jobs]  # the variant's sizing, in its record
    assert [(m["params"], m["max_params"]) for m in records] == [(mlp_params(16), 2000), (mlp_params(8), 2000)]
    assert all(m["status"] == "completed" and m["objective_name"] == "objective" for m in records)


def test_a_model_that_cannot_be_sized_is_one_line_before_anything_trains(tmp_path):
    r = run_foreign_app(tmp_path, "mlp", OPTUNA, "model._target_=nowhere.MLP", "lr=interval(0.001,0.1)")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "cannot size the config for the budget" in x]
    assert "nowhere.MLP" in line and "hydra.sweeper.budget.size_fn" in line
    (study_dir,) = study_dirs(tmp_path)
    assert run_folders(study_dir) == []


def test_a_sizing_function_named_in_the_settings_is_used(tmp_path):
    (tmp_path / "sizes.py").write_text("def params(cfg):\n    return cfg.model.hidden * 100\n")
    r = run_foreign_app(
        tmp_path,
        "mlp",
        OPTUNA,
        "model.hidden=choice(4,30)",  # 400 and 3,000 by this function; 66 and 1,292 really
        "epochs=1",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.budget.size_fn=sizes.params",
    )
    ok(r)
    study_dir, study = the_study(tmp_path)
    assert all(t.params["model.hidden"] == 4 for t in trained(study))
    assert {t.user_attrs["params"] for t in study.trials} <= {400, 3000}


# ------------------------------------------------------------------------ an app with no budget
def test_nobudget_app_with_its_own_metrics_json(tmp_path):
    r = run_foreign_app(tmp_path, "nobudget", OPTUNA, "model.width=int(interval(8,40))", "hydra.sweeper.n_trials=3")
    ok(r)
    assert "configs are not sized" in r.stdout
    study_dir, study = the_study(tmp_path)
    done = trained(study)  # its metrics.json says status "done": not ours, so its return value counts
    assert len(done) == 3 and all(t.state == TrialState.COMPLETE for t in done)
    for t in done:
        assert t.value == pytest.approx(abs(t.params["model.width"] - 24) / 8 + 0.1)
        assert "params" not in t.user_attrs  # nothing sized


def test_nobudget_ablation_seeds_repeats_through_its_seed_key(tmp_path):
    r = run_foreign_app(tmp_path, "nobudget", ABLATION, "model.width=16,32", "hydra.sweeper.repeats=2")
    ok(r)
    jobs = run_folders(ablation_dir(tmp_path))
    assert [(job_config(d)["model"]["width"], job_config(d)["seed"]) for d in jobs] == [
        (16, 7),
        (32, 7),
        (16, 8),
        (32, 8),
    ]
    for d in jobs:  # its own metrics.json is not ours: kept as it is, the sweeper's record beside it
        assert json.loads((d / "metrics.json").read_text())["status"] == "done"
        assert load_metrics(d)["objective"] == pytest.approx(abs(job_config(d)["model"]["width"] - 24) / 8 + 0.1)


# ---------------------------------------------------------- the standard plugin's meanings
def test_a_nan_result_fails_its_trial_but_not_the_sweep(tmp_path):
    r = run_foreign_app(
        tmp_path,
        "xy",
        OPTUNA,
        "hydra/sweeper/sampler=grid",
        "nan=choice(false,true)",
        "x=choice(0,1)",
        "hydra.sweeper.n_trials=4",
    )
    ok(r)
    _, study = the_study(tmp_path)
    states = sorted((t.params["nan"], t.state.name) for t in trained(study))
    assert states == [(False, "COMPLETE"), (False, "COMPLETE"), (True, "FAIL"), (True, "FAIL")]


def test_max_failure_rate_is_per_batch_and_the_hint_names_the_jobs_own_log(tmp_path):
    # the plugin's default 0.0: one failure in a batch of n_jobs=2 ends the sweep after that batch
    r = run_foreign_app(
        tmp_path, "xy", OPTUNA, "hydra/sweeper/sampler=grid", "fail=choice(false,true)", "x=choice(0,1)"
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = [x for x in r.stderr.splitlines() if "max_failure_rate=0.0" in x]
    assert "of the 2 trials of a batch failed" in line and "RuntimeError: asked to fail" in line
    log = line.rsplit("(see ", 1)[1].rstrip(")")
    assert log.endswith("app.log") and "asked to fail" in open(log).read()


def test_an_empty_search_space_runs_n_trials_of_the_fixed_config(tmp_path):
    r = run_foreign_app(tmp_path, "xy", OPTUNA, "x=3", "hydra.sweeper.n_trials=3")
    ok(r)
    _, study = the_study(tmp_path)
    assert [t.value for t in trained(study)] == [4.25] * 3


def test_a_study_reused_under_another_space_is_refused_in_one_line(tmp_path):
    name = ["hydra.sweeper.study_name=fixed"]
    ok(run_foreign_app(tmp_path, "xy", OPTUNA, "x=interval(-2,2)", "hydra.sweeper.n_trials=2", *name))
    r = run_foreign_app(tmp_path, "xy", OPTUNA, "x=interval(-3,3)", "hydra.sweeper.n_trials=4", *name)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("study 'fixed' in sqlite:///")
    assert "(changed: x)" in r.stderr and "hydra.sweeper.allow_space_change=true" in r.stderr
    _, study = the_study(tmp_path)
    assert len(study.trials) == 2  # nothing ran
    r = run_foreign_app(
        tmp_path,
        "xy",
        OPTUNA,
        "x=interval(-3,3)",
        "hydra.sweeper.n_trials=4",
        *name,
        "hydra.sweeper.allow_space_change=true",
    )
    ok(r)
    _, study = the_study(tmp_path)
    assert len(trained(study)) == 4


def test_the_registered_schema_has_the_plugins_defaults():
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf

    from budgetsweep.sweeper.config import BudgetOptunaSweeperConf

    plugin, ours = OmegaConf.structured(OptunaSweeperConf), OmegaConf.structured(BudgetOptunaSweeperConf)
    for key in plugin:
        if key not in ("_target_", "sampler", "defaults"):  # sampler: MISSING in both, tpe by the defaults list
            assert ours[key] == plugin[key], key
    assert ours.direction.name == "minimize" and ours.max_failure_rate == 0.0 and ours.n_jobs == 2
    assert {"sampler": "tpe"} in ours.defaults and {"pruner": None} in ours.defaults  # the pruner slot: empty


@pytest.mark.parametrize(
    "choice, options, expected",
    [
        ("median", ["hydra.sweeper.pruner.n_startup_trials=2"], {"n_startup_trials": 2, "n_warmup_steps": 0}),
        ("hyperband", ["hydra.sweeper.pruner.max_resource=9"], {"min_resource": 1, "max_resource": 9}),
        ("none", [], {}),
        ("none", ["++hydra.sweeper.pruner={_target_:optuna.pruners.ThresholdPruner,upper:-1.0}"], {"upper": -1.0}),
    ],
)
def test_an_app_without_pruner_configs_selects_a_registered_pruner(choice, options, expected):
    """hydra/sweeper/pruner=median|hyperband|none needs no YAML file of the app's (xy has none):
    the registered node, with the options given, reaches the sweeper's settings as Hydra creates it."""
    from hydra import compose, initialize_config_dir

    from budgetsweep.sweeper.optuna_sweeper import BudgetOptunaSweeper

    from helpers import APPS

    assert not list(APPS["xy"].rglob("*pruner*"))
    with initialize_config_dir(config_dir=str(APPS["xy"])):
        overrides = [OPTUNA, f"hydra/sweeper/pruner={choice}", *options]
        node = compose("config", overrides=overrides, return_hydra_config=True).hydra.sweeper
    sweeper = BudgetOptunaSweeper(**{k: v for k, v in node.items() if k != "_target_"})  # as Hydra creates it
    name = {"median": "MedianPruner", "hyperband": "HyperbandPruner", "none": "NopPruner"}[choice]
    name = "ThresholdPruner" if "upper" in expected else name
    assert sweeper.settings.pruner_cfg["_target_"] == f"optuna.pruners.{name}"
    assert {k: sweeper.settings.pruner_cfg[k] for k in expected} == expected
    assert type(sweeper.settings.pruner) is getattr(optuna.pruners, name)  # built, as each job builds it


def test_both_sweepers_are_registered_by_name():
    from hydra.core.config_store import ConfigStore

    import budgetsweep.sweeper.ablation_sweeper  # noqa: F401  (Hydra imports the plugin modules at start)
    import budgetsweep.sweeper.optuna_sweeper  # noqa: F401

    repo = ConfigStore.instance().repo["hydra"]["sweeper"]
    assert {"budget_optuna.yaml", "ablation.yaml"} <= repo.keys()
    assert repo["optuna.yaml"].provider != "budgetsweep"  # the standard plugin's name is left to it
