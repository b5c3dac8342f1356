"""`SweepSummary`: a Hydra callback that gives Hydra's own sweepers (a grid, `-m a=1,2 b=x,y`)
what our sweepers do themselves: every job recorded in the run contract, and a summary at the
end of the multirun. run.py's config enables it; any app adds it to its config:

    hydra:
      callbacks:
        sweep_summary:
          _target_: budgetsweep.sweeper.callbacks.SweepSummary
          objective: val_loss        # optional: the name of what the task returns
          direction: minimize        # optional: default the contract's for the name, else minimize

What holds: a job of our sweepers is left to them (they record and summarise their own: the
job's environment says which); a job that wrote run.py's metrics.json is not recorded again; a
job of any other app gets `sweep_record.json` from what it returned (`on_job_end`, in the job's
process, so under every launcher). At the end, one line of counts by status, the best run
(`contract.sweep.best_run`) with its folder, and the analysis command (`on_multirun_end`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from budgetsweep.contract.record import new_record
from budgetsweep.contract.sweep import ABLATION_ENV, DIRECTIONS, TRIAL_ENV, declared_direction

from ._compat import job_error
from .ablation_record import is_hydra, job_outcome, objective_of, record_job
from .sweep_summary import analyze_line, best_line, read_runs, status_line

log = logging.getLogger(__name__)

OURS = (TRIAL_ENV, ABLATION_ENV["baseline"])  # set in the jobs of our sweepers


class SweepSummary(Callback):
    def __init__(self, objective: str | None = None, direction: str | None = None) -> None:
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"hydra.callbacks.sweep_summary.direction: {direction!r} is not one of {DIRECTIONS}")
        self.objective, self.direction = objective, direction
        self.started: float | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not _in_multirun(config) or _ours(config):
            return
        if job_return.status == JobStatus.FAILED and isinstance(job_error(job_return), KeyboardInterrupt):
            return  # interrupted, not ended: the rerun resumes it, nothing to record
        run_dir = Path(config.hydra.runtime.output_dir)
        objective = objective_of(self.objective, self.direction, config)
        status, value, values, error = job_outcome(job_return, objective.name)
        seconds = None if self.started is None else round(time.monotonic() - self.started, 3)
        overrides = [str(o) for o in job_return.overrides or [] if not is_hydra(str(o))]
        record = new_record(
            status=status,
            objective=value,
            objective_name=objective.name,
            metrics=values,
            directions={objective.name: objective.direction},
            overrides=overrides,
            error=error,
            train_seconds=seconds,
        )
        try:
            record_job(run_dir, record, raised=job_return.status == JobStatus.FAILED)
        except OSError as e:  # the job's result is what it returned; only the file is missing
            log.warning("%s: cannot write its record: %s", run_dir, e)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _sweeper_is_ours(config):
            return  # our sweepers end with their own summary
        sweep_dir = Path(config.hydra.sweep.dir)
        runs = read_runs(sweep_dir)
        if not runs:
            return
        records = [record for _, record in runs]
        folders = sum(1 for p in sweep_dir.iterdir() if (p / ".hydra").is_dir())
        name = _objective_name(records, self.objective, config)
        direction = self.direction or declared_direction(records) or objective_of(name, None, config).direction
        for line in (
            status_line("Sweep", records, folders),
            best_line(runs, name, direction, _cell_of(records)),
            analyze_line(sweep_dir),
        ):
            if line:
                log.info(line)


def _in_multirun(config: DictConfig) -> bool:
    mode = OmegaConf.select(config, "hydra.mode", default=None)
    return str(getattr(mode, "name", mode)) == "MULTIRUN"


def _ours(config: DictConfig) -> bool:
    """The job runs under one of our sweepers: they record it themselves."""
    env = OmegaConf.select(config, "hydra.job.env_set", default=None) or {}
    return any(key in env or key in os.environ for key in OURS)


def _sweeper_is_ours(config: DictConfig) -> bool:
    target = OmegaConf.select(config, "hydra.sweeper._target_", default="") or ""
    return str(target).startswith("budgetsweep.")


def _objective_name(records: list[dict], given: str | None, config: DictConfig) -> str:
    if given:
        return given
    names = {str(r["objective_name"]) for r in records if isinstance(r.get("objective_name"), str)}
    if len(names) == 1:
        return names.pop()
    return objective_of(None, None, config).name


def _cell_of(records: list[dict]):
    """A grid cell by the overrides that vary between its runs, as typed."""
    lists = [[o for o in record.get("overrides") or [] if not is_hydra(o)] for record in records]
    shared = set.intersection(*map(set, lists)) if lists else set()

    def described(record: dict) -> str:
        own = [o for o in record.get("overrides") or [] if not is_hydra(o) and o not in shared]
        return " ".join(own) or "the config as it is"

    return described
