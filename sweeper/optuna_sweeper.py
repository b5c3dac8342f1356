"""`hydra/sweeper=budget_optuna`: the hydra-optuna-sweeper plugin, budget-aware, with pruning and resume.

    python any_app.py -m hydra/sweeper=budget_optuna 'lr=tag(log,interval(1e-4,1e-1))'   # any Hydra app
    python run.py -m hydra/sweeper=optuna                            # run.py's preset (conf/), the default space
    python run.py -m hydra/sweeper=optuna model.C='int(interval(8,32))' hydra.sweeper.n_trials=40

What it adds to the plugin (whose config schema, search-space grammar, samplers and
override grammar it reuses):

- the parameter budget is a constraint: every suggestion is sized in this process before
  launch (`budgetsweep.sweeper.sizing`: a registry family, a `_target_` model on the meta device, or a
  function the user names; no weights); one over `budget.max_params` or `budget.max_flops`
  (or one that cannot build a model) is told to Optuna at once as infeasible, never trained,
  and does not use up `n_trials`, which counts trained trials; with several objectives
  (`direction: [maximize, minimize]`, `objectives: [val_acc, params]`) too;
- `timeout` (no trial starts after it) and `enqueue` (known configs tried first, once per study);
- `pruner`: any `optuna.pruners.*` via `_target_`; each job reports its intermediate values
  to its own trial (`budgetsweep.sweeper.trial_reporter.trial_reporter`, run.py's epochs) and stops when told to;
- no key required of the app: the job's trial reaches it through Hydra's job config
  (`hydra.job.env_set`), and a `sweep` node only where the app's config has one;
- resume: the study lives in a SQLite file in its own folder, `outputs/optuna/<study_name>/`,
  and each trial runs in `<that folder>/<trial number>/`; rerunning the same command continues
  the study up to `n_trials` and resumes interrupted trials in their own folders;
- several sweep processes can share one study through `storage=postgresql://...`;
- jobs run `n_jobs` at a time without waiting for a whole batch (any launcher but the basic one).

The study loop lives in modules of one job each: `settings` (checked when Hydra creates the
sweeper), `space` (overrides <-> Optuna distributions), `study` (name, folder, storage),
`slots` (n_trials across workers), `feasibility` (compose + `sizing`),
`launch` (jobs and their outcome), `heartbeat` (re-queuing trials of dead processes), `loop`
(the orchestration), `summary`; `_compat` holds every private Optuna/Hydra name still used.

Hydra imports this module at every start (pyproject entry point), so it imports Hydra only:
Optuna, torch and the loop are loaded once Hydra creates this sweeper for a multirun. Mistakes
in the sweeper's settings end the sweep with one line (`budgetsweep.sweeper.errors.SweeperError`, raised
from `__init__`: hydra-core 1.4 re-raises a plugin's own exception there, and a
CompactHydraException prints as its message alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import DictConfig

from .sizing import BudgetConf


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
    Registered as `hydra/sweeper=budget_optuna` for any app; run.py's
    conf/hydra/sweeper/optuna.yaml builds on it with the values that suit it."""

    _target_: str = "budgetsweep.sweeper.optuna_sweeper.BudgetOptunaSweeper"
    pruner: Any = None  # an optuna.pruners.* node with _target_; null = never prune
    dir: Optional[str] = None  # the study's folder; null = outputs/optuna/<study_name>
    max_suggestions: Optional[int] = None  # per run, trained + infeasible; null = 20 x n_trials
    # stop once more than this share of n_trials failed in this run (null: no such limit);
    # max_failure_rate keeps the plugin's meaning (the failed share of each batch of n_jobs)
    max_failed_share: Optional[float] = None
    # a study reused under another search space is refused unless this is true
    allow_space_change: bool = False
    # the config node that receives the trial's number and study (sweep.trial, sweep.study)
    # when the app's config has it; the job also gets them as $BUDGETSWEEP_TRIAL/_STUDY
    record: Optional[str] = "sweep"
    budget: BudgetConf = field(default_factory=BudgetConf)
    heartbeat: HeartbeatConf = field(default_factory=HeartbeatConf)
    # several objectives (direction: [maximize, minimize]): each read by name from the job's
    # metrics.json (run contract), e.g. [val_acc, params]; null: the task's return value(s)
    objectives: Optional[Any] = None
    # seconds: no trial starts after this long (each sweep process on its own clock); null: none
    timeout: Optional[float] = None
    # configs tried first, once per study (Study.enqueue_trial), e.g. [{model.C: 68, model.N: 3}]
    enqueue: Optional[Any] = None


ConfigStore.instance().store(
    group="hydra/sweeper", name="budget_optuna", node=BudgetOptunaSweeperConf, provider="budgetsweep"
)


class BudgetOptunaSweeper(Sweeper):
    """Thin plugin class: settings checked here, the study run by `budgetsweep.sweeper.study_loop`."""

    def __init__(self, **settings: Any) -> None:
        from .settings import parse_settings

        super().__init__()
        self.settings = parse_settings(**settings)
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.parallel = 1

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from .study_setup import hide_password

        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config
        hide_password(self.settings, config)

    def sweep(self, arguments: list[str]) -> None:
        from hydra.core.plugins import Plugins

        from .study_loop import StudyLoop
        from .study_setup import open_sweep, parallelism

        assert self.config is not None, "setup() first"
        sweep = open_sweep(self.settings, self.config, arguments)
        # the launcher is made once the study's folder is pinned as hydra.sweep.dir, so that its
        # own files (submitit's .submitit/) go there too, not to a timestamped multirun folder
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=self.task_function, config=self.config
        )
        self.parallel = parallelism(self.launcher, self.config, self.settings.n_jobs)
        StudyLoop(self.settings, sweep, self.hydra_context, self.config, self.launcher, self.parallel).run()
