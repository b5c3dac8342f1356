"""The Optuna sweeper's settings (`hydra.sweeper.*`), checked once, when Hydra creates the sweeper.

Each mistake is a `SweeperError` naming the key, which Hydra prints as one line. The sampler
and the pruner are built here too, so that a bad `_target_` is reported before anything runs.
Imports Optuna (through the sampler and pruner) only when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from omegaconf import OmegaConf

from budgetsweep.contract import first_line
from budgetsweep.contract.storage import StorageSpecError, storage_spec

from .config import NO_PRUNER, BudgetOptunaSweeperConf, Direction, HeartbeatConf, with_defaults
from .errors import SweeperError
from .trial_reporter import build_pruner

SAMPLER_WHITELIST = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*")


@dataclass
class OptunaSettings:
    """The settings as the sweep uses them: each checked, built or derived from the merged schema
    (`config.BudgetOptunaSweeperConf`, where every default is written)."""

    sampler: Any  # an optuna sampler; for the grid, a partial that takes the grid (space.grid_choices)
    direction: Direction | list[Direction]  # a list: several objectives
    # a storage spec (budgetsweep.contract.storage) as given, password not yet taken out: a database
    # URL, journal[:<file>], grpc://host:port, a _target_ node as JSON; None: SQLite in the study folder
    storage: str | None
    study_name: str | None  # None: derived from the search space (space.default_study_name)
    n_trials: int  # trained trials the study should have
    n_jobs: int
    max_failure_rate: float  # the plugin's meaning: the failed share allowed in each batch of n_jobs trials
    max_failed_share: float | None  # the failed share of n_trials allowed in one run; None: no limit
    custom_search_space: Callable[[Any, Any], None] | None  # fn(config, trial), may suggest more params
    params: Any  # hydra.sweeper.params: key -> override value
    pruner_cfg: Any  # the node each job rebuilds its pruner from (trial_reporter)
    pruner: Any
    dir: str | None
    max_suggestions: int  # per run, trained + infeasible
    heartbeat_interval: int
    grace_period: int
    allow_space_change: bool
    record: str | None  # the config node that receives sweep.trial / sweep.study, when present
    sizer: Any  # sizing.Sizer
    # the objectives' names (config.OptunaSweeperConf.objectives); None: `objective_names` decides
    objectives: list[str] | None
    timeout: float | None  # seconds: no trial starts after it (this process's clock)
    enqueue: list[dict]  # configs tried first (Study.enqueue_trial)

    @property
    def directions(self) -> list[Direction]:
        return list(self.direction) if isinstance(self.direction, list) else [self.direction]

    @property
    def is_grid(self) -> bool:
        import functools

        import optuna

        return isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler


def _positive_int(key: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SweeperError(f"hydra.sweeper.{key}: expected a positive int, got {value!r}")


def _rate(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise SweeperError(f"hydra.sweeper.{key}: expected a number in [0, 1], got {value!r}")


def _direction(direction: Any) -> Direction | list[Direction]:
    """One direction as a string; several (a list of two or more) as a list."""
    several = OmegaConf.is_list(direction) or isinstance(direction, (list, tuple))
    names: list[Direction] = [getattr(d, "name", d) for d in (direction if several else [direction])]
    if not names or any(n not in ("minimize", "maximize") for n in names):
        raise SweeperError(
            f"hydra.sweeper.direction: expected minimize or maximize, or a list of them (one per objective), "
            f"got {direction!r}"
        )
    return names if len(names) > 1 else names[0]


def _objectives(objectives: Any, directions: list[Direction]) -> list[str] | None:
    if objectives is None:
        return None
    names = list(objectives) if OmegaConf.is_list(objectives) or isinstance(objectives, (list, tuple)) else None
    if not names or any(not isinstance(n, str) for n in names):
        raise SweeperError(
            f"hydra.sweeper.objectives: expected a list of metrics.json keys (e.g. [val_acc, params]), "
            f"got {objectives!r}"
        )
    if len(names) != len(directions):
        raise SweeperError(
            f"hydra.sweeper.objectives: {len(names)} objective(s) {names} but {len(directions)} direction(s) "
            f"{directions}: give one direction per objective"
        )
    return names


# What each sampler needs beyond Optuna (they fail only at their first model-based suggestion)
SAMPLER_NEEDS = {"CmaEsSampler": ("cmaes",), "QMCSampler": ("scipy",), "GPSampler": ("scipy", "torch")}
SINGLE_OBJECTIVE_SAMPLERS = ("CmaEsSampler",)


def _sampler(sampler: Any, directions: list[Direction]) -> Any:
    from importlib.util import find_spec

    from hydra.utils import instantiate

    try:
        built = instantiate(sampler, _execution_whitelist_=SAMPLER_WHITELIST)
    except Exception as e:
        raise SweeperError(f"hydra.sweeper.sampler: {first_line(e)}") from None
    name = getattr(getattr(built, "func", None), "__name__", None) or type(built).__name__
    for package in SAMPLER_NEEDS.get(name, ()):
        if find_spec(package) is None:
            raise SweeperError(
                f"hydra.sweeper.sampler: {name} needs the {package!r} package: pip install {package} "
                f"(or pip install 'budgetsweep[samplers]')"
            )
    if len(directions) > 1 and name in SINGLE_OBJECTIVE_SAMPLERS:
        raise SweeperError(
            f"hydra.sweeper.sampler: {name} optimizes one objective, the direction has {len(directions)}: "
            f"use hydra/sweeper/sampler=tpe or nsgaii"
        )
    return built


def _timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise SweeperError(f"hydra.sweeper.timeout: expected a positive number of seconds or null, got {value!r}")
    return float(value)


def _enqueue(configs: Any) -> list[dict]:
    """`hydra.sweeper.enqueue`: a list of {key: value} mappings (the search space's keys)."""
    if configs is None:
        return []
    plain = OmegaConf.to_container(configs) if OmegaConf.is_config(configs) else configs
    if not isinstance(plain, list) or not all(isinstance(c, dict) and c for c in plain):
        raise SweeperError(
            f"hydra.sweeper.enqueue: expected a list of {{key: value}} mappings, e.g. [{{model.C: 68}}], "
            f"got {configs!r}"
        )
    return [{str(k): v for k, v in c.items()} for c in plain]


def _custom_search_space(path: str | None) -> Callable[[Any, Any], None] | None:
    if not path:
        return None
    from hydra.utils import instantiate

    try:
        # through instantiate, as the plugin does: Hydra's execution policy refuses a target that
        # runs code (os.system, subprocess, ...) where get_method would hand it over
        return instantiate({"_target_": path, "_partial_": True})
    except Exception as e:
        raise SweeperError(f"hydra.sweeper.custom_search_space: {first_line(e)}") from None


def merged(given: Mapping[str, Any]) -> dict[str, Any]:
    """`config.with_defaults`, and `heartbeat` takes the keys it lacks from its defaults."""
    conf = with_defaults(BudgetOptunaSweeperConf, given, SweeperError, "budget_optuna")
    heartbeat = given.get("heartbeat") or {}
    plain = OmegaConf.to_container(heartbeat) if OmegaConf.is_config(heartbeat) else heartbeat
    if not isinstance(plain, dict):
        raise SweeperError(f"hydra.sweeper.heartbeat: expected a mapping, got {heartbeat!r}")
    # a dataclass schema's container is a dict keyed by its field names
    defaults = cast("dict[str, Any]", OmegaConf.to_container(OmegaConf.structured(HeartbeatConf)))
    conf["heartbeat"] = {**defaults, **plain}
    return conf


def parse_settings(given: Mapping[str, Any]) -> OptunaSettings:
    """The settings Hydra passes to the sweeper, over the schema's defaults, checked;
    SweeperError names the bad one."""
    from .sizing import Sizer
    from .space import params_to_overrides

    conf = merged(given)
    n_trials, heartbeat, pruner, record = conf["n_trials"], conf["heartbeat"], conf["pruner"], conf["record"]
    _positive_int("n_trials", n_trials)
    _positive_int("n_jobs", conf["n_jobs"])
    _positive_int("max_suggestions", conf["max_suggestions"], allow_none=True)
    _positive_int("heartbeat.interval", heartbeat["interval"])
    _positive_int("heartbeat.grace_period", heartbeat["grace_period"])
    _rate("max_failure_rate", conf["max_failure_rate"])
    if conf["max_failed_share"] is not None:
        _rate("max_failed_share", conf["max_failed_share"])
    if record is not None and not isinstance(record, str):
        raise SweeperError(f"hydra.sweeper.record: expected a config key or null, got {record!r}")
    storage = None if conf["storage"] is None else _storage(conf["storage"])
    params_to_overrides(conf["params"])  # a mapping, or a one-line error now
    direction = _direction(conf["direction"])
    directions = direction if isinstance(direction, list) else [direction]
    target = None if pruner is None else OmegaConf.select(OmegaConf.create({"p": pruner}), "p._target_")
    never_prunes = pruner is None or target == NO_PRUNER["_target_"]
    if len(directions) > 1 and not never_prunes:
        raise SweeperError(
            f"hydra.sweeper.pruner: Optuna prunes single-objective studies only; this one has {len(directions)} "
            f"directions: drop the pruner (hydra/sweeper/pruner=none)"
        )
    return OptunaSettings(
        sampler=_sampler(conf["sampler"], directions),
        direction=direction,
        storage=storage,
        study_name=conf["study_name"],
        n_trials=n_trials,
        n_jobs=conf["n_jobs"],
        max_failure_rate=float(conf["max_failure_rate"]),
        max_failed_share=None if conf["max_failed_share"] is None else float(conf["max_failed_share"]),
        custom_search_space=_custom_search_space(conf["custom_search_space"]),
        params=conf["params"],
        pruner_cfg=pruner,
        pruner=build_pruner(pruner),
        dir=conf["dir"],
        max_suggestions=conf["max_suggestions"] or 20 * n_trials,
        heartbeat_interval=int(heartbeat["interval"]),
        grace_period=int(heartbeat["grace_period"]),
        allow_space_change=bool(conf["allow_space_change"]),
        record=record,
        sizer=Sizer.from_settings(conf["budget"]),
        objectives=_objectives(conf["objectives"], directions),
        timeout=_timeout(conf["timeout"]),
        enqueue=_enqueue(conf["enqueue"]),
    )


def _storage(value: Any) -> str:
    """`hydra.sweeper.storage` as a storage spec; SweeperError says what it may be."""
    try:
        return storage_spec(value)
    except StorageSpecError:
        raise SweeperError(
            "hydra.sweeper.storage: expected a database URL (sqlite:///..., postgresql://...), journal, "
            "journal:<file>, grpc://<host>:<port>, or a node with the _target_ of an optuna.storages storage"
        ) from None


def objective_names(objectives: list[str] | None, objective: str, n_values: int) -> list[str]:
    """The objectives' names: `hydra.sweeper.objectives`, else the config's `objective` (one
    direction), else objective_0, objective_1, ... (what the task returns, in order)."""
    if objectives:
        return list(objectives)
    return [objective] if n_values == 1 else [f"objective_{i}" for i in range(n_values)]
