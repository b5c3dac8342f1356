"""Every private name that `budgetsweep.sweeper._compat` relies on still exists in the installed
Optuna, Hydra and hydra-optuna-sweeper, and still does what the sweeper uses it for. The names
come from `_compat` itself, so a new one is checked as soon as it is listed there."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import re
import time
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from budgetsweep.sweeper import _compat

# hydra-ray-launcher's names where that optional extra is installed (tests/test_ray_launcher.py)
RAY = importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None


@pytest.mark.parametrize(
    "module, attribute", _compat.PRIVATE_NAMES + (_compat.RAY_PRIVATE_NAMES if RAY else ()), ids=lambda x: x
)
def test_private_name_exists(module: str, attribute: str) -> None:
    found = importlib.import_module(module)
    for part in attribute.split("."):
        assert hasattr(found, part), f"{module}.{attribute}: {part!r} is gone (re-read sweeper/_compat.py)"
        found = getattr(found, part)


def test_storage_calls_cover_optunas_cache() -> None:
    """The retrying storage retries PRIVATE_STORAGE_CALLS besides the public API: every private
    RDBStorage method that Optuna's cache calls must be one of them, or a lost connection in it
    goes unretried."""
    module, _, name = _compat.OPTUNA_CACHED_STORAGE.rpartition(".")
    source = inspect.getsource(getattr(importlib.import_module(module), name))
    called = set(re.findall(r"\._backend\.(_[a-z]\w*)\(", source))
    assert called, f"no private backend calls found in {_compat.OPTUNA_CACHED_STORAGE}: re-read it"
    assert called <= set(_compat.PRIVATE_STORAGE_CALLS), sorted(called - set(_compat.PRIVATE_STORAGE_CALLS))


@pytest.mark.parametrize(
    "line, expected",
    [
        ("model.N=choice(2,3)", CategoricalDistribution([2, 3])),
        ("model.B=range(1,4)", IntDistribution(1, 3)),
        ("optimizer.lr=tag(log,interval(1e-4,1e-1))", FloatDistribution(1e-4, 1e-1, log=True)),
        ("seed=3", "3"),
    ],
)
def test_distribution_from_override(line: str, expected: object) -> None:
    (override,) = OverridesParser.create().parse_overrides([line])
    assert _compat.distribution_from_override(override) == expected


def test_rdb_logger_is_the_one_rdbstorage_logs_to(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(_compat.OPTUNA_RDB_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # other tests quieten Optuna's root logger
    try:
        RDBStorage(f"sqlite:///{tmp_path / 'study.db'}").create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.name for r in records] == [_compat.OPTUNA_RDB_LOGGER], [r.getMessage() for r in records]


@pytest.mark.filterwarnings("ignore:Argument ``heartbeat_interval``", "ignore:Heartbeat of storage")
def test_stale_trial_ids(tmp_path: Path) -> None:
    storage = RDBStorage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="s")
    study_id = storage.get_study_id_from_name("s")
    study.ask()
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, 0)
    assert storage.get_trial(trial_id).state == TrialState.RUNNING
    storage.record_heartbeat(trial_id)
    assert _compat.stale_trial_ids(storage, study_id) == []
    time.sleep(2.2)  # past the 1 s grace period, by the database's clock
    assert _compat.stale_trial_ids(storage, study_id) == [trial_id]


def test_job_error_without_printing(capsys: pytest.CaptureFixture[str]) -> None:
    error = ValueError("bad lr")
    assert _compat.job_error(JobReturn(status=JobStatus.FAILED, _return_value=error)) is error
    assert _compat.job_error(JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)) is None
    assert capsys.readouterr() == ("", "")


def test_is_basic_launcher() -> None:
    module, _, name = _compat.BASIC_LAUNCHER.rpartition(".")
    launcher = getattr(importlib.import_module(module), name)()
    assert _compat.is_basic_launcher(launcher)
    assert not _compat.is_basic_launcher(object())  # type: ignore[arg-type]
