"""`train(cfg, run_dir)`: one config trained, the run contract written.

Order, cheapest first: the training settings and the loggers (invalid), the model against the
budget (`models.check_budget`: invalid or over_budget, never trained), the data (DataError is
the caller's to report), then `fit` (weights.pt kept, see `weights`; the trackers fed each
epoch, see `trackers`), then metrics.json (with provenance: `provenance`). The whole run is
registered with the other training jobs of this machine (`cores`): threads=auto and the GPU a
job takes count them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from budgetsweep import models
from budgetsweep.contract import SWEEP_FIELDS, WEIGHTS_FILE, new_metrics, write_history, write_metrics
from budgetsweep.data import DataError, DeviceDataset, load_dataset

from .build import auto_threads, auto_trials_per_gpu, check_optimizer, describe_device, pick_device, wants_gpu_slot
from .checkpoint import config_fingerprint
from .cores import Entry, registered
from .loop import EpochCallback, FitResult, fit
from .provenance import provenance
from .schema import TrainConfigError, validate
from .trackers import Trackers, build_trackers

log = logging.getLogger(__name__)


def sweep_coordinates(cfg: DictConfig) -> dict:
    """Where the job sits in a sweep, as the sweepers set it: the contract's fields of `cfg.sweep`."""
    sweep = OmegaConf.to_container(cfg.sweep)
    return {key: sweep[key] for key in SWEEP_FIELDS if key in sweep}


def check_data_fits_model(model_cfg: DictConfig, ds: DeviceDataset) -> None:
    spec = models.resolve_model_config(model_cfg)
    if ds.num_classes > spec.num_classes or ds.image_shape != (spec.in_channels, spec.image_size, spec.image_size):
        raise TrainConfigError(
            f"model: expects {spec.num_classes} classes of {spec.in_channels}x{spec.image_size}x{spec.image_size} "
            f"images, the data has {ds.num_classes} classes of {'x'.join(map(str, ds.image_shape))} "
            f"(set model.num_classes / model.in_channels / model.image_size)"
        )


def record_result(metrics: dict, result: FitResult, objective: str) -> None:
    history = result.history
    if history:
        best = max(history, key=lambda r: r["val_acc"])
        metrics.update(
            val_acc=best["val_acc"],
            best_epoch=best["epoch"],
            final_val_acc=history[-1]["val_acc"],
            final_val_loss=history[-1]["val_loss"],
        )
    metrics.update(
        epochs=len(history),
        test_acc=result.test_acc,
        test_loss=result.test_loss,
        test_epoch=result.test_epoch,
        train_seconds=round(result.train_seconds, 3),
        images_per_second=result.images_per_second,
    )
    metrics["objective"] = metrics[objective] if result.status == "completed" else None


def _finish(run_dir: Path, metrics: dict, status: str, error: str | None = None) -> dict:
    metrics.update(status=status, error=error)
    write_metrics(run_dir, metrics)
    return metrics


def train(
    cfg: DictConfig, run_dir: str | Path, on_epoch: EpochCallback | None = None, overrides: Sequence[str] = ()
) -> dict:
    """Train one config, write metrics.json and history.csv in run_dir, return the metrics.

    Never raises for a config that cannot be built or trained (status invalid) or is over the
    budget (status over_budget), nor for a diverged run. Raises DataError for data that cannot
    be loaded, and re-raises any other exception after recording status failed."""
    with registered(cfg.get("threads"), gpu=wants_gpu_slot(str(cfg.get("device")))) as job:
        return _train(cfg, Path(run_dir), on_epoch, overrides, job)


def _train(
    cfg: DictConfig, run_dir: Path, on_epoch: EpochCallback | None, overrides: Sequence[str], job: Entry | None
) -> dict:
    metrics = new_metrics(
        max_params=cfg.budget.max_params,
        max_flops=cfg.budget.max_flops,
        epochs_planned=cfg.epochs,
        seed=cfg.seed,
        overrides=list(overrides),
        tags=list(cfg.tags),
        torch_version=torch.__version__,
        **provenance(),
        **sweep_coordinates(cfg),
    )
    try:
        validate(cfg)
        device = pick_device(cfg.device, job.slot if job else None, lambda: auto_trials_per_gpu(cfg))
        check_optimizer(cfg.optimizer)
        trackers = Trackers(build_trackers(cfg), run_dir, config_fingerprint(cfg))
    except TrainConfigError as e:  # reported by the caller: one line, or a row of the sweep
        return _finish(run_dir, metrics, "invalid", str(e))

    sizing = models.check_budget(cfg.model, cfg.budget.max_params, cfg.budget.max_flops)
    metrics.update(params=sizing.params, flops=sizing.flops)
    if not sizing.fits:
        error = sizing.error if sizing.status == "invalid" else f"{sizing.error}: not trained"
        return _finish(run_dir, metrics, sizing.status, error)

    metrics["device"] = describe_device(device)
    try:
        ds = load_dataset(cfg.data, device)
        check_data_fits_model(cfg.model, ds)
        log.info(
            "%s: %d train / %d val / %d test images on %s; model %s, %s params",
            cfg.data.name,
            len(ds.y_train),
            len(ds.y_val),
            len(ds.y_test),
            metrics["device"],
            cfg.model.name,
            f"{metrics['params']:,}",
        )
        if cfg.threads == "auto":  # fit sets them; said here, with why
            log.info("threads: %d (%d cores shared by %d training jobs on this machine)", *auto_threads())
        trackers.start(cfg)
        result = fit(cfg, ds, device, run_dir, _both(trackers.on_epoch, on_epoch, cfg.threads == "auto"))
    except DataError as e:
        _finish(run_dir, metrics, "failed", str(e))
        raise
    except TrainConfigError as e:
        return _finish(run_dir, metrics, "invalid", str(e))
    except Exception as e:
        trackers.end(_finish(run_dir, metrics, "failed", f"{type(e).__name__}: {e}"))
        raise

    if not result.history:
        write_history(run_dir, result.history)  # the header alone: the file always exists
    record_result(metrics, result, cfg.objective)
    metrics["weights"] = WEIGHTS_FILE if (run_dir / WEIGHTS_FILE).is_file() and cfg.save_weights != "none" else None
    trackers.end(_finish(run_dir, metrics, result.status, result.error))  # after weights.pt and metrics.json
    return metrics


def _both(log_epoch, on_epoch: EpochCallback | None, auto_threads_now: bool = False) -> EpochCallback:
    """The trackers first (so a pruned or killed epoch is logged), then the caller's callback;
    with threads=auto, the threads for the next epoch (jobs may have started or ended meanwhile)."""

    def call(epoch: int, row: dict) -> bool:
        log_epoch(epoch, row)
        if auto_threads_now:
            _retune_threads()
        return bool(on_epoch(epoch, row)) if on_epoch is not None else False

    return call


def _retune_threads() -> None:
    threads, n_cores, jobs = auto_threads()
    if threads != torch.get_num_threads():
        log.info(
            "threads: %d -> %d (%d cores shared by %d training jobs on this machine)",
            torch.get_num_threads(),
            threads,
            n_cores,
            jobs,
        )
        torch.set_num_threads(threads)
