"""One training run: epochs over an on-device dataset, validation each epoch, test once.

`fit` is the epoch loop; `train` (trainer/__init__.py) wraps it with the checks and the run
contract. The loop checkpoints the last finished epoch, so a run killed at any point resumes
from there when started again in the same folder.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm import tqdm

from budgetsweep.contract import CHECKPOINT_FILE, write_history
from budgetsweep.data import DeviceDataset, eval_batches, n_train_batches, train_batches

from .build import Setup, build_model, make_optimizer, make_scheduler, resolve_threads
from .checkpoint import Progress, config_fingerprint, restore_checkpoint, save_checkpoint
from .weights import KeptWeights

log = logging.getLogger(__name__)
EpochCallback = Callable[[int, dict], bool]  # (epoch, history row) -> stop now (pruned)?
# Steps between reads of the device-side non-finite flag: a read waits for the device, and a
# diverged run wastes at most this many steps (on NaN weights) before it stops.
NONFINITE_CHECK_STEPS = 20


@dataclass
class FitResult:
    status: str  # completed | diverged | pruned
    history: list[dict] = field(default_factory=list)
    test_loss: float | None = None
    test_acc: float | None = None
    test_epoch: int | None = None  # the epoch whose weights were tested (save_weights)
    train_seconds: float = 0.0
    images_per_second: float | None = None
    error: str | None = None


class Diverged(Exception):
    """A non-finite training loss: the run ends, its epochs would be wasted."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `fit`: still a KeyboardInterrupt (a sweeper stops on it), which also says
    in which epoch and which epoch the checkpoint holds (0: none), for the one line the user reads."""

    def __init__(self, epoch: int, epochs: int, saved: int) -> None:
        super().__init__(f"interrupted in epoch {epoch} of {epochs}")
        self.epoch, self.epochs, self.saved = epoch, epochs, saved


@torch.no_grad()
def evaluate(setup: Setup, ds: DeviceDataset, x, y, batch_size: int) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over a split, without label smoothing."""
    setup.model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for xb, yb in eval_batches(ds, x, y, batch_size, setup.memory_format):
        with setup.autocast():
            logits = setup.model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    n = max(len(y), 1)
    return loss_sum.item() / n, correct.item() / n


def train_epoch(cfg: DictConfig, setup: Setup, ds: DeviceDataset, opt, sched, gen, epoch: int) -> dict:
    """One pass over the training split; the history row's train_* figures and `images`.

    No step waits for the device: the loss, the accuracy and a non-finite flag accumulate
    there, and the flag is read every NONFINITE_CHECK_STEPS steps and at the end, so a
    diverged run raises Diverged within that many steps."""
    setup.model.train()
    loss_sum = torch.zeros((), device=setup.device)
    correct = torch.zeros((), device=setup.device, dtype=torch.long)
    nonfinite = torch.zeros((), device=setup.device, dtype=torch.bool)
    seen = checked = 0
    batches = train_batches(ds, cfg.batch_size, gen, cfg.data.augment, setup.memory_format)
    with tqdm(
        batches,
        total=n_train_batches(len(ds.y_train), cfg.batch_size),
        desc=f"epoch {epoch}/{cfg.epochs}",
        leave=False,
        disable=None if cfg.progress else True,
    ) as bar:
        for step, (xb, yb) in enumerate(bar, 1):
            with setup.autocast():
                logits = setup.step_model(xb)
                loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
            nonfinite |= ~torch.isfinite(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(yb)
            correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
            if step % NONFINITE_CHECK_STEPS == 0:
                _raise_if_diverged(nonfinite, epoch, checked, step)
                checked = step
    _raise_if_diverged(nonfinite, epoch, checked, n_train_batches(len(ds.y_train), cfg.batch_size))
    return dict(train_loss=loss_sum.item() / max(seen, 1), train_acc=correct.item() / max(seen, 1), images=seen)


def _raise_if_diverged(nonfinite: torch.Tensor, epoch: int, after_step: int, to_step: int) -> None:
    if nonfinite.item():  # the one host sync, every NONFINITE_CHECK_STEPS steps
        raise Diverged(f"non-finite loss at epoch {epoch}, between steps {after_step + 1} and {to_step}")


def fit(
    cfg: DictConfig, ds: DeviceDataset, device: torch.device, run_dir: Path, on_epoch: EpochCallback | None = None
) -> FitResult:
    """Train `cfg.epochs` epochs (fewer when resumed, diverged or pruned), then test once.
    Ctrl-C raises Interrupted (a KeyboardInterrupt) saying which epoch the checkpoint holds."""
    # tqdm's default lock includes a multiprocessing one, a named semaphore in a spawned process
    # (joblib's workers): a worker killed on Ctrl-C leaks it, and Python's resource tracker warns
    # at exit. One process draws its own bars only: a thread lock is enough.
    tqdm.set_lock(threading.RLock())
    threads = resolve_threads(cfg.threads)
    if threads:
        torch.set_num_threads(threads)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    total_steps = n_train_batches(len(ds.y_train), cfg.batch_size) * cfg.epochs
    setup = build_model(cfg, device, planned_steps=total_steps)
    opt = make_optimizer(cfg.optimizer, setup.model.parameters())
    sched = make_scheduler(cfg, opt, total_steps)
    ckpt_path, fingerprint = run_dir / CHECKPOINT_FILE, config_fingerprint(cfg)
    progress = Progress()
    if cfg.checkpoint:
        progress = restore_checkpoint(ckpt_path, fingerprint, setup.model, opt, sched, gen)
    kept = KeptWeights(cfg, run_dir, ds, progress.history)

    result = FitResult(status="completed")
    saved = progress.epoch if cfg.checkpoint else 0  # the epoch checkpoint.pt holds
    try:
        for epoch in range(progress.epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            try:
                train_row = train_epoch(cfg, setup, ds, opt, sched, gen, epoch)
            except Diverged as e:
                result.status, result.error = "diverged", str(e)
                log.warning("run diverged: %s", e)
                break
            progress.train_seconds += time.perf_counter() - t0
            progress.images += train_row.pop("images")
            val_loss, val_acc = evaluate(setup, ds, ds.x_val, ds.y_val, cfg.eval_batch_size)
            seconds = time.perf_counter() - t0
            row = dict(
                epoch=epoch,
                **train_row,
                val_loss=val_loss,
                val_acc=val_acc,
                lr=opt.param_groups[0]["lr"],
                seconds=round(seconds, 3),
            )
            progress.epoch, progress.seconds = epoch, progress.seconds + seconds
            progress.history.append(row)
            write_history(run_dir, progress.history)
            kept.epoch_done(setup.model, row)
            log.info(
                "epoch %d/%d train_loss %.4f train_acc %.4f val_loss %.4f val_acc %.4f (%.1fs)",
                epoch,
                cfg.epochs,
                row["train_loss"],
                row["train_acc"],
                val_loss,
                val_acc,
                seconds,
            )
            if cfg.checkpoint and epoch < cfg.epochs:
                save_checkpoint(ckpt_path, fingerprint, progress, setup.model, opt, sched, gen)
                saved = epoch
            if on_epoch is not None and on_epoch(epoch, row):
                result.status = "pruned"
                log.info("pruned after epoch %d", epoch)
                break
    except KeyboardInterrupt:  # the checkpoint holds `saved`; the caller says so in one line
        raise Interrupted(progress.epoch + 1, cfg.epochs, saved) from None

    result.history, result.train_seconds = progress.history, progress.seconds
    result.images_per_second = progress.images / progress.train_seconds if progress.train_seconds > 0 else None
    if result.status != "diverged":
        result.test_epoch = kept.restore(setup.model, progress.epoch)  # test what is kept
        result.test_loss, result.test_acc = evaluate(setup, ds, ds.x_test, ds.y_test, cfg.eval_batch_size)
    ckpt_path.unlink(missing_ok=True)  # the run is over: its result is in metrics.json
    return result
