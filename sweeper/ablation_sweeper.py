"""`hydra/sweeper=ablation`: one factor at a time from a baseline, not the cartesian product.

What holds, and why (docs/ablation.md has the how-to): the baseline is the composed config
without the sweep's overrides, run once; each listed value that differs from it runs once per
repeat, changing that one factor, so every run differs from the baseline in at most one key and
a table of effects can be read off directly. Each job's coordinates reach it through its Hydra
job config (environment variables named in `budgetsweep.contract.sweep`) and, only where the
app's config has the record node, through that node: no key of ours is required of an app.

Hydra imports this module at every start (pyproject entry point): Hydra only here; the planning
(`ablation_plan`, pure) and the run (`ablation_run`) load when Hydra creates the sweeper, and
torch only to size the variants.
"""

from __future__ import annotations

from typing import Any, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import AblationSweeperConf  # noqa: F401  (importing config registers both sweepers' configs)


class AblationSweeper(Sweeper):
    """Thin plugin class: settings checked here (`ablation_run.parse_settings`, schema in
    `config.AblationSweeperConf`), the sweep run by `ablation_run.AblationRun`."""

    def __init__(self, **settings: Any) -> None:
        from .ablation_run import parse_settings

        super().__init__()
        self.settings = parse_settings(settings)
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config, self.task_function = hydra_context, config, task_function

    def make_launcher(self) -> Any:
        """The app's launcher, made once the sweep's folder is pinned in the config (a launcher such
        as submitit's takes its own folder from it when it is made)."""
        from hydra.core.plugins import Plugins

        from ._compat import launchers_quiet_on_ctrl_c, quiet_launch_lines, submitit_polls_without_accounting

        assert self.config is not None and self.hydra_context is not None, "setup() first"
        assert self.task_function is not None, "setup() first"
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=self.task_function, config=self.config
        )
        launchers_quiet_on_ctrl_c(self.launcher)  # on Ctrl-C the sweep's one line alone, see ablation_run
        submitit_polls_without_accounting(self.launcher)  # SLURM without sacct: states from squeue
        quiet_launch_lines(drop=False)  # each job's line, without the coordinates we add to it
        return self.launcher

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        from .ablation_run import AblationRun

        assert self.config is not None, "setup() first"
        return AblationRun(self.settings, self.hydra_context, self.config, self.make_launcher).run(arguments)
