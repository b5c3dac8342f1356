"""Training: `train(cfg, run_dir)` runs one config and writes the run contract.

Order of checks, cheapest first: the model config (invalid), its size against the budget
(over_budget: never trained), the data (DataError is the caller's to report), then `fit`.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import DictConfig

import models
from data import DataError, load_dataset

from contract import SCHEMA_VERSION, read_metrics, write_history, write_metrics
from .loop import EpochCallback, check_training_config, describe_device, fit, pick_device
from .schema import TrainConfig, register_configs

__all__ = ["DataError", "TrainConfig", "read_metrics", "register_configs", "train"]
log = logging.getLogger(__name__)


def _base_metrics(cfg: DictConfig, overrides: Sequence[str]) -> dict:
    sweep = cfg.sweep
    return dict(
        schema_version=SCHEMA_VERSION, status=None, objective=None, val_acc=None, best_epoch=None,
        final_val_acc=None, final_val_loss=None, test_acc=None, test_loss=None, params=None, flops=None,
        max_params=cfg.budget.max_params, epochs=0, epochs_planned=cfg.epochs, train_seconds=0.0,
        images_per_second=None, device=None, seed=cfg.seed, overrides=list(overrides), error=None,
        trial=sweep.trial, study=sweep.study, factor=sweep.factor, value=sweep.value,
        baseline=sweep.baseline, repeat=sweep.repeat, torch_version=torch.__version__,
    )


def _finish(run_dir: Path, metrics: dict, status: str, error: str | None = None) -> dict:
    metrics.update(status=status, error=error)
    write_metrics(run_dir, metrics)
    return metrics


def train(cfg: DictConfig, run_dir: str | Path, on_epoch: EpochCallback | None = None,
          overrides: Sequence[str] = ()) -> dict:
    """Train one config, write metrics.json and history.csv in run_dir, return the metrics.

    Never raises for a config that cannot be built (status invalid) or is over the budget
    (status over_budget), nor for a diverged run. Raises DataError for data that cannot be
    loaded, and re-raises any other exception after recording status failed."""
    run_dir = Path(run_dir)
    metrics = _base_metrics(cfg, overrides)
    try:
        check_training_config(cfg)
        if cfg.objective not in metrics:
            raise models.ConfigError(f"objective: {cfg.objective!r} is not a key of metrics.json")
        spec = models.resolve_model_config(cfg.model)  # checked once, then sized
        metrics["params"] = models.count_params(spec)
        metrics["flops"] = models.count_flops(spec)
        device = pick_device(cfg.device)
    except models.ConfigError as e:  # reported by the caller: one line, or a row of the sweep
        return _finish(run_dir, metrics, "invalid", str(e))
    if metrics["params"] > cfg.budget.max_params:
        msg = f"{metrics['params']:,} parameters > budget.max_params={cfg.budget.max_params:,}: not trained"
        return _finish(run_dir, metrics, "over_budget", msg)
    metrics["device"] = describe_device(device)

    try:
        ds = load_dataset(cfg.data, device)
        if ds.num_classes > spec.num_classes or ds.image_shape != (spec.in_channels, spec.image_size, spec.image_size):
            raise models.ConfigError(
                f"model: expects {spec.num_classes} classes of {spec.in_channels}x{spec.image_size}x{spec.image_size} "
                f"images, the data has {ds.num_classes} classes of {'x'.join(map(str, ds.image_shape))} "
                f"(set model.num_classes / model.in_channels / model.image_size)"
            )
        log.info("%s: %d train / %d val / %d test images on %s; model %s, %s params",
                 cfg.data.name, len(ds.y_train), len(ds.y_val), len(ds.y_test), metrics["device"],
                 cfg.model.name, f"{metrics['params']:,}")
        result = fit(cfg, ds, device, run_dir, on_epoch)
    except DataError as e:
        _finish(run_dir, metrics, "failed", str(e))
        raise
    except models.ConfigError as e:
        return _finish(run_dir, metrics, "invalid", str(e))
    except Exception as e:
        _finish(run_dir, metrics, "failed", f"{type(e).__name__}: {e}")
        raise

    history = result.history
    if history:
        best = max(history, key=lambda r: r["val_acc"])
        metrics.update(val_acc=best["val_acc"], best_epoch=best["epoch"],
                       final_val_acc=history[-1]["val_acc"], final_val_loss=history[-1]["val_loss"])
    else:
        write_history(run_dir, history)  # the header alone: the file always exists
    metrics.update(
        objective=metrics.get(cfg.objective) if result.status == "completed" else None,
        epochs=len(history), test_acc=result.test_acc, test_loss=result.test_loss,
        train_seconds=round(result.train_seconds, 3), images_per_second=result.images_per_second,
    )
    return _finish(run_dir, metrics, result.status, result.error)
