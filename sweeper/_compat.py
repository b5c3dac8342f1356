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
- `RDB_SESSIONS`, `RDB_SESSION_SCOPE`: RDBStorage's session factory (an attribute its `__init__`
  sets) and the helper each of its calls opens, commits and closes a session with. Optuna has no
  call that writes several things at once; `SweepStorage.batched` (`budgetsweep.sweeper.optuna_storage`)
  replaces the factory with one whose sessions only flush on commit, so that a trial's writes are
  one SQLite transaction. tests/test_storage_batches.py counts the commits.
- `RDB_TABLES`, `CONSTRAINTS_KEY`, `trial_parts`: writing several attributes of a trial at once
  (`budgetsweep.sweeper.trial_attrs`). Optuna writes one attribute a call, and each call first
  reads the trial (`Trial.set_constraint` even reads the whole trial): an over-budget suggestion
  spent a fifth of its time on its ten attributes. `SweepStorage.set_trial_attrs` writes them
  with one read and one statement per table, on RDBStorage's tables (`RDB_TABLES`); a constraint
  is the system attribute `constraints:<name>` (`CONSTRAINTS_KEY`), what `Trial.set_constraint`
  writes and the samplers read. The `Trial` keeps the trial as this process last wrote it (its
  attributes `Trial.user_attrs` answers from) and its id, both set in its `__init__`; Optuna's
  cache around an RDBStorage holds it as `_backend`. tests/test_trial_attrs.py checks that what
  is written this way reads back through Optuna's own calls.
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
  Its public getter makes a pool when there is none, so whether one exists is read from the
  module's private global (`LOKY_EXECUTOR`).
- `joblib_workers_ignore_ctrl_c`: a terminal's Ctrl-C reaches every process of its group, loky's
  workers too, which print a traceback each (one starting up, in the middle of an import, even
  several) while the sweeper stops them anyway. joblib has no worker initializer that Hydra's
  launcher passes on, and one would run too late for a worker still starting: loky's spawn
  function (`LOKY_FORK_EXEC`) is wrapped so that each worker starts with SIGINT blocked.
- `submitit_controllers_quiet`: submitit's local executor starts a controller process per job,
  its stderr the terminal's; on Ctrl-C it ends its tasks and prints a KeyboardInterrupt
  traceback there. Its tasks must keep getting the terminal's SIGINT (nothing else stops them:
  they ignore SIGTERM) and inherit whatever the controller starts with, so its stderr goes to a
  file in submitit's folder instead: the `subprocess` that module (`SUBMITIT_LOCAL`) starts it with
  is wrapped.
- `submitit_stop_waiting`: a submitit job that ended without its result file (a task ended by
  Ctrl-C) is waited on for 15 s more in case a slow filesystem shows the file late (the class
  attribute `SUBMITIT_RESULTS_WAIT`); a sweep that stops its jobs sets it to 0, or its exit waits.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher

PLUGIN_IMPL = "hydra_plugins.hydra_optuna_sweeper._impl"
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
JOBLIB_LOKY = "joblib.externals.loky"  # joblib's bundled loky, home of its reusable worker pool
LOKY_FORK_EXEC = "joblib.externals.loky.backend.fork_exec.fork_exec"  # starts each worker (POSIX)
SUBMITIT_LOCAL = "submitit.local.local"  # start_controller: subprocess.Popen([python, -m, ..., folder])
CONTROLLER_ERRORS = "controller.err"  # in submitit's folder: what its controllers print
SUBMITIT_CORE = "submitit.core.core"
SUBMITIT_RESULTS_WAIT = "Job._results_timeout_s"  # in SUBMITIT_CORE: seconds, a class attribute
LOKY_EXECUTOR = "joblib.externals.loky.reusable_executor._executor"  # the pool, None before the first
OPTUNA_RDB_LOGGER = "optuna.storages._rdb.storage"
RDB_SESSIONS = "scoped_session"  # an attribute of each RDBStorage, set in its __init__
RDB_SESSION_SCOPE = f"{OPTUNA_RDB_LOGGER}._create_scoped_session"
RDB_TABLES = "optuna.storages._rdb.models"  # TrialModel, TrialUserAttributeModel, TrialSystemAttributeModel
CONSTRAINTS_KEY = "optuna.study._constrained_optimization._CONSTRAINTS_KEY"
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
    _split(RDB_SESSION_SCOPE),
    _split(OPTUNA_CACHED_STORAGE),
    *(("optuna.storages", f"RDBStorage.{name}") for name in PRIVATE_STORAGE_CALLS),
    *(
        (RDB_TABLES, table)
        for table in ("TrialModel.find_or_raise_by_id", "TrialUserAttributeModel", "TrialSystemAttributeModel")
    ),
    _split(CONSTRAINTS_KEY),
    ("hydra.core.utils", f"JobReturn.{JOB_RETURN_VALUE}"),
    (JOBLIB_LOKY, "get_reusable_executor"),
    _split(LOKY_EXECUTOR),
    _split(LOKY_FORK_EXEC),
    (SUBMITIT_LOCAL, "start_controller"),
    (SUBMITIT_LOCAL, "subprocess.Popen"),
    (SUBMITIT_CORE, SUBMITIT_RESULTS_WAIT),
)


def distribution_from_override(override: Override) -> Any:
    """An Optuna distribution for a sweep override, the value text for a plain one."""
    return importlib.import_module(PLUGIN_IMPL).create_optuna_distribution_from_override(override)


def stale_trial_ids(storage: Any, study_id: int) -> list[int]:
    """Ids of the study's RUNNING trials whose last heartbeat is older than `storage.grace_period`
    (an RDBStorage with `heartbeat_interval` set, or the sweeper's retrying storage around one)."""
    return list(storage._get_stale_trial_ids(study_id))


def trial_parts(trial: Any) -> tuple[Any, int, Any]:
    """(the trial's storage, Optuna's cache taken off; its id; the FrozenTrial it keeps, which
    `Trial.user_attrs` reads) of an `optuna.Trial`."""
    storage = trial.storage
    if _is_a(storage, OPTUNA_CACHED_STORAGE):
        storage = storage._backend
    return storage, trial._trial_id, trial._cached_frozen_trial


def rdb_session(storage: Any) -> Any:
    """RDBStorage's session scope for one call (committed as it ends, rolled back on an error)."""
    module, _, name = RDB_SESSION_SCOPE.rpartition(".")
    return getattr(importlib.import_module(module), name)(getattr(storage, RDB_SESSIONS))


def rdb_tables() -> tuple[Any, Any, Any]:
    """RDBStorage's trial, trial user attribute and trial system attribute tables (ORM models)."""
    models = importlib.import_module(RDB_TABLES)
    return models.TrialModel, models.TrialUserAttributeModel, models.TrialSystemAttributeModel


def constraint_attr(name: str) -> str:
    """The system attribute `Trial.set_constraint(name, value)` writes."""
    module, _, key = CONSTRAINTS_KEY.rpartition(".")
    return f"{getattr(importlib.import_module(module), key)}:{name}"


def job_error(ret: JobReturn) -> BaseException | None:
    """The exception of a FAILED Hydra JobReturn (None otherwise), without printing anything."""
    value = getattr(ret, JOB_RETURN_VALUE, None)
    return value if isinstance(value, BaseException) else None


def _is_a(obj: Any, dotted: str) -> bool:
    """Whether obj is an instance of exactly this class, named by its dotted path (not imported)."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}" == dotted


def is_basic_launcher(launcher: Launcher) -> bool:
    return _is_a(launcher, BASIC_LAUNCHER)


def kill_joblib_workers() -> None:
    """Kill joblib's reusable worker processes now, without waiting for the jobs they run; nothing
    when this process has not started them (nor imported joblib)."""
    module, name = _split(LOKY_EXECUTOR)
    if module not in sys.modules or getattr(sys.modules[module], name, None) is None:
        return
    executor = importlib.import_module(JOBLIB_LOKY).get_reusable_executor(reuse=True)
    executor.shutdown(wait=False, kill_workers=True)


def joblib_workers_ignore_ctrl_c() -> None:
    """Start joblib's (loky's) worker processes from now on with SIGINT blocked: Ctrl-C reaches the
    sweep's own process only, which stops the workers itself (`kill_joblib_workers`). A signal mask
    is inherited by a child and kept across exec, and blocking it in the spawning thread for the
    spawn alone delays, not loses, a Ctrl-C meant for this process. Nothing without joblib or
    POSIX signal masks; calling it again changes nothing."""
    if not hasattr(signal, "pthread_sigmask") or importlib.util.find_spec("joblib") is None:
        return
    module_name, name = _split(LOKY_FORK_EXEC)
    module = importlib.import_module(module_name)
    spawn = getattr(module, name)
    if getattr(spawn, "blocks_sigint", False):
        return

    def fork_exec(*args: Any, **kwargs: Any) -> Any:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            return spawn(*args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    fork_exec.blocks_sigint = True  # type: ignore[attr-defined]
    setattr(module, name, fork_exec)


def submitit_controllers_quiet() -> None:
    """Start submitit's local job controllers from now on with their stderr in a file of the
    submitit folder (CONTROLLER_ERRORS), not the terminal's. Nothing without submitit; calling
    it again changes nothing."""
    if importlib.util.find_spec("submitit") is None:
        return
    module = vars(importlib.import_module(SUBMITIT_LOCAL))  # its names, as a dict: typed as Any
    if isinstance(module["subprocess"], _ControllerSubprocess):
        return
    module["subprocess"] = _ControllerSubprocess(module["subprocess"])


class _ControllerSubprocess:
    """The `subprocess` module as submitit's local executor sees it: Popen of a controller (a
    command list ending in its folder) writes stderr to that folder's first part without a
    placeholder (`%j`), where every controller of the sweep appends."""

    def __init__(self, subprocess: Any) -> None:
        self._subprocess = subprocess

    def __getattr__(self, name: str) -> Any:
        return getattr(self._subprocess, name)

    def Popen(self, args: Any, **kwargs: Any) -> Any:  # noqa: N802 (the name submitit calls)
        if not isinstance(args, list) or "stderr" in kwargs:
            return self._subprocess.Popen(args, **kwargs)
        folder = Path(str(args[-1]))
        while "%" in str(folder) and folder != folder.parent:
            folder = folder.parent
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / CONTROLLER_ERRORS, "ab") as errors:  # the child keeps its own copy
            return self._subprocess.Popen(args, stderr=errors, **kwargs)


def submitit_stop_waiting() -> None:
    """submitit's jobs that end from now on without a result file fail at once, not after 15 s:
    for a sweep that is stopping its jobs. Nothing when submitit is not in use."""
    cls, attribute = SUBMITIT_RESULTS_WAIT.split(".")
    if SUBMITIT_CORE in sys.modules:
        setattr(getattr(sys.modules[SUBMITIT_CORE], cls), attribute, 0)


def launchers_quiet_on_ctrl_c(launcher: Any = None) -> None:
    """Ctrl-C prints nothing from `launcher`'s processes (joblib's, submitit's local executor's;
    any of them when None): `joblib_workers_ignore_ctrl_c`, `submitit_controllers_quiet`."""
    where = type(launcher).__module__ if launcher is not None else ""
    if launcher is None or where.startswith("hydra_plugins.hydra_joblib_launcher"):
        joblib_workers_ignore_ctrl_c()
    if launcher is None or where.startswith("hydra_plugins.hydra_submitit_launcher"):
        submitit_controllers_quiet()


# submitit's status poll: `InfoWatcher.update` in this module runs `subprocess.check_output(["sacct", ...])`
# and logs a failure as a warning on the `submitit` logger, SACCT_ERROR in its text.
SUBMITIT_WATCHER = "submitit.core.core"
SACCT_ERROR = "Bypassing sacct error"
PRIVATE_NAMES += ((SUBMITIT_WATCHER, "subprocess.check_output"), (SUBMITIT_WATCHER, "InfoWatcher.update"))


def submitit_polls_without_accounting(launcher: Any) -> None:
    """Job states from `squeue` where `sacct` cannot answer (a SLURM cluster without accounting),
    and one warning per sweep instead of one per poll. submitit asks sacct every few seconds for
    the jobs it waits on and knows no other source: without it a job that ends without a result
    (cancelled, killed at its time limit, out of memory) stays UNKNOWN and the sweep waits on it
    forever; each failed query is a warning (three lines: submitit's two handlers and the
    root's) besides what sacct writes to the terminal. The watcher's `subprocess` is wrapped:
    a failed sacct query is answered from `squeue --states=all` in sacct's format (SLURM keeps
    a finished job there for MinJobAge, 5 minutes by default, far longer than a poll), so such a
    job ends and its trial fails; where squeue fails too, submitit warns with sacct's own message,
    and a filter on the `submitit` logger lets the first such warning through. Called once per
    sweep (a new call starts a new count); nothing unless `launcher` is submitit's."""
    import logging

    if not type(launcher).__module__.startswith("hydra_plugins.hydra_submitit_launcher"):
        return
    logger = logging.getLogger("submitit")
    for old in [f for f in logger.filters if isinstance(f, _FirstOnly)]:
        logger.removeFilter(old)
    logger.addFilter(_FirstOnly(SACCT_ERROR))
    module = vars(importlib.import_module(SUBMITIT_WATCHER))  # its `subprocess` is no export of it
    if not isinstance(module["subprocess"], _SacctSubprocess):
        module["subprocess"] = _SacctSubprocess(module["subprocess"])
    module["subprocess"].told = False


class _FirstOnly:
    """A logging filter: of the records whose message holds `text`, the first passes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.seen = False

    def filter(self, record: Any) -> bool:
        if self.text not in record.getMessage():
            return True
        seen, self.seen = self.seen, True
        return not seen


class _SacctSubprocess:
    """The `subprocess` module as submitit's watcher sees it: `check_output` of a sacct query
    that fails is answered by squeue (`JobID|State|NodeList` lines, as `sacct --parsable2`
    prints them), saying once why; where squeue fails too, the error carries sacct's message."""

    def __init__(self, subprocess: Any) -> None:
        self._subprocess = subprocess
        self.told = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._subprocess, name)

    def check_output(self, args: Any, **kwargs: Any) -> Any:
        if not isinstance(args, list) or args[:1] != ["sacct"] or "stderr" in kwargs:
            return self._subprocess.check_output(args, **kwargs)
        run = self._subprocess
        try:
            return run.check_output(args, stderr=run.PIPE, **kwargs)
        except run.CalledProcessError as e:
            reason = ((e.stderr or b"").decode(errors="replace").strip().splitlines() or [str(e)])[0]
        jobs = ",".join(args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-j")
        try:
            states = run.check_output(
                ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N", f"--jobs={jobs}"], stderr=run.PIPE
            )
        except (OSError, run.CalledProcessError):
            raise RuntimeError(f"sacct: {reason}") from None
        if not self.told:
            import logging

            self.told = True
            logging.getLogger(__name__).warning("sacct: %s; SLURM job states come from squeue instead", reason)
        return b"JobID|State|NodeList\n" + states


# The loggers of Hydra's launchers (module loggers, `logging.getLogger(__name__)` in their private
# modules): each logs "Launching N jobs" and a "#k : <overrides>" line per job.
LAUNCHER_LOGGERS = (
    "hydra._internal.core_plugins.basic_launcher",
    "hydra_plugins.hydra_joblib_launcher._core",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
)
PRIVATE_NAMES += tuple((name, "log") for name in LAUNCHER_LOGGERS)
# hydra-ray-launcher's (an optional extra, not in the dev environment: tests/test_ray_launcher.py
# checks RAY_PRIVATE_NAMES where it is installed); each launch logs "Ray Launcher is launching N
# jobs", "Ray is already running." and a "#k : <overrides>" line per job
RAY_LAUNCHER = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
RAY_LOGGERS = ("hydra_plugins.hydra_ray_launcher._core", "hydra_plugins.hydra_ray_launcher._launcher_util")
RAY_PRIVATE_NAMES = (_split(RAY_LAUNCHER), *((name, "log") for name in RAY_LOGGERS))
OUR_OVERRIDES = ("hydra.job.env_set.", "hydra.sweep.subdir=")  # what our sweepers add to every job


class _LaunchLines(logging.Filter):
    """The launchers' job lines without the overrides our sweepers add (`++hydra.job.env_set...`:
    the trial's claim, its study, the ablation coordinates); with `drop`, without any line at all,
    for a sweeper that logs each job itself."""

    def __init__(self, drop: bool) -> None:
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        job_line = message.lstrip().startswith("#")
        if message.startswith(
            ("Launching ", "Joblib.Parallel(", "Ray Launcher is launching ", "Ray is already running")
        ):
            return False  # "Launching 1 jobs locally" before every job of a sweep that launches one at a time
        if self.drop and job_line:
            return False
        if job_line:
            kept = [word for word in message.split(" ") if not word.lstrip("+").startswith(OUR_OVERRIDES)]
            shown = " ".join(kept).rstrip()
            record.msg, record.args = (f"{shown} (the baseline config)" if shown.endswith(":") else shown), ()
        return True


def quiet_launch_lines(drop: bool) -> None:
    """Install `_LaunchLines` on the launchers' loggers (once per process, the last call's `drop`)."""
    for name in (*LAUNCHER_LOGGERS, *RAY_LOGGERS):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _LaunchLines)]:
            logger.removeFilter(old)
        logger.addFilter(_LaunchLines(drop))


def ray_started_once(launcher: Any) -> None:
    """Ray started (or joined, `hydra.launcher.ray.init.address`) here, once, before the first
    launch, when `launcher` is hydra-ray-launcher's; nothing for any other. Its release 1.2.2 does
    that inside every launch: it first adds a default `object_store_memory` to its config node
    `hydra.launcher.ray.init` (refused by Hydra 1.4's struct config, and by ray.init when joining a
    running cluster), then calls ray.init unless Ray is up, and two first launches side by side
    (the Optuna sweeper's n_jobs > 1, one launch per trial in threads) both call it: the second
    fails. So ray.init gets the node as given, from this thread, and then the node gets the key
    as null (Ray's own default) where it lacks it, which the plugin's default then leaves alone.
    A second call (a second sweep in this process) finds Ray up."""
    cls = type(launcher)
    if f"{cls.__module__}.{cls.__qualname__}" != RAY_LAUNCHER:
        return
    from omegaconf import OmegaConf, open_dict, read_write

    ray = importlib.import_module("ray")  # installed with the launcher, not with this package
    init = launcher.ray_cfg.init  # the launcher's config node `ray.init`, as Hydra passed it (read-only)
    if not ray.is_initialized():
        ray.init(**cast("dict[str, Any]", OmegaConf.to_container(init, resolve=True)))
    with read_write(init), open_dict(init):
        init.setdefault("object_store_memory", None)
