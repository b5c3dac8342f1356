"""The Optuna sweeper's pieces without training: search-space parsing, study names, a trial's
overrides, storage URLs and passwords, settings checks, the outcome of a job, and the job-side
reporter against a real SQLite study."""

from __future__ import annotations

import logging

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from budgetsweep.contract import storage as st
from budgetsweep.sweeper._compat import OPTUNA_RDB_LOGGER
from budgetsweep.sweeper.errors import SweeperError
from budgetsweep.sweeper.optuna_storage import make_storage
from budgetsweep.sweeper.settings import parse_settings
from budgetsweep.sweeper.space import (
    default_study_name,
    grid_choices,
    params_to_overrides,
    parse_space,
    trial_overrides,
)
from budgetsweep.sweeper.trial_reporter import TrialReporter, build_pruner, epoch_reporter

from helpers import sweeper_settings

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    "line, key, expected",
    [
        ("model.N=choice(2,3,4)", "model.N", CategoricalDistribution([2, 3, 4])),
        ("model.B=range(1,4)", "model.B", IntDistribution(1, 3)),
        ("model.C=int(interval(16,128))", "model.C", IntDistribution(16, 128)),
        ("optimizer.lr=tag(log,interval(1e-4,1e-1))", "optimizer.lr", FloatDistribution(1e-4, 1e-1, log=True)),
        ("optimizer=choice(adam,sgd)", "optimizer", CategoricalDistribution(["adam", "sgd"])),
    ],
)
def test_parse_space_uses_the_plugin_grammar(line, key, expected):
    assert parse_space([line]).distributions == {key: expected}


def test_a_later_override_replaces_an_earlier_one_and_a_plain_value_fixes_the_key():
    yaml = params_to_overrides(OmegaConf.create({"model.C": "int(interval(16,128))", "model.N": "choice(2,3)"}))
    space = parse_space([*yaml, "model.C=int(interval(8,32))", "model.N=3", "~model.P"])
    assert space.distributions == {"model.C": IntDistribution(8, 32)}
    assert space.fixed == {"model.N": "3"} and space.deletions == ["~model.P"]


def test_bad_search_space_entries_are_one_line_errors():
    with pytest.raises(SweeperError, match=r"search space: cannot parse 'model.C=interval\(8'"):
        parse_space(["model.C=interval(8"])
    with pytest.raises(SweeperError, match="hydra.sweeper.params: expected a mapping"):
        params_to_overrides(OmegaConf.create(["model.C=1"]))


def test_default_study_name_follows_the_search_space_only():
    a = parse_space(["model.C=int(interval(8,32))", "experiment=quick"])
    same = parse_space(["experiment=quick", "model.C=int(interval(8,32))"])
    other = parse_space(["model.C=int(interval(8,33))", "experiment=quick"])
    assert default_study_name(a, "quick") == default_study_name(same, "quick")
    assert default_study_name(a, "quick").startswith("quick-")
    assert default_study_name(a, None) != default_study_name(other, None)


def test_passwords_are_masked_and_come_back_from_the_environment(monkeypatch):
    masked, password = st.split_password("postgresql://alice:s3cr%40t@db.example:5432/sweeps")
    assert masked == "postgresql://alice:***@db.example:5432/sweeps" and password == "s3cr@t"
    assert st.split_password("sqlite:////tmp/study.db") == ("sqlite:////tmp/study.db", None)
    assert st.split_password(masked) == (masked, None)
    monkeypatch.setenv(st.PASSWORD_ENV, "s3cr@t")
    driver = st.connect_url(masked).split("://")[0]  # psycopg 3, or psycopg2 where only that is installed
    assert st.connect_url(masked) == f"{driver}://alice:s3cr%40t@db.example:5432/sweeps"
    line = "hydra.sweeper.storage=postgresql://alice:s3cr%40t@db/x"
    assert st.scrub(line, "s3cr@t") == "hydra.sweeper.storage=postgresql://alice:***@db/x"


def test_without_the_password_variable_libpq_finds_the_password(monkeypatch):
    monkeypatch.delenv(st.PASSWORD_ENV, raising=False)
    url = st.connect_url("postgresql://alice:***@db.example:5432/sweeps")
    assert url.split("://")[1] == "alice@db.example:5432/sweeps"  # libpq then reads PGPASSWORD / ~/.pgpass


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_trials": 0}, "hydra.sweeper.n_trials: expected a positive int, got 0"),
        ({"max_failure_rate": 1.5}, "hydra.sweeper.max_failure_rate: expected a number in [0, 1], got 1.5"),
        ({"direction": ["maximize", "up"]}, "hydra.sweeper.direction: expected minimize or maximize"),
        (
            {"direction": ["maximize", "minimize"], "pruner": {"_target_": "optuna.pruners.MedianPruner"}},
            "hydra.sweeper.pruner: Optuna prunes single-objective studies only",
        ),
        (
            {"direction": ["maximize", "minimize"], "objectives": ["val_acc"]},
            "hydra.sweeper.objectives: 1 objective(s) ['val_acc'] but 2 direction(s)",
        ),
        ({"objectives": "val_acc"}, "hydra.sweeper.objectives: expected a list of metrics.json keys"),
        ({"timeout": 0}, "hydra.sweeper.timeout: expected a positive number of seconds or null, got 0"),
        ({"enqueue": {"model.C": 68}}, "hydra.sweeper.enqueue: expected a list of {key: value} mappings"),
        (
            {"direction": ["maximize", "minimize"], "sampler": {"_target_": "optuna.samplers.CmaEsSampler"}},
            "hydra.sweeper.sampler: CmaEsSampler optimizes one objective",
        ),
        ({"pruner": {"_target_": "optuna.pruners.NoSuchPruner"}}, "hydra.sweeper.pruner:"),
        ({"pruner": {"_target_": "os.getcwd"}}, "hydra.sweeper.pruner:"),  # outside optuna.pruners.*
        ({"sampler": {"_target_": "optuna.samplers.TPESampler", "n_startup": 3}}, "hydra.sweeper.sampler:"),
        ({"heartbeat": {"interval": 0, "grace_period": 30}}, "hydra.sweeper.heartbeat.interval"),
    ],
)
def test_bad_settings_are_one_line_errors(changes, message):
    with pytest.raises(SweeperError) as info:
        parse_settings(sweeper_settings(**changes))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_plugin_class_checks_its_settings_when_hydra_creates_it():
    from budgetsweep.sweeper.optuna_sweeper import BudgetOptunaSweeper

    with pytest.raises(SweeperError, match="hydra.sweeper.n_jobs: expected a positive int, got 0"):
        BudgetOptunaSweeper(**sweeper_settings(n_jobs=0))
    with pytest.raises(SweeperError, match="hydra.sweeper.custom_search_space: "):
        BudgetOptunaSweeper(**sweeper_settings(custom_search_space="no_such_module.space"))
    assert BudgetOptunaSweeper(**sweeper_settings()).settings.max_suggestions == 80  # 20 x n_trials


def test_grid_sampler_choices_are_built_from_discrete_distributions():
    settings = parse_settings(sweeper_settings(sampler={"_target_": "optuna.samplers.GridSampler", "_partial_": True}))
    assert settings.is_grid and not parse_settings(sweeper_settings()).is_grid
    with pytest.raises(SweeperError, match="optimizer.lr is continuous"):
        grid_choices(parse_space(["optimizer.lr=interval(0.1,0.2)"]))
    grid = grid_choices(parse_space(["seed=range(0,6,2)", "epochs=choice(1,2)", "lr=range(0.1,0.4,0.1)"]))
    assert grid == {"seed": [0, 2, 4], "epochs": [1, 2], "lr": [0.1, 0.2, 0.3]}
    assert isinstance(settings.sampler(grid), optuna.samplers.GridSampler)


def _reads_as(overrides):
    """What Hydra's parser makes of each override: key -> value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    assert not any(o.is_sweep_override() for o in parsed), overrides
    return {o.key_or_group: o.value() for o in parsed if not o.is_delete()}


def test_a_trials_overrides_read_back_as_its_parameters():
    space = parse_space(
        [
            "a=choice('c,d','1',plain,'x y')",
            "n=range(1,4)",
            "lr=tag(log,interval(1e-4,1e-1))",
            "z=choice([1,2],[3])",
            "b=choice(true,false)",
            "fixed='hello world'",
            "~gone",
        ]
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask(fixed_distributions=space.distributions)
        overrides = trial_overrides(trial, space)
        assert overrides[-1] == "~gone" and "fixed='hello world'" in overrides
        lists = {"[1,2]": [1, 2], "[3]": [3]}  # the plugin's parser keeps a list choice as its text
        assert _reads_as(overrides) == {**trial.params, "z": lists[trial.params["z"]], "fixed": "hello world"}
        assert trial.user_attrs == {"fixed": "'hello world'"}  # fixed values recorded, as the plugin does


def add_width(cfg, trial):
    trial.suggest_int("model.C", 8, 16)


def test_a_custom_search_space_adds_parameters_and_may_not_overlap_fixed_keys():
    space = parse_space(["seed=range(0,3)"])
    study = optuna.create_study()
    trial = study.ask(fixed_distributions=space.distributions)
    overrides = trial_overrides(trial, space, add_width, None)
    assert set(_reads_as(overrides)) == {"seed", "model.C"} and 8 <= trial.params["model.C"] <= 16
    fixed = parse_space(["seed=range(0,3)", "model.C=12"])
    with pytest.raises(SweeperError, match="model.C both fixed and searched"):
        trial_overrides(study.ask(fixed_distributions=fixed.distributions), fixed, add_width, None)


def _study(tmp_path, values_of_first_trial):
    url = st.sqlite_url(tmp_path / "study.db")
    study = optuna.create_study(study_name="s", storage=make_storage(url), direction="maximize")
    first = study.ask()
    for step, value in enumerate(values_of_first_trial, 1):
        first.report(value, step)
    study.tell(first, values_of_first_trial[-1])
    return url, study, study.ask()


def test_reporter_rebuilds_the_configured_pruner(tmp_path):
    url, study, trial = _study(tmp_path, [0.9, 0.95])
    median = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0}
    report = TrialReporter(url, "s", trial.number, median)
    assert report(1, {"val_acc": 0.1}) is True  # below the median of the finished trial
    assert study.trials[trial.number].intermediate_values == {1: 0.1}
    # what the job would get without rebuilding it: load_study's default MedianPruner(n_startup_trials=5)
    loaded = optuna.load_study(study_name="s", storage=url)
    assert optuna.trial.Trial(loaded, len(study.trials)).should_prune() is False  # ids count from 1


def test_the_last_step_is_reported_but_never_pruned(tmp_path):
    # a stop after the last epoch saves nothing: the run completes and keeps its result
    url, study, trial = _study(tmp_path, [0.9, 0.95])
    median = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1, "n_warmup_steps": 0}
    report = TrialReporter(url, "s", trial.number, median)
    report.last_step = 2
    assert report(2, {"val_acc": 0.1}) is False  # below the median, but the last step
    assert study.trials[trial.number].intermediate_values == {2: 0.1}
    assert report(1, {"val_acc": 0.1}) is True  # an earlier step still stops


def test_reporter_without_pruner_reports_and_never_stops(tmp_path):
    url, study, trial = _study(tmp_path, [0.9])
    report = TrialReporter(url, "s", trial.number, None)
    assert [report(e, {"val_acc": 0.01}) for e in (1, 2)] == [False, False]
    assert study.trials[trial.number].intermediate_values == {1: 0.01, 2: 0.01}


def test_reporter_that_cannot_reach_its_study_warns_once_and_trains_on(tmp_path, caplog):
    report = TrialReporter(st.sqlite_url(tmp_path / "none" / "x.db"), "s", 0, None)
    with caplog.at_level(logging.WARNING, logger="budgetsweep.sweeper.trial_reporter"):
        assert [report(e, {"val_acc": 0.5}) for e in (1, 2)] == [False, False]
    assert len(caplog.records) == 1 and "training on without pruning" in caplog.records[0].message


@pytest.mark.parametrize(
    "driver_text, logged",
    [
        ("server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally", False),
        ("database or disk is full", True),  # not a lost connection: Optuna's warning stays
    ],
)
def test_optunas_multiline_warning_for_a_lost_connection_gives_way_to_the_retrys_one_line(
    tmp_path, monkeypatch, driver_text, logged
):
    """Optuna's trials query logs any OperationalError in full (several lines on stderr) before
    it tries a plainer query; a lost connection is the retry's to report, in one line."""
    import sqlalchemy.exc as sa
    import sqlalchemy.orm

    storage = make_storage(st.sqlite_url(tmp_path / "s.db"), retry_for=5)
    study = optuna.create_study(storage=storage, study_name="lost")
    study.enqueue_trial({})
    real_all, failures = sqlalchemy.orm.Query.all, [sa.OperationalError("SELECT", {}, Exception(driver_text))]

    def all_once_failing(query):
        if failures:
            raise failures.pop()
        return real_all(query)

    monkeypatch.setattr(sqlalchemy.orm.Query, "all", all_once_failing)
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    optuna_rdb = logging.getLogger(OPTUNA_RDB_LOGGER)
    optuna_rdb.addHandler(handler)
    try:
        assert len(storage.get_all_trials(study._study_id)) == 1  # Optuna's plainer query answered
    finally:
        optuna_rdb.removeHandler(handler)
    assert not failures
    assert [driver_text.splitlines()[0] in r.getMessage() for r in seen] == ([True] if logged else [])


def test_epoch_reporter_is_none_outside_an_optuna_trial():
    cfg = OmegaConf.create({"sweep": {"trial": None, "study": None}, "objective": "val_acc"})
    assert epoch_reporter(cfg) is None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_build_pruner_defaults_to_never_pruning():
    assert isinstance(build_pruner(None), optuna.pruners.NopPruner)
    pruner = build_pruner(
        {
            "_target_": "optuna.pruners.PatientPruner",
            "patience": 1,
            "wrapped_pruner": {"_target_": "optuna.pruners.MedianPruner"},
        }
    )
    assert isinstance(pruner, optuna.pruners.PatientPruner)


def _done(result=None, error=None):
    import concurrent.futures as cf

    future = cf.Future()
    future.set_exception(error) if error else future.set_result(result)
    return future


def _job(status, value):
    from hydra.core.utils import JobReturn

    ret = JobReturn(status=status)
    ret.return_value = value
    return ret


def test_a_jobs_outcome_comes_from_its_metrics_else_from_what_hydra_returned(tmp_path):
    from hydra.core.utils import JobStatus
    from optuna.trial import TrialState

    from budgetsweep.contract import new_metrics, write_metrics
    from budgetsweep.sweeper.launch import outcome

    write_metrics(tmp_path / "0", new_metrics(status="pruned", epochs=2, objective=0.4))
    pruned = outcome(_done(_job(JobStatus.COMPLETED, 0.4)), tmp_path / "0")
    assert (pruned.status, pruned.value, pruned.epochs, pruned.state) == ("pruned", None, 2, TrialState.PRUNED)
    write_metrics(tmp_path / "1", new_metrics(status="completed", objective=0.75))
    assert outcome(_done(_job(JobStatus.COMPLETED, 0.1)), tmp_path / "1").value == 0.75  # the file wins
    nan = outcome(_done(_job(JobStatus.COMPLETED, float("nan"))), tmp_path / "2")  # no metrics.json
    assert (nan.status, nan.error, nan.state) == ("failed", "no objective value: nan", TrialState.FAIL)
    raised = outcome(_done(_job(JobStatus.FAILED, ValueError("bad lr\nMore detail"))), tmp_path / "3")
    assert (raised.status, raised.error) == ("failed", "ValueError: bad lr")
    lost = outcome(_done(error=RuntimeError("worker killed")), tmp_path / "4")
    assert (lost.status, lost.error) == ("failed", "RuntimeError: worker killed")
