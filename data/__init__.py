"""Datasets held on the training device, with batched augmentation. A leaf package."""

from .dataset import DeviceDataset, eval_batches, load_dataset, n_train_batches, stratified_split, train_batches
from .errors import DataError
from .sources import Arrays, load_arrays, load_npz, make_synthetic

__all__ = [
    "Arrays",
    "DataError",
    "DeviceDataset",
    "eval_batches",
    "load_arrays",
    "load_dataset",
    "load_npz",
    "make_synthetic",
    "n_train_batches",
    "stratified_split",
    "train_batches",
]
