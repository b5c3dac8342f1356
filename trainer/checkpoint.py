"""The last finished epoch, saved atomically so a run killed at any point resumes from it.

A checkpoint is resumed only by the config that wrote it (`config_fingerprint`); the run
deletes it when it ends, its result being in metrics.json by then.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from contract import write_atomic

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """How far a run got: what a checkpoint carries besides the weights and random states."""

    epoch: int = 0  # the last finished epoch
    history: list[dict] = field(default_factory=list)  # one history.csv row per finished epoch
    seconds: float = 0.0  # training and validation, wall clock
    train_seconds: float = 0.0  # training steps only: what images_per_second divides by
    images: int = 0  # training images seen


def config_fingerprint(cfg: DictConfig) -> str:
    """What a checkpoint must match to be resumed: the config, less what does not change results."""
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for key in ("progress", "checkpoint"):
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


def restore_checkpoint(path: Path, fingerprint: str, model, opt, sched, gen) -> Progress:
    """Load `path` into the model, optimizer, schedule and random states when it was written by
    this config; the progress it carries, or a fresh one."""
    if not path.exists():
        return Progress()
    state = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
    if state.get("fingerprint") != fingerprint:
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
