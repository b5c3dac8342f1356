"""A dataset held whole on the training device as uint8, and batches drawn from it.

Airbench's recipe: one uint8 tensor per split on the device, an on-device permutation per
epoch, augmentation and normalisation per batch. No DataLoader, no worker processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from omegaconf import OmegaConf

from . import augment
from .errors import DataError
from .sources import SAMPLE_PATH, Arrays, load_arrays


@dataclass
class DeviceDataset:
    x_train: torch.Tensor  # (N, C, H, W) uint8 on the device
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: torch.Tensor  # (C,) of the training split, in [0, 1] units
    std: torch.Tensor
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def stratified_split(y: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): val_size images drawn class by class in proportion, seeded.

    Each class gives round(val_size * share) images (the rounding remainder goes to the
    largest classes), so the validation split has the training split's class balance."""
    if val_size <= 0:
        return np.arange(len(y)), np.arange(0)
    if val_size >= len(y):
        raise DataError(f"data.val_size: {val_size} leaves no training images (the train split has {len(y)})")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts * val_size / len(y)).astype(int)
    for i in np.argsort(-(counts * val_size / len(y) - quota), kind="stable")[: val_size - quota.sum()]:
        quota[i] += 1
    val = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)])
    val = np.sort(val)
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


def _subset(n: int | None, size: int, seed: int) -> np.ndarray:
    if n is None or n >= size:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).permutation(size)[:n])


def to_device(
    arrays: Arrays,
    val_size: int,
    split_seed: int,
    device: torch.device,
    train_subset: int | None = None,
    test_subset: int | None = None,
) -> DeviceDataset:
    train_idx, val_idx = stratified_split(arrays.y_train, val_size, split_seed)
    train_idx = train_idx[_subset(train_subset, len(train_idx), split_seed + 1)]
    test_idx = _subset(test_subset, len(arrays.y_test), split_seed + 2)

    def put(x: np.ndarray) -> torch.Tensor:  # NHWC -> NCHW uint8 on the device
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)

    x_train = arrays.x_train[train_idx]
    scaled = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64) / 255
    return DeviceDataset(
        put(x_train),
        torch.from_numpy(arrays.y_train[train_idx]).to(device),
        put(arrays.x_train[val_idx]),
        torch.from_numpy(arrays.y_train[val_idx]).to(device),
        put(arrays.x_test[test_idx]),
        torch.from_numpy(arrays.y_test[test_idx]).to(device),
        torch.tensor(scaled.mean(0), dtype=torch.float32, device=device),
        torch.tensor(scaled.std(0), dtype=torch.float32, device=device),
        arrays.classes,
    )


def dataset_key(cfg, device: torch.device | str) -> str:
    """What decides a loaded dataset: the `data` node without `augment` (applied per batch), the
    device, and for a file its size and modification time (a rewritten file is read again)."""
    values = OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)
    if not isinstance(values, dict):  # a `data` node is a mapping; to_container's type also allows a list
        raise TypeError(f"data config: a mapping expected, not {type(values).__name__}")
    node = {k: v for k, v in values.items() if k != "augment"}
    path = SAMPLE_PATH if node.get("name") == "cifar10_sample" else node.get("path")
    if node.get("name") in ("npz", "cifar10_sample") and path and Path(path).expanduser().is_file():
        stat = Path(path).expanduser().stat()
        node["file"] = [str(Path(path).expanduser().resolve()), stat.st_size, stat.st_mtime_ns]
    return json.dumps([node, str(torch.device(device))], sort_keys=True, default=str)


_last_loaded: tuple[str, DeviceDataset] | None = None  # the process's last dataset, for in-process trials


def load_dataset(cfg, device: torch.device | str = "cpu") -> DeviceDataset:
    """The dataset named by a `data` config node, split and held on `device`.

    The last one loaded is kept for the process: the trials of a sweep that runs jobs in this
    process (Hydra's basic launcher) decode and split it once. Training only reads it."""
    global _last_loaded
    key = dataset_key(cfg, device)
    if _last_loaded is not None and _last_loaded[0] == key:
        return _last_loaded[1]
    _last_loaded = None  # free the previous one before loading the next
    arrays = load_arrays(cfg)
    ds = to_device(arrays, cfg.val_size, cfg.split_seed, torch.device(device), cfg.train_subset, cfg.test_subset)
    _last_loaded = (key, ds)
    return ds


def n_train_batches(n: int, batch_size: int) -> int:
    """Batches per epoch: a last partial batch under half a batch is dropped (a lone tiny
    batch makes BatchNorm noisy), unless it is the only one."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest and (rest >= batch_size // 2 or full == 0) else 0)


def train_batches(
    ds: DeviceDataset, batch_size: int, gen: torch.Generator, aug, memory_format=torch.contiguous_format
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled, augmented, normalised batches (`n_train_batches` of them)."""
    n = len(ds.y_train)
    order = torch.randperm(n, device=ds.x_train.device, generator=gen)
    for b in range(n_train_batches(n, batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size]
        x = augment.flip_crop(ds.x_train, idx, aug.crop_padding, aug.flip, gen)
        x = augment.cutout(x, aug.cutout, gen)
        yield augment.normalize(x, ds.mean, ds.std).contiguous(memory_format=memory_format), ds.y_train[idx]


def eval_batches(
    ds: DeviceDataset, x: torch.Tensor, y: torch.Tensor, batch_size: int, memory_format=torch.contiguous_format
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(y), batch_size):
        xb = augment.normalize(x[start : start + batch_size], ds.mean, ds.std)
        yield xb.contiguous(memory_format=memory_format), y[start : start + batch_size]
