"""`hydra/sweeper=budget_optuna`: the hydra-optuna-sweeper plugin, budget-aware, with pruning and resume.

What holds, and why (docs/optuna.md has the how-to):

- the plugin's schema, defaults, samplers and override grammar are reused unchanged
  (`BudgetOptunaSweeperConf` extends `OptunaSweeperConf`), so a config written for the
  standard plugin means the same here;
- every suggestion is composed and sized in this process before launch (`feasibility`,
  `sizing`); one over the budget, or one whose model cannot be built, is told to Optuna as
  infeasible at once, never trained, and does not use up `n_trials`, which counts trained trials
  of the *study* (`slots`), so a rerun continues it and several workers stop together;
- the app needs no key of ours: each job learns its trial from its Hydra job config
  (`hydra.job.env_set`, names in `budgetsweep.contract.sweep`), and a record node only where the
  app's config has one;
- a trial runs in `<study dir>/<trial number>/` whatever worker or rerun runs it, so an interrupted
  trial resumes from its own checkpoint (`heartbeat`);
- the pruner is rebuilt by each job from the settings (`trial_reporter`): Optuna keeps no pruner
  in the storage.

Hydra imports this module at every start (pyproject entry point): Hydra only here; Optuna, torch
and the loop load once Hydra creates the sweeper for a multirun. A mistake in the settings is a
`SweeperError` raised from `__init__`: hydra-core 1.4 re-raises a plugin's own exception there, and
a CompactHydraException prints as its message alone.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import BudgetOptunaSweeperConf  # noqa: F401  (importing config registers both sweepers' configs)


class BudgetOptunaSweeper(Sweeper):
    """Thin plugin class: settings checked here, the study run by `budgetsweep.sweeper.study_loop`."""

    def __init__(self, **settings: Any) -> None:
        from .settings import parse_settings

        super().__init__()
        self.settings = parse_settings(settings)
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

        from .composed import composing_once
        from .study_loop import StudyLoop
        from .study_setup import open_sweep, parallelism
        from .trial_task import TrialTask

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None, (
            "setup() first"
        )
        sweep = open_sweep(self.settings, self.config, arguments)
        # the launcher is made once the study's folder is pinned as hydra.sweep.dir, so that its
        # own files (submitit's .submitit/) go there too, not to a timestamped multirun folder;
        # each job notes its SLURM job on its trial before the app's task runs
        # the launcher's config loader hands over each config the loop composed to size it (`composed`)
        launch_context = composing_once(self.hydra_context)
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=launch_context, task_function=TrialTask(self.task_function), config=self.config
        )
        self.parallel = parallelism(self.launcher, self.config, self.settings.n_jobs)
        StudyLoop(self.settings, sweep, launch_context, self.config, self.launcher, self.parallel).run()
