"""What a trial's job runs: the app's task function, after noting on the trial the SLURM job it runs in.

The Optuna sweeper hands its launcher `TrialTask(task_function)` instead of the app's function,
so this runs in every job's process, whatever the app and the launcher. Inside a SLURM job
(`SLURM_JOB_ID` in the environment, `contract.sweep.slurm_job_id`) it sets the trial's system
attribute SLURM_JOB, from which the sweeper names the job in the trial's end line and in its
`sweep_record.json` (run.py records it in metrics.json itself: `trainer.provenance`). A requeued
job (a time limit, a preemption) sets the same id again. Outside SLURM it does nothing, and
touches no storage; a storage it cannot reach costs one warning, never the trial.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from hydra.types import TaskFunction

from budgetsweep.contract import first_line
from budgetsweep.contract.sweep import SLURM_JOB, slurm_job_id

log = logging.getLogger(__name__)


class TrialTask:
    """The app's task function, called as it is; picklable, as launchers that start other processes need."""

    def __init__(self, task_function: TaskFunction) -> None:
        self.task_function = task_function

    def __call__(self, cfg: Any) -> Any:
        note_slurm_job()
        return self.task_function(cfg)


def note_slurm_job() -> str | None:
    """Set this job's SLURM job id on its trial (inside a trial of our sweeper, in a SLURM job);
    the id, or None where there is none to note."""
    job = slurm_job_id(os.environ)
    if job is None:
        return None
    from .trial_reporter import current_trial

    info = current_trial()
    if info is None:
        return None
    try:
        from budgetsweep.contract.storage import scrub

        from .optuna_storage import make_storage

        storage = make_storage(info.storage, existing=True)
        study_id = storage.get_study_id_from_name(info.study)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, info.number)
        storage.set_trial_system_attr(trial_id, SLURM_JOB, job)
    except Exception as e:
        log.warning("trial %d: cannot note SLURM job %s on the trial: %s", info.number, job, scrub(first_line(e)))
        return None
    return job
