"""Every private name of Optuna, Hydra, hydra-optuna-sweeper and joblib that the Optuna sweeper uses, in one place.

Checked against optuna 5.1.0, hydra-core 1.4.0rc3, hydra-optuna-sweeper 1.4.0rc3 and joblib
1.6.0 (pyproject bounds each below its next major or minor release). When one of them changes,
this file is the one to read, and `PRIVATE_NAMES` the list that tests/test_compat.py checks
against the installed packages; everything else in `sweeper/` uses public names
(`Study.ask(fixed_distributions=...)`, `Trial.set_constraint`, `RDBStorage.record_heartbeat`,
`get_study_id_from_name`, `get_trial_id_from_study_id_trial_number`, `set_trial_state_values`,
`Plugins.instantiate_launcher`, `ConfigLoader.load_sweep_config`, ...).

What is here, and why there is no public way:

- `distribution_from_override`: the plugin's parser of its override grammar (`choice`, `range`,
  `interval`, `tag(log, ...)`) into Optuna distributions. Reusing it keeps our grammar the
  plugin's exactly, but it lives in the plugin's private module `_impl`.
- `stale_trial_ids`: RUNNING trials whose heartbeat is older than the grace period, by the
  database's own clock. Optuna's only public route, `optuna.storages.fail_stale_trials`, marks
  them FAIL at once, and a finished trial cannot go back to the queue (see `budgetsweep.sweeper.heartbeat`).
- `PRIVATE_STORAGE_CALLS`: the RDBStorage methods that Optuna's own cache (`_CachedStorage`, which
  `Study` puts around every RDBStorage) calls besides the public API, and the stale-trial query:
  `budgetsweep.sweeper.optuna_storage` retries them too when the database connection is lost.
- `OPTUNA_RDB_LOGGER`: the logger of Optuna's RDBStorage module (`optuna.logging.get_logger(__name__)`
  in a private module): `budgetsweep.sweeper.optuna_storage` filters its warning about a failed trials query when
  the failure is a lost connection.
- `job_error`: the exception a failed Hydra job raised. The public `JobReturn.return_value`
  re-raises it and first writes "Error executing job ..." to stderr; we want it as a value.
- `is_basic_launcher`: Hydra's default launcher runs jobs one at a time in this process; its
  class lives in `hydra._internal`.
- `kill_joblib_workers`: Hydra's joblib launcher runs jobs in joblib's reusable pool of loky
  worker processes, which outlives the launch; joblib has no documented call that ends those
  workers, only its bundled copy of loky (`joblib.externals`, not part of joblib's API) does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher

PLUGIN_IMPL = "hydra_plugins.hydra_optuna_sweeper._impl"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
JOBLIB_LOKY = "joblib.externals.loky"  # joblib's bundled loky, home of its reusable worker pool
OPTUNA_RDB_LOGGER = "optuna.storages._rdb.storage"
JOB_RETURN_VALUE = "_return_value"  # the field of hydra.core.utils.JobReturn
# The cache Study puts around an RDBStorage: the private calls it makes are PRIVATE_STORAGE_CALLS.
OPTUNA_CACHED_STORAGE = "optuna.storages._cached_storage._CachedStorage"
PRIVATE_STORAGE_CALLS = (
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
    "_get_trials",
    "_get_stale_trial_ids",
)


def _split(dotted: str) -> tuple[str, str]:
    module, _, name = dotted.rpartition(".")
    return module, name


# Every private name above as (module, attribute path in it). OPTUNA_RDB_LOGGER is a module name
# (its logger is named after it): the pair says that module still holds RDBStorage.
PRIVATE_NAMES: tuple[tuple[str, str], ...] = (
    (PLUGIN_IMPL, "create_optuna_distribution_from_override"),
    _split(BASIC_LAUNCHER),
    (OPTUNA_RDB_LOGGER, "RDBStorage"),
    _split(OPTUNA_CACHED_STORAGE),
    *(("optuna.storages", f"RDBStorage.{name}") for name in PRIVATE_STORAGE_CALLS),
    ("hydra.core.utils", f"JobReturn.{JOB_RETURN_VALUE}"),
    (JOBLIB_LOKY, "get_reusable_executor"),
)


def distribution_from_override(override: Override) -> Any:
    """An Optuna distribution for a sweep override, the value text for a plain one."""
    return importlib.import_module(PLUGIN_IMPL).create_optuna_distribution_from_override(override)


def stale_trial_ids(storage: Any, study_id: int) -> list[int]:
    """Ids of the study's RUNNING trials whose last heartbeat is older than `storage.grace_period`
    (an RDBStorage with `heartbeat_interval` set, or the sweeper's retrying storage around one)."""
    return list(storage._get_stale_trial_ids(study_id))


def job_error(ret: JobReturn) -> BaseException | None:
    """The exception of a FAILED Hydra JobReturn (None otherwise), without printing anything."""
    value = getattr(ret, JOB_RETURN_VALUE, None)
    return value if isinstance(value, BaseException) else None


def is_basic_launcher(launcher: Launcher) -> bool:
    cls = type(launcher)
    return f"{cls.__module__}.{cls.__qualname__}" == BASIC_LAUNCHER


def kill_joblib_workers() -> None:
    """Kill joblib's reusable worker processes now, without waiting for the jobs they run."""
    executor = importlib.import_module(JOBLIB_LOKY).get_reusable_executor(reuse=True)
    executor.shutdown(wait=False, kill_workers=True)
