"""One training run: epochs over an on-device dataset, validation each epoch, test once.

`fit` is the loop; `train` (trainer/__init__.py) wraps it with the budget check and the
run contract. The loop checkpoints the last finished epoch atomically, so a run killed at
any point resumes from there when started again in the same folder.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import models
from data import DeviceDataset, eval_batches, n_train_batches, train_batches

from contract import CHECKPOINT_FILE, write_atomic, write_history

log = logging.getLogger(__name__)
EpochCallback = Callable[[int, dict], bool]  # (epoch, history row) -> stop now (pruned)?


@dataclass
class FitResult:
    status: str  # completed | diverged | pruned
    history: list[dict] = field(default_factory=list)
    test_loss: float | None = None
    test_acc: float | None = None
    train_seconds: float = 0.0
    images_per_second: float | None = None
    error: str | None = None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise models.ConfigError(f"device: {name!r} asked for but CUDA is not available here (use device=cpu or auto)")
    try:
        return torch.device(name)
    except RuntimeError:
        raise models.ConfigError(f"device: {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device.type}:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return str(device)


def make_optimizer(cfg: DictConfig, params) -> torch.optim.Optimizer:
    o = cfg.optimizer
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
    raise models.ConfigError(f"optimizer.name: unknown optimizer {o.name!r} (adam, adamw, sgd)")


def make_scheduler(cfg: DictConfig, opt: torch.optim.Optimizer, total_steps: int):
    """Stepped once per batch. cosine: linear warm-up then cosine decay to zero."""
    if cfg.scheduler == "none":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    if cfg.scheduler == "cosine":
        warm = int(cfg.warmup_epochs * total_steps / max(cfg.epochs, 1))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.optimizer.lr, total_steps=max(total_steps, 1))
    raise models.ConfigError(f"scheduler: unknown scheduler {cfg.scheduler!r} (none, cosine, onecycle)")


OPTIMIZERS, SCHEDULERS = ("adam", "adamw", "sgd"), ("none", "cosine", "onecycle")


def check_training_config(cfg: DictConfig) -> None:
    """The non-model settings that Hydra's types cannot check; ConfigError names the key."""
    checks = [
        ("optimizer.name", cfg.optimizer.name in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
        ("scheduler", cfg.scheduler in SCHEDULERS, f"one of {', '.join(SCHEDULERS)}"),
        ("batch_size", cfg.batch_size >= 1, "a positive int"),
        ("epochs", cfg.epochs >= 1, "a positive int"),
        ("optimizer.lr", cfg.optimizer.lr > 0, "a positive number"),
        ("label_smoothing", 0 <= cfg.label_smoothing < 1, "in [0, 1)"),
        ("amp", cfg.amp in ("auto", "bf16", "off"), "auto, bf16 or off"),
        ("channels_last", cfg.channels_last in ("auto", "on", "off"), "auto, on or off"),
        ("threads", cfg.threads is None or cfg.threads >= 1, "a positive int or null"),
    ]
    for key, ok, expected in checks:
        if not ok:
            raise models.ConfigError(f"{key}: expected {expected}, got {OmegaConf.select(cfg, key)!r}")


def config_fingerprint(cfg: DictConfig) -> str:
    """What a checkpoint must match to be resumed: the config, less what does not change results."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in ("progress", "checkpoint"):
        plain.pop(key, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


@torch.no_grad()
def evaluate(model, ds: DeviceDataset, x, y, cfg, autocast, memory_format) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a split, without label smoothing."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for xb, yb in eval_batches(ds, x, y, cfg.eval_batch_size, memory_format):
        with autocast():
            logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def channels_last_is_safe(model: torch.nn.Module, device: torch.device) -> bool:
    """False where PyTorch's CPU kernels break on this model in channels_last.

    Seen with torch 2.14.1 (x86_64, oneDNN): the backward pass of a strided convolution with
    2 to 7 input channels in channels_last corrupts memory (segfault, `free(): invalid next
    size`, or a hang). Our ResNet's 1x1 stride-2 shortcut hits it when C < 8."""
    if device.type != "cpu":
        return True
    return not any(isinstance(m, torch.nn.Conv2d) and m.stride != (1, 1) and 2 <= m.in_channels < 8
                   for m in model.modules())


def fit(cfg: DictConfig, ds: DeviceDataset, device: torch.device, run_dir: Path,
        on_epoch: EpochCallback | None = None) -> FitResult:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model = models.create_model(cfg.model)
    use_cl = cfg.channels_last in ("on", "auto")  # auto: measured faster on this CPU (+4..33%) and on GPUs
    if use_cl and not channels_last_is_safe(model, device):
        log.warning("channels_last off: a strided conv with under 8 input channels crashes PyTorch's CPU kernels")
        use_cl = False
    memory_format = torch.channels_last if use_cl else torch.contiguous_format
    use_bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    if use_bf16 and device.type == "cpu":
        log.warning("amp=bf16 on a CPU: without native bf16 this is ~15x slower than float32")

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    model = model.to(device=device, memory_format=memory_format)
    opt = make_optimizer(cfg, model.parameters())
    steps = n_train_batches(len(ds.y_train), cfg.batch_size)
    sched = make_scheduler(cfg, opt, steps * cfg.epochs)
    step_model = torch.compile(model) if cfg.compile else model

    result = FitResult(status="completed")
    start_epoch, images_seen, train_only_seconds = 0, 0, 0.0
    ckpt_path, fingerprint = run_dir / CHECKPOINT_FILE, config_fingerprint(cfg)
    if cfg.checkpoint and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"].cpu())
            torch.set_rng_state(state["torch_rng"].cpu())
            result.history = list(state["history"])
            start_epoch = state["epoch"]
            result.train_seconds, images_seen, train_only_seconds = state["train_seconds"], state["images"], state["train_only_seconds"]
            log.info("resumed from %s at epoch %d", ckpt_path, start_epoch)
        else:
            log.warning("%s belongs to another config; starting from scratch", ckpt_path)

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        bar = tqdm(train_batches(ds, cfg.batch_size, gen, cfg.data.augment, memory_format), total=steps,
                   desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=None if cfg.progress else True)
        for xb, yb in bar:
            with autocast():
                logits = step_model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
            if not torch.isfinite(loss):  # one sync a step: a diverged run must not waste its epochs
                result.status, result.error = "diverged", f"non-finite loss ({loss.item()}) at epoch {epoch}"
                log.warning("run diverged: %s", result.error)
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
        bar.close()
        if result.status == "diverged":
            break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_only_seconds += time.perf_counter() - t0
        images_seen += seen
        val_loss, val_acc = evaluate(model, ds, ds.x_val, ds.y_val, cfg, autocast, memory_format)
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds
        row = dict(epoch=epoch, train_loss=loss_sum.item() / max(seen, 1), train_acc=correct.item() / max(seen, 1),
                   val_loss=val_loss, val_acc=val_acc, lr=opt.param_groups[0]["lr"], seconds=round(seconds, 3))
        result.history.append(row)
        write_history(run_dir, result.history)
        log.info("epoch %d/%d train_loss %.4f train_acc %.4f val_loss %.4f val_acc %.4f (%.1fs)", epoch, cfg.epochs,
                 row["train_loss"], row["train_acc"], val_loss, val_acc, seconds)
        if cfg.checkpoint and epoch < cfg.epochs:
            save_checkpoint(ckpt_path, fingerprint, epoch, model, opt, sched, gen, result, images_seen, train_only_seconds)
        if on_epoch is not None and on_epoch(epoch, row):
            result.status = "pruned"
            log.info("pruned after epoch %d", epoch)
            break

    result.images_per_second = images_seen / train_only_seconds if train_only_seconds > 0 else None
    if result.status != "diverged":
        result.test_loss, result.test_acc = evaluate(model, ds, ds.x_test, ds.y_test, cfg, autocast, memory_format)
    ckpt_path.unlink(missing_ok=True)  # the run is over: its result is in metrics.json
    return result


def save_checkpoint(path: Path, fingerprint: str, epoch: int, model, opt, sched, gen, result: FitResult,
                    images_seen: int, train_only_seconds: float) -> None:
    import io

    buf = io.BytesIO()
    torch.save(dict(fingerprint=fingerprint, epoch=epoch, model=model.state_dict(), optimizer=opt.state_dict(),
                    scheduler=sched.state_dict(), generator=gen.get_state(), torch_rng=torch.get_rng_state(),
                    history=result.history, train_seconds=result.train_seconds, images=images_seen,
                    train_only_seconds=train_only_seconds), buf)
    write_atomic(path, buf.getvalue())
