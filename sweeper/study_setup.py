"""One sweep's study: its search space, name, folder and storage, decided before any trial runs.

    outputs/optuna/<study name>/     the study's folder (`hydra.sweeper.dir`, or a `hydra.sweep.dir`
                                     given on the command line)
        study.json                   where the study is (budgetsweep.contract.layouts.StudyRecord)
        study.db                     the SQLite storage, unless `hydra.sweeper.storage` names one
        <trial number>/              each trial's run folder

The storage password (if the URL has one) is taken out as the sweep starts
(`budgetsweep.contract.storage`): kept in the environment for whoever connects, masked everywhere else.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import optuna
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from budgetsweep.contract import ContractError
from budgetsweep.contract.layouts import StudyRecord, read_study, write_study
from budgetsweep.contract.run import NUMERIC_METRICS
from budgetsweep.contract.storage import (
    JOURNAL,
    PASSWORD_ENV,
    journal_file,
    mask,
    mask_urls,
    split_password,
    sqlite_url,
)
from budgetsweep.contract.sweep import ENQUEUED, SPACE
from budgetsweep.contract.values import parse_value, quote

from ._compat import is_basic_launcher
from .errors import SweeperError
from .optuna_storage import open_study
from .settings import OptunaSettings, objective_names
from .space import (
    SearchSpace,
    check_enqueued,
    default_study_name,
    grid_choices,
    params_to_overrides,
    parse_space,
    space_changes,
)
from .summary import analysis_command

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from .config import Direction

log = logging.getLogger(__name__)


@dataclass
class Sweep:
    """What the study loop works on."""

    study: optuna.Study
    storage: BaseStorage
    space: SearchSpace
    n_trials: int  # the setting, or the grid's size when smaller
    study_dir: Path
    storage_url: str  # password masked


def hide_password(settings: OptunaSettings, config: DictConfig) -> None:
    """Move the storage password into $BUDGETSWEEP_STORAGE_PASSWORD (jobs inherit it) and out of
    the settings and the overrides each job records in its .hydra/ folder (every URL's password
    there is masked; `hydra.sweeper.storage` itself is pinned, masked, by `open_sweep`)."""
    if settings.storage:
        settings.storage, secret = split_password(settings.storage)
        if secret:
            os.environ[PASSWORD_ENV] = secret
    with read_write(config.hydra), open_dict(config.hydra):
        config.hydra.overrides.hydra = [mask_urls(o) for o in config.hydra.overrides.hydra]


def parallelism(launcher: Any, config: DictConfig, n_jobs: int) -> int:
    """Trials at a time: n_jobs, or 1 with a launcher that runs one job at a time."""
    sequential = is_basic_launcher(launcher) or config.hydra.launcher.get("n_jobs", None) == 1
    if sequential and n_jobs > 1:
        log.info(
            "hydra.sweeper.n_jobs=%d: this launcher runs one job at a time in this process; "
            "use hydra/launcher=joblib to run trials in parallel",
            n_jobs,
        )
    return 1 if sequential else n_jobs


def open_sweep(settings: OptunaSettings, config: DictConfig, arguments: list[str]) -> Sweep:
    space = parse_space(params_to_overrides(settings.params) + list(arguments))
    enqueued = _check_enqueue(space, settings.enqueue)  # a bad entry is refused before any folder or study exists
    if not space.distributions and settings.custom_search_space is None:
        log.info("The search space is empty: each trial runs the same config (n_trials=%d)", settings.n_trials)
    sampler, n_trials = settings.sampler, settings.n_trials
    if settings.is_grid:
        grid = grid_choices(space)
        sampler = sampler(grid)
        size = math.prod(len(v) for v in grid.values())
        if size < n_trials:
            log.info("grid sampler: n_trials %d -> %d, the size of the grid", n_trials, size)
            n_trials = size
    name = settings.study_name or default_study_name(space, config.hydra.runtime.choices.get("experiment"))
    user_dir = _user_sweep_dir(config, settings.dir)
    folder = settings.dir or user_dir or Path("outputs") / "optuna" / name
    study_dir = (Path(config.hydra.runtime.cwd) / folder).resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    url = _storage_here(settings.storage, study_dir, Path(config.hydra.runtime.cwd))
    masked = mask(url)
    _refuse_another_study(study_dir, name, masked)
    # Jobs are composed from the primary config's hydra overrides (Hydra requires their
    # `hydra.sweeper` to equal this one's): pin the resolved values there, so each job's
    # .hydra/hydra.yaml records the study it belongs to, with the password masked.
    _pin(config, "hydra.sweeper.storage", masked)
    _pin(config, "hydra.sweeper.study_name", name)
    _pin(config, "hydra.sweep.dir", str(study_dir))  # also where launchers create their folder
    if len(settings.directions) > 1:
        _create_multi_objective(url, name, settings.directions)
    study, storage = open_study(
        url,
        name,
        sampler=sampler,
        pruner=settings.pruner,
        direction=settings.directions[0],  # a multi-objective study exists by now: loaded as it is
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
    )
    _check_directions(study, settings.directions, masked)
    _check_space(storage, study, space, masked, settings.allow_space_change)
    names = objective_names(settings.objectives, objective_name(settings, config), len(settings.directions))
    _name_objectives(study, names)
    _enqueue(study, storage, enqueued)
    write_study(study_dir, StudyRecord(masked, study.study_name, settings.direction, n_trials, objectives=names))
    return Sweep(study, storage, space, n_trials, study_dir, masked)


def _storage_here(spec: str | None, study_dir: Path, cwd: Path) -> str:
    """The study's storage spec as every process finds it: None -> SQLite in the study folder;
    `journal` -> a journal file there; a relative journal file -> from the command's folder."""
    if spec is None:
        return sqlite_url(study_dir / "study.db")
    if spec == "journal":
        return f"{JOURNAL}{study_dir / 'study.journal'}"
    if spec.startswith(JOURNAL):
        return f"{JOURNAL}{(cwd / journal_file(spec)).resolve()}"
    return spec


def objective_name(settings: OptunaSettings, config: DictConfig) -> str:
    """What the study optimises, as the log and optimization_results.yaml name it."""
    if settings.objectives:
        return ",".join(settings.objectives)
    return str(OmegaConf.select(config, "objective", default="objective"))


def check_objectives(study: optuna.Study, settings: OptunaSettings, config: DictConfig) -> None:
    """Before anything trains: several directions need as many values, named in metrics.json
    (run.py returns one); and in an app that writes metrics.json (its config has the record
    node, as run.py's), every objective must be one of its numbers, never a test metric."""
    n = len(study.directions)
    if n > 1 and settings.objectives is None and OmegaConf.select(config, "objective") is not None:
        raise SweeperError(
            f"hydra.sweeper.direction has {n} directions: name the objectives to read from each run's "
            f"metrics.json, e.g. hydra.sweeper.objectives=[val_acc,params]"
        )
    node = OmegaConf.select(config, settings.record, default=None) if settings.record else None
    if not settings.objectives or not isinstance(node, DictConfig):
        return  # any other app names its values itself (a returned dict, budgetsweep.record)
    unknown = [name for name in settings.objectives if name not in NUMERIC_METRICS]
    if unknown:
        raise SweeperError(
            f"hydra.sweeper.objectives: {', '.join(unknown)}: not a number metrics.json holds (one of "
            f"{', '.join(NUMERIC_METRICS)}); nothing was trained"
        )
    tested = [name for name in settings.objectives if name.startswith("test_")]
    if tested:
        raise SweeperError(
            f"hydra.sweeper.objectives: {', '.join(tested)}: a search tuned on the test split reports a biased "
            f"test score; optimise a validation metric (val_acc, final_val_loss) and read the test score after"
        )


def with_fixed_values(config: DictConfig, space: SearchSpace) -> DictConfig:
    """The primary config with the search space's fixed values (`budget.max_params: 200000` in
    `hydra.sweeper.params` is every trial's budget): what the start of the sweep describes."""
    # a DictConfig's container is a dict (keyed by str: Hydra's config keys)
    cfg = OmegaConf.create(cast("dict[str, Any]", OmegaConf.to_container(config, resolve=False)))
    for key, value in space.fixed.items():
        if key.startswith("budget."):  # what the line describes; group choices are not values
            OmegaConf.update(cfg, key, parse_value(value) if isinstance(value, str) else value, force_add=True)
    return cfg


def log_start(sweep: Sweep, settings: OptunaSettings, config: DictConfig, holders: list, parallel: int) -> None:
    """Where the study is, how far it got, and how this run will go on: the sweep's first lines."""
    done = sum(t.state.is_finished() for t in holders)
    log.info("Study %r in %s, folder %s", sweep.study.study_name, sweep.storage_url, sweep.study_dir)
    log.info("Tables and plots at any time: %s", analysis_command(sweep.study_dir))
    log.info(
        "%d of n_trials=%d trained trials done%s; sampler %s, pruner %s, %d job(s) at a time",
        done,
        sweep.n_trials,
        f", {len(holders) - done} unfinished" if len(holders) > done else "",
        type(sweep.study.sampler).__name__,
        type(settings.pruner).__name__,
        parallel,
    )
    log.info(settings.sizer.describe(with_fixed_values(config, sweep.space)))


def _user_sweep_dir(config: DictConfig, sweeper_dir: str | None) -> str | None:
    """A `hydra.sweep.dir` the user gave on the command line: honoured as the study's folder
    (Hydra's habit); refused when `hydra.sweeper.dir` names another one."""
    given = [o for o in config.hydra.overrides.hydra if o.split("=", 1)[0].lstrip("+~") == "hydra.sweep.dir"]
    if not given:
        return None
    user_dir = str(config.hydra.sweep.dir)
    if sweeper_dir is not None and Path(sweeper_dir) != Path(user_dir):
        raise SweeperError(
            f"hydra.sweep.dir={user_dir} and hydra.sweeper.dir={sweeper_dir}: the study's folder is "
            f"hydra.sweeper.dir; give only one of them"
        )
    return user_dir


def _create_multi_objective(url: str, name: str, directions: list[Direction]) -> None:
    """Create a study of several directions (open_study loads it as it is); a failure here (a
    race with another worker, an unreachable server) is reported by open_study."""
    from .optuna_storage import make_storage

    try:
        optuna.create_study(storage=make_storage(url), study_name=name, directions=directions, load_if_exists=True)
    except Exception:  # open_study reports it, password masked
        pass


def _name_objectives(study: optuna.Study, names: list[str]) -> None:
    """Optuna's metric names (shown by optuna-dashboard, read by analysis for the Pareto table)."""
    import warnings

    if len(names) != len(study.directions) or study.metric_names == names:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # public since Optuna 3.2
        study.set_metric_names(names)


def _check_directions(study: optuna.Study, directions: list[Direction], masked: str) -> None:
    had = [d.name.lower() for d in study.directions]
    if had != directions:
        raise SweeperError(
            f"study {study.study_name!r} in {masked} was made with direction {had}, not {directions}: "
            f"give this search its own hydra.sweeper.study_name"
        )


def _check_enqueue(space: SearchSpace, configs: list[dict]) -> list[dict]:
    """`hydra.sweeper.enqueue` as each entry's trial parameters, checked against the search space
    (SweeperError names the first bad entry); keys the search fixes are left out with a warning."""
    checked = []
    for i, config in enumerate(configs):
        params, dropped = check_enqueued(space, config, f"hydra.sweeper.enqueue[{i}]")
        if dropped:
            log.warning("hydra.sweeper.enqueue[%d]: the search fixes %s: left out", i, ", ".join(dropped))
        checked.append(params)
    return checked


def _enqueue(study: optuna.Study, storage: BaseStorage, checked: list[dict]) -> None:
    """The checked enqueue entries, each put in the study's queue once (kept in the study's
    system attribute ENQUEUED, so a rerun does not queue it again); sized like any suggestion."""
    if not checked:
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    done = list(storage.get_study_system_attrs(study_id).get(ENQUEUED, []))
    for params in checked:
        key = json.dumps(params, sort_keys=True)
        if not params or key in done:
            continue
        study.enqueue_trial(params, user_attrs={"enqueued": True})
        done.append(key)
        log.info("enqueued, to be tried first: %s", " ".join(f"{k}={v}" for k, v in params.items()))
    storage.set_study_system_attr(study_id, ENQUEUED, done)


def _refuse_another_study(study_dir: Path, name: str, masked: str) -> None:
    """A folder holds one study: reusing it for another would mix their trial folders."""
    try:
        record = read_study(study_dir)
    except ContractError as e:
        raise SweeperError(f"hydra.sweeper.dir: {e}; move it away or choose another folder") from None
    if record is not None and (record.study_name, record.storage) != (name, masked):
        raise SweeperError(
            f"hydra.sweeper.dir: {study_dir} holds study {record.study_name!r} in {record.storage}, "
            f"not {name!r} in {masked}: choose another folder, or move that one away"
        )


def _check_space(storage: BaseStorage, study: optuna.Study, space: SearchSpace, masked: str, allow: bool) -> None:
    """A study continues the search it was made for: its space is kept in the study (system
    attribute SPACE); a rerun under another one is refused unless allow_space_change."""
    study_id = storage.get_study_id_from_name(study.study_name)
    before, now = storage.get_study_system_attrs(study_id).get(SPACE), space.plain()
    if before is not None and before != now:
        changed = ", ".join(space_changes(before, now)) or "-"
        if not allow:
            raise SweeperError(
                f"study {study.study_name!r} in {masked} was run with another search space (changed: {changed}): "
                f"give this search its own hydra.sweeper.study_name, or set hydra.sweeper.allow_space_change=true "
                f"to continue that study under the new space"
            )
        log.warning("Study %r continues under a changed search space (changed: %s)", study.study_name, changed)
    if before != now:
        storage.set_study_system_attr(study_id, SPACE, now)


def _pin(config: DictConfig, key: str, value: str) -> None:
    hydra = config.hydra
    with read_write(hydra), open_dict(hydra):
        OmegaConf.update(config, key, value, merge=False, force_add=True)
        kept = [o for o in hydra.overrides.hydra if o.split("=", 1)[0].lstrip("+~") != key]
        hydra.overrides.hydra = [*kept, f"{key}={quote(value)}"]
