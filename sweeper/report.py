"""The job's side of pruning: report each epoch to the job's own trial, stop when told to.

`run.py` asks `epoch_reporter(cfg)` for the trainer's `on_epoch` callback. In a trial of the
Optuna sweeper (`cfg.sweep.trial` set, `hydra.sweeper` ours) it returns a callable that loads
the study from the sweeper's storage (the URL each job gets, password masked, see
`contract.storage`), rebuilds the configured pruner (Optuna does not keep the pruner in the
storage: a study loaded without one would silently use MedianPruner's defaults), reports
the epoch's validation accuracy as the trial's intermediate value and returns
`trial.should_prune()`. Works in any process that can reach the storage (basic launcher,
joblib workers, SLURM jobs). Importing this module is light: Optuna is loaded on the first
epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from contract import first_line

log = logging.getLogger("sweeper.report")

PRUNER_WHITELIST = ("optuna.pruners.*", "sweeper.*")


def build_pruner(pruner_cfg: Any):
    """The configured pruner (`_target_` under optuna.pruners), NopPruner when null. Used by the
    sweeper (to check it before any trial) and by each job."""
    import optuna
    from hydra.utils import instantiate

    from .errors import SweeperError

    if pruner_cfg is None:
        return optuna.pruners.NopPruner()
    try:
        pruner = instantiate(pruner_cfg, _execution_whitelist_=PRUNER_WHITELIST)
    except Exception as e:
        raise SweeperError(f"hydra.sweeper.pruner: {first_line(e)}") from None
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise SweeperError(f"hydra.sweeper.pruner: {type(pruner).__name__} is not an optuna pruner")
    return pruner


def epoch_reporter(cfg: Any) -> Callable[[int, dict], bool] | None:
    """The trainer's on_epoch callback for an Optuna trial; None outside one."""
    if cfg.sweep.trial is None or cfg.sweep.study is None:
        return None
    from hydra.core.hydra_config import HydraConfig

    try:
        sweeper_cfg = HydraConfig.get().sweeper
    except ValueError:  # no Hydra config: not a Hydra job
        return None
    if sweeper_cfg is None or "pruner" not in sweeper_cfg or not sweeper_cfg.get("storage"):
        return None  # another sweeper, or a trial run again by hand: nothing to report to
    key = cfg.objective if cfg.objective in ("val_acc", "val_loss") else "val_acc"
    return TrialReporter(sweeper_cfg.storage, cfg.sweep.study, int(cfg.sweep.trial), sweeper_cfg.pruner, key)


class TrialReporter:
    """on_epoch(epoch, row) -> stop now? Reporting problems never stop training: a job whose
    storage is unreachable logs one warning and trains to the end."""

    def __init__(self, storage_url: str, study_name: str, number: int, pruner_cfg: Any, key: str = "val_acc"):
        self.storage_url, self.study_name, self.number = storage_url, study_name, number
        self.pruner_cfg, self.key = pruner_cfg, key
        self.trial = None
        self.broken = False

    def connect(self):
        import optuna

        from .storage import make_storage

        storage = make_storage(self.storage_url)
        study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(),
            pruner=build_pruner(self.pruner_cfg),
        )
        study_id = storage.get_study_id_from_name(self.study_name)
        return optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, self.number))

    def __call__(self, epoch: int, row: dict) -> bool:
        if self.broken:
            return False
        try:
            if self.trial is None:
                self.trial = self.connect()
            self.trial.report(float(row[self.key]), epoch)
            prune = bool(self.trial.should_prune())
        except Exception as e:
            from contract.storage import scrub

            self.broken = True
            msg = scrub(first_line(e))
            log.warning("trial %d: cannot report to the study (%s); training on without pruning", self.number, msg)
            return False
        if prune:
            log.info(
                "trial %d: the pruner stops it after epoch %d (%s %.4f)", self.number, epoch, self.key, row[self.key]
            )
        return prune
