"""Where images come from. Each source returns numpy arrays: x NHWC uint8, y int64.

Sources: `cifar10` (torchvision's files in `data.root`, downloaded when missing), `npz` (any
arrays file with x_train y_train x_test y_test), `cifar10_sample` (the real CIFAR-10 sample
shipped in this package) and `synthetic` (generated, learnable).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

SAMPLE_PATH = Path(__file__).with_name("cifar10_sample.npz")


@dataclass
class Arrays:
    x_train: np.ndarray  # (N, H, W, 3) uint8
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]


def load_npz(path: str | Path) -> Arrays:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.path: no such file {str(path)!r} (an .npz with x_train y_train x_test y_test)")
    if not zipfile.is_zipfile(path):
        raise DataError(f"data.path: {path} is not an .npz file (not a zip archive of arrays; corrupt or truncated?)")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f.files]
            if missing:
                raise DataError(f"data.path: {path} lacks the arrays {', '.join(missing)} (has: {', '.join(f.files)})")
            arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
            classes = tuple(str(c) for c in f["classes"]) if "classes" in f.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"data.path: {path} is not a readable .npz file ({type(e).__name__}: {e})") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise DataError(f"data.path: x_{split} in {path} must be NHWC uint8 images, got {x.dtype} {x.shape}")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"data.path: y_{split} in {path} must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    _check_npz_contents(path, arrays, classes)
    n_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    return Arrays(
        arrays["x_train"],
        arrays["y_train"].astype(np.int64),
        arrays["x_test"],
        arrays["y_test"].astype(np.int64),
        classes or tuple(str(i) for i in range(n_classes)),
    )


def _check_npz_contents(path: Path, arrays: dict[str, np.ndarray], classes: tuple[str, ...] | None) -> None:
    """What the shapes and dtypes do not say: images in each split, the same image shape in
    both, and labels 0..K-1 (a label of -1 or past the class list breaks training midway)."""
    if arrays["x_test"].shape[1:] != arrays["x_train"].shape[1:]:
        raise DataError(
            f"data.path: x_test in {path} has images of {arrays['x_test'].shape[1:]}, x_train of "
            f"{arrays['x_train'].shape[1:]}: both splits need the same image shape"
        )
    for split in ("train", "test"):
        y = arrays[f"y_{split}"]
        if len(y) == 0:
            raise DataError(f"data.path: x_{split} in {path} has no images")
        if y.min() < 0 or (classes is not None and y.max() >= len(classes)):
            top = f"{len(classes) - 1} (its 'classes' array has {len(classes)})" if classes is not None else "K-1"
            raise DataError(
                f"data.path: y_{split} in {path} has labels from {y.min()} to {y.max()}; labels must be 0 to {top}"
            )


def load_cifar10(root: str | Path) -> Arrays:
    root = Path(root).expanduser()
    try:
        from torchvision.datasets import CIFAR10  # imported here: it costs ~2 s

        train = CIFAR10(str(root), train=True, download=True)
        test = CIFAR10(str(root), train=False, download=True)
    except Exception as e:  # offline: urllib/socket errors, a corrupt archive...
        raise DataError(
            f"data.root: CIFAR-10 is not in {str(root)!r} and could not be downloaded ({type(e).__name__}). "
            f"Put cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/) there, "
            f"or use data=cifar10_sample (offline sample) or data=npz data.path=FILE"
        ) from None
    return Arrays(
        np.asarray(train.data),
        np.asarray(train.targets, dtype=np.int64),
        np.asarray(test.data),
        np.asarray(test.targets, dtype=np.int64),
        tuple(train.classes),
    )


def make_synthetic(n_train: int, n_test: int, num_classes: int, image_size: int, seed: int = 0) -> Arrays:
    """Learnable images: each class has its own colour and a bright square at its own place,
    under noise. A small model separates them within an epoch or two."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 216, size=(num_classes, 3))
    cell = max(2, image_size // 4)
    spots = [
        ((c * 3) % 4 * (image_size - cell) // 3, (c // 4) % 4 * (image_size - cell) // 3) for c in range(num_classes)
    ]

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % num_classes
        rng.shuffle(y)
        x = rng.normal(0, 30, size=(n, image_size, image_size, 3)) + colours[y][:, None, None, :]
        for i, c in enumerate(y):
            r, col = spots[c]
            x[i, r : r + cell, col : col + cell] += 80
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return Arrays(x_train, y_train, x_test, y_test, tuple(f"class{c}" for c in range(num_classes)))


def load_arrays(cfg) -> Arrays:
    """The arrays named by a `data` config node."""
    name = cfg.name
    if name == "cifar10":
        return load_cifar10(cfg.root)
    if name == "cifar10_sample":
        return load_npz(SAMPLE_PATH)
    if name == "npz":
        try:
            path = cfg.path
        except Exception:  # OmegaConf's MissingMandatoryValue for `path: ???`
            path = None
        if not path or path == "???":
            raise DataError("data.path: data=npz needs a file: data.path=/path/to/arrays.npz")
        return load_npz(path)
    if name == "synthetic":
        return make_synthetic(cfg.n_train, cfg.n_test, cfg.num_classes, cfg.image_size)
    raise DataError(f"data.name: unknown dataset {name!r} (known: cifar10, cifar10_sample, npz, synthetic)")
