"""Each trial's config composed once.

The sweeper composes a trial's config to size it before launch (`budgetsweep.sweeper.feasibility`);
the launcher then composes the same overrides again (`ConfigLoader.load_sweep_config`), which
for an instant trial was about half of what the sweeper spent on it. `ComposedOnce` stands in
for the launcher's config loader (the `config_loader` of the HydraContext it is given) and hands
it the config already composed for those overrides, once; anything else goes to Hydra's loader.

Each is composed from the config composed before it where that gives the same
(`budgetsweep.sweeper.job_templates`): Hydra composes only the first of each shape of overrides.

A launcher that composes in another process (joblib's workers, submitit's jobs) gets a copy of
this loader without the kept configs, and composes there as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from hydra.types import HydraContext
from omegaconf import DictConfig

from .job_templates import JobTemplates

KEEP = 64  # composed configs kept for launch: suggestions sized but never launched (over budget) fall out


class ComposedOnce:
    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.kept: OrderedDict[tuple[str, ...], DictConfig] = OrderedDict()
        self.lock = threading.Lock()  # launches run in a thread pool
        self.templates = JobTemplates()

    def compose(self, master_config: DictConfig, overrides: list[str]) -> DictConfig:
        """The job's config for these overrides, kept for the launcher's own call."""
        cfg = self.templates.compose(self.loader, master_config, overrides)
        with self.lock:
            self.kept[tuple(overrides)] = cfg
            while len(self.kept) > KEEP:
                self.kept.popitem(last=False)
        return cfg

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        with self.lock:
            cfg = self.kept.pop(tuple(sweep_overrides), None)
        return cfg if cfg is not None else self.loader.load_sweep_config(master_config, sweep_overrides)

    def __getattr__(self, name: str) -> Any:  # the rest of Hydra's ConfigLoader
        return getattr(self.__dict__["loader"], name)

    def __getstate__(self) -> dict:
        return {"loader": self.loader}  # pickled for another process: nothing kept, no lock

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["loader"])  # type: ignore[misc]


def composing_once(hydra_context: HydraContext) -> HydraContext:
    """A HydraContext for the sweeper and its launcher whose config loader hands the launcher what
    the sweeper composed (`budgetsweep.sweeper.feasibility.compose`)."""
    loader: Any = ComposedOnce(hydra_context.config_loader)  # duck-typed: Hydra's loader for everything else
    return replace(hydra_context, config_loader=loader)
