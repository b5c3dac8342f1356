"""The last finished epoch, saved atomically so a run killed at any point resumes from it.

A checkpoint is resumed only by the config that wrote it (`config_fingerprint`); the run
deletes it when it ends, its result being in metrics.json by then. One that cannot be read
(truncated, empty, not a checkpoint) is set aside as `checkpoint.pt.unreadable` and the run
starts over, with a warning naming it; the temporary files of a write that was killed
midway are removed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from budgetsweep.contract import first_line, write_atomic
from budgetsweep.contract.run import partial_writes

log = logging.getLogger(__name__)
UNREADABLE_SUFFIX = ".unreadable"  # checkpoint.pt.unreadable: set aside, kept for a look
# The parts a checkpoint must have; restore loads each.
STATE_KEYS = ("fingerprint", "progress", "model", "optimizer", "scheduler", "generator", "torch_rng")


@dataclass
class Progress:
    """How far a run got: what a checkpoint carries besides the weights and random states."""

    epoch: int = 0  # the last finished epoch
    history: list[dict] = field(default_factory=list)  # one history.csv row per finished epoch
    seconds: float = 0.0  # training and validation, wall clock
    train_seconds: float = 0.0  # training steps only: what images_per_second divides by
    images: int = 0  # training images seen


def config_fingerprint(cfg: DictConfig) -> str:
    """What a checkpoint must match to be resumed: the config, less what does not change results
    (the progress bar, checkpointing itself, which trackers watch, the run's tags)."""
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for key in ("progress", "checkpoint", "logger", "tags"):
        plain.pop(key, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, fingerprint: str, progress: Progress, model, opt, sched, gen) -> None:
    buf = io.BytesIO()
    torch.save(
        dict(
            fingerprint=fingerprint,
            progress=vars(progress),
            model=model.state_dict(),
            optimizer=opt.state_dict(),
            scheduler=sched.state_dict(),
            generator=gen.get_state(),
            torch_rng=torch.get_rng_state(),
        ),
        buf,
    )
    write_atomic(path, buf.getvalue())


def _load_state(path: Path, device) -> dict:
    """The checkpoint's contents; ValueError saying why when it is not a whole checkpoint."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except torch.cuda.OutOfMemoryError:
        raise  # the file is fine, the device is full
    except (EOFError, OSError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        # empty: EOFError; cut short: RuntimeError or OSError (Invalid argument); other bytes: KeyError
        raise ValueError(f"{type(e).__name__}: {first_line(e) or 'cut short'}") from None
    if not isinstance(state, dict) or not all(k in state for k in STATE_KEYS):
        raise ValueError(f"not a checkpoint of this trainer (keys {STATE_KEYS})")
    return state


def set_aside(path: Path, reason: str) -> Path:
    """Rename an unreadable checkpoint out of the way, so every later run does not trip on it."""
    aside = path.with_name(path.name + UNREADABLE_SUFFIX)
    os.replace(path, aside)
    log.warning("%s is unreadable (%s); set aside as %s, starting from epoch 1", path, reason, aside.name)
    return aside


def restore_checkpoint(path: Path, fingerprint: str, model, opt, sched, gen) -> Progress:
    """Load `path` into the model, optimizer, schedule and random states when it was written by
    this config; the progress it carries, or a fresh one. An unreadable checkpoint is set
    aside (`set_aside`) and the temporary files of a killed write are removed first."""
    for partial in partial_writes(path):
        partial.unlink(missing_ok=True)
        log.warning("removed %s, left by a checkpoint write that was killed midway", partial)
    if not path.exists():
        return Progress()
    try:
        state = _load_state(path, next(model.parameters()).device)
    except ValueError as e:
        set_aside(path, str(e))
        return Progress()
    if state["fingerprint"] != fingerprint:
        log.warning("%s belongs to another config; starting from scratch", path)
        return Progress()
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    progress = Progress(**state["progress"])
    log.info("resumed from %s at epoch %d", path, progress.epoch)
    return progress
