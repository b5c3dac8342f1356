"""Both sweepers' config schemas and their ConfigStore entries: every default of a setting lives here.

Registered for any Hydra app, so none needs a YAML file of ours:

    hydra/sweeper=budget_optuna                    BudgetOptunaSweeperConf (the standard plugin's + ours)
    hydra/sweeper=ablation                         AblationSweeperConf
    hydra/sweeper/pruner=median|hyperband|none     one Optuna pruner each

An app's own YAML file of the same group and name wins over these (Hydra searches the app's
config path before the ConfigStore): run.py's `conf/hydra/sweeper/pruner/median.yaml` does. The
median and hyperband nodes carry Optuna's defaults (optuna 5's signatures), so choosing one
changes nothing but the choice, and `hydra.sweeper.pruner.<option>=...` needs no `+`.

The plugins' `__init__` take the settings Hydra passes over these defaults (`with_defaults`), so
no default is written twice. Imported by both plugin modules, which Hydra imports at every start:
Hydra and OmegaConf only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Literal, Mapping, Optional, cast

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import OmegaConf

from budgetsweep.contract.sweep import RECORD_NODE

# One value of hydra.sweeper.direction (a list of them for several objectives), as Optuna spells it
Direction = Literal["minimize", "maximize"]


@dataclass
class BudgetConf:
    """`hydra.sweeper.budget` of both sweepers (budgetsweep.sweeper.sizing)."""

    # null: the app's budget.max_params; when that is absent or null too, nothing is sized
    max_params: Optional[int] = None
    # null: the app's budget.max_flops (forward FLOPs of one input); null there too: no FLOPs limit
    max_flops: Optional[int] = None
    # the node sized: <model_key> (a registry family or a _target_ node), else <model_key>.net
    model_key: str = "model"
    # "module.fn": fn(cfg) -> int trainable parameters (or (params, flops)); used instead of the
    # automatic sizing
    size_fn: Optional[str] = None


@dataclass
class HeartbeatConf:
    # The sweeper records a heartbeat for each trial it runs; a RUNNING trial whose heartbeat
    # is older than grace_period seconds belonged to a process that died, and is run again.
    interval: int = 10
    grace_period: int = 30


@dataclass
class BudgetOptunaSweeperConf(OptunaSweeperConf):
    """The plugin's schema (sampler, direction, storage, study_name, n_trials, n_jobs,
    max_failure_rate, params, custom_search_space) with the plugin's defaults, plus ours.
    run.py's conf/hydra/sweeper/optuna.yaml builds on it with the values that suit it."""

    _target_: str = "budgetsweep.sweeper.optuna_sweeper.BudgetOptunaSweeper"
    # the plugin's sampler slot (tpe) and a pruner slot, empty (hydra/sweeper/pruner=median fills it);
    # _self_ first, so that the chosen pruner replaces `pruner: null` below
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": None}])
    pruner: Any = None  # an optuna.pruners.* node with _target_ (hydra/sweeper/pruner=...); null = never prune
    dir: Optional[str] = None  # the study's folder; null = outputs/optuna/<study_name>
    max_suggestions: Optional[int] = None  # per run, trained + infeasible; null = 20 x n_trials
    # stop once more than this share of n_trials failed in this run (null: no such limit);
    # max_failure_rate keeps the plugin's meaning (the failed share of each batch of n_jobs)
    max_failed_share: Optional[float] = None
    # a study reused under another search space is refused unless this is true
    allow_space_change: bool = False
    # the config node that receives the trial's number and study (sweep.trial, sweep.study)
    # when the app's config has it; the job gets them in its environment in any case
    record: Optional[str] = RECORD_NODE
    budget: BudgetConf = field(default_factory=BudgetConf)
    heartbeat: HeartbeatConf = field(default_factory=HeartbeatConf)
    # the objectives' names, one per direction, e.g. [val_acc, params]: each read by name from the
    # job's record (run.py's metrics.json, budgetsweep.record) or a dict the task returned; a
    # number or tuple the task returned is named by them in order; null: the config's
    # `objective` (one direction), else objective_0, objective_1, ...
    objectives: Optional[Any] = None
    # seconds: no trial starts after this long (each sweep process on its own clock); null: none
    timeout: Optional[float] = None
    # configs tried first, once per study (Study.enqueue_trial), e.g. [{model.C: 68, model.N: 3}]
    enqueue: Optional[Any] = None


@dataclass
class AblationSweeperConf:
    """`hydra/sweeper=ablation`."""

    _target_: str = "budgetsweep.sweeper.ablation_sweeper.AblationSweeper"
    params: Optional[Dict[str, Any]] = None  # key: "v1,v2,..." (override syntax); every entry is a factor
    repeats: int = 1  # runs of every variant; seed = seed + repeat
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at once; null = all
    seed_key: Optional[str] = "seed"  # the config key that holds the seed; absent or null: repeats unseeded
    record: Optional[str] = RECORD_NODE  # node that receives factor/value/baseline/repeat, when the config has it
    size: bool = True  # size each variant under the budget before launch and log it
    max_failure_rate: float = 0.0  # after the sweep, fail if more than this fraction of jobs raised
    budget: BudgetConf = field(default_factory=BudgetConf)
    # the name of the value the task returns (a number, or the key of a returned dict); null: the
    # config's `objective` key where it has one (run.py's val_acc), else "objective"
    objective: Optional[str] = None
    # maximize | minimize; null: the objective's direction in the run contract (val_acc: maximize),
    # else minimize, the Optuna plugin's default
    direction: Optional[str] = None
    # the sweep's folder; null = outputs/ablation/<name> (a hydra.sweep.dir on the command line wins)
    dir: Optional[str] = None
    # the default folder's name; null = <experiment or "ablation">-<8 hex digits of the plan>
    name: Optional[str] = None


# --- pruners: Optuna's defaults (optuna.pruners.*, optuna 5) ------------------------------------


@dataclass
class MedianPrunerConf:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # no pruning before this many trials completed
    n_warmup_steps: int = 0  # no pruning at steps below this (the reporter's steps, 1-based epochs in run.py)
    interval_steps: int = 1
    n_min_trials: int = 1  # trials reported at a step before the median there is used


@dataclass
class HyperbandPrunerConf:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1  # steps every trial gets
    max_resource: Any = "auto"  # steps of a full trial (an int), or "auto": the most steps a completed trial reported
    reduction_factor: int = 3
    bootstrap_count: int = 0


# none: never prunes (the choice for several objectives). A plain node, not a dataclass, so that it
# is also the base for any other pruner: hydra/sweeper/pruner=none '++hydra.sweeper.pruner={_target_:...}'
# (a dataclass node would refuse the keys it lacks)
NO_PRUNER = {"_target_": "optuna.pruners.NopPruner"}

PRUNERS: dict[str, Any] = {"median": MedianPrunerConf, "hyperband": HyperbandPrunerConf, "none": NO_PRUNER}


def with_defaults(schema: type, given: Mapping[str, Any], error: type[Exception], name: str) -> dict[str, Any]:
    """A sweeper's settings: the schema's defaults under the keys given (what Hydra passes to the
    plugin's `__init__`). A key given replaces its default whole (a sampler or pruner node is one
    choice, not merged into another) and keeps its value as given, for the checks to judge; a key
    the schema lacks is `error`, naming it and the sweeper (`name`)."""
    # a dataclass schema's container is a dict keyed by its field names
    defaults = cast("dict[str, Any]", OmegaConf.to_container(OmegaConf.structured(schema)))
    keys = [k for k in defaults if k not in ("_target_", "defaults")]
    unknown = sorted(set(given) - set(keys))
    if unknown:
        raise error(f"hydra.sweeper.{unknown[0]}: not a setting of hydra/sweeper={name}")
    return {k: given[k] if k in given else defaults[k] for k in keys}


def _register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="budget_optuna", node=BudgetOptunaSweeperConf, provider="budgetsweep")
    store.store(group="hydra/sweeper", name="ablation", node=AblationSweeperConf, provider="budgetsweep")
    for name, node in PRUNERS.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="budgetsweep")


def _trust_our_callback() -> None:
    """Hydra 1.4 instantiates `hydra.callbacks` without an execution whitelist and warns (six
    lines) at every start of an app that lists one; ours (`callbacks.SweepSummary`) is code of
    this package, named by the app's own config: that warning, for our targets only, is not
    shown. Any other target's warning still is."""
    import warnings

    warnings.filterwarnings(
        "ignore", message=r"hydra\.utils\.instantiate\(\) resolved _target_='budgetsweep\.", category=UserWarning
    )


_register()
_trust_our_callback()
