"""The kept weights: `weights.pt` in the run folder, what outlives the run.

`save_weights: best` (the default) keeps the weights of the best validation epoch, the epoch
the objective comes from; `last` the last epoch's; `none` nothing. The file is rewritten
atomically each time the kept epoch changes, so a killed run keeps its best epoch so far and
a resumed one carries on from it. It is self-contained: besides the weights it holds the
resolved model config (`models.create_model` rebuilds the model from it) and the training
split's normalisation, which any other data must be fed through. Everything in it is a
tensor or plain data: it loads with `torch.load(..., weights_only=True)`.

The resumable `checkpoint.pt` (trainer/checkpoint.py) is separate: it carries the optimizer
and random states and is deleted when the run ends.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from budgetsweep import models
from budgetsweep.contract import WEIGHTS_FILE, first_line, write_atomic
from budgetsweep.data import DeviceDataset

from .schema import SaveWeights

FORMAT = 1  # weights.pt's layout, checked when loading


@dataclass
class Kept:
    """A model rebuilt from weights.pt, in eval mode on the CPU, with what came with it."""

    model: torch.nn.Module
    model_config: dict  # the resolved model config (models.resolve_model_config, as a dict)
    mean: torch.Tensor  # (C,) the training split's normalisation, in [0, 1] units
    std: torch.Tensor
    epoch: int  # the epoch the weights are from
    val_acc: float  # that epoch's validation accuracy
    kept: str  # best | last


class WeightsError(ValueError):
    """A weights file that cannot be loaded; the message names it and says why."""


class KeptWeights:
    """What `fit` calls: `epoch_done` after each finished epoch, `restore` before the test pass."""

    def __init__(self, cfg: DictConfig, run_dir: Path, ds: DeviceDataset, history: list[dict]) -> None:
        self.mode = SaveWeights(cfg.save_weights)
        self.path = Path(run_dir) / WEIGHTS_FILE
        self.model_config = dataclasses.asdict(models.resolve_model_config(cfg.model))
        self.mean, self.std = ds.mean.detach().cpu(), ds.std.detach().cpu()
        # a resumed run: the epochs already done (their best is in weights.pt already)
        best = max(history, key=lambda r: r["val_acc"], default=None)
        self.best_val_acc = best["val_acc"] if best else None
        if not history and self.mode == SaveWeights.none:
            self.path.unlink(missing_ok=True)  # an earlier run's file in this folder would pass for this one's

    def epoch_done(self, model: torch.nn.Module, row: dict) -> None:
        """Save the epoch's weights when they are the ones to keep (strictly better: ties keep the
        earlier epoch, as metrics.json's best_epoch does)."""
        if self.mode == SaveWeights.none:
            return
        if self.mode == SaveWeights.last or self.best_val_acc is None or row["val_acc"] > self.best_val_acc:
            self.best_val_acc = max(row["val_acc"], self.best_val_acc or row["val_acc"])
            self.save(model, row["epoch"], row["val_acc"])

    def save(self, model: torch.nn.Module, epoch: int, val_acc: float) -> None:
        buf = io.BytesIO()
        torch.save(
            dict(
                format=FORMAT,
                kept=self.mode.value,
                epoch=epoch,
                val_acc=val_acc,
                model_config=self.model_config,
                mean=self.mean,
                std=self.std,
                state_dict={k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            ),
            buf,
        )
        write_atomic(self.path, buf.getvalue())

    def restore(self, model: torch.nn.Module, last_epoch: int) -> int:
        """Put the kept weights into `model` for the test pass; the epoch they come from."""
        if self.mode != SaveWeights.best or not self.path.exists():
            return last_epoch  # last, none: the model holds the last epoch's weights already
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["state_dict"])
        return int(state["epoch"])


def load_weights(path: str | Path) -> Kept:
    """The model in `path` (a weights.pt, or a run folder holding one), rebuilt and loaded.

    Raises WeightsError naming the file when it is missing or not a weights file."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file (was the run trained with save_weights=none?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several kinds for a truncated or foreign file
        raise WeightsError(f"{path}: not a weights file ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a weights file of format {FORMAT}")
    try:
        model = models.create_model(state["model_config"])
    except KeyError as e:  # a dict of format 1 that lacks one of its keys
        raise WeightsError(f"{path}: not a weights file of format {FORMAT} (no {e})") from None
    except Exception as e:  # a model config create_model refuses
        raise WeightsError(f"{path}: its model config cannot be built: {first_line(e)}") from None
    if mismatch := _mismatch(model.state_dict(), state.get("state_dict")):
        raise WeightsError(f"{path}: the weights do not fit the file's own model config: {mismatch}")
    model.load_state_dict(state["state_dict"])
    model.eval()
    return Kept(
        model, state["model_config"], state["mean"], state["std"], int(state["epoch"]), state["val_acc"], state["kept"]
    )


def _mismatch(expected: dict[str, torch.Tensor], found: object) -> str | None:
    """The first difference between the config's model's state_dict and the stored one (a key it
    lacks, one it does not have, a shape), with how many more there are; None when they match."""
    if not isinstance(found, dict):
        return f"state_dict is {type(found).__name__}, not a mapping of tensors"
    problems = [f"missing {k}" for k in expected if k not in found]
    problems += [f"unexpected {k}" for k in found if k not in expected]
    for k, want in expected.items():
        got = found.get(k)
        if k in found and (not isinstance(got, torch.Tensor) or got.shape != want.shape):
            shape = "x".join(map(str, got.shape)) if isinstance(got, torch.Tensor) else type(got).__name__
            problems.append(f"{k} is {shape}, the config's model has {'x'.join(map(str, want.shape)) or 'a scalar'}")
    if not problems:
        return None
    return problems[0] + (f" (and {len(problems) - 1} more difference(s))" if len(problems) > 1 else "")


class Deployable(torch.nn.Module):
    """The kept model as it is deployed: uint8 images (B, C, H, W) in, logits out; the training
    split's normalisation is inside, so a caller needs nothing else."""

    def __init__(self, kept: Kept) -> None:
        super().__init__()
        self.model = kept.model
        self.register_buffer("mean", kept.mean.view(1, -1, 1, 1).float())
        self.register_buffer("std", kept.std.view(1, -1, 1, 1).float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images.float() / 255 - self.mean) / self.std)
