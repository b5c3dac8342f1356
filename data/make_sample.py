"""Derive the shipped CIFAR-10 sample (data/cifar10_sample.npz) from the dev subset.

    budgetsweep make-sample ../shared/data/cifar10-dev.npz

The dev subset (10,000 train / 2,000 test real CIFAR-10 images, see its README) is not shipped;
this sample is: `TRAIN_PER_CLASS` train and `TEST_PER_CLASS` test images of every class, taken
by a seeded permutation of each class, then sorted back into the source order. Exact pixels.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

TRAIN_PER_CLASS = 250
TEST_PER_CLASS = 50
OUT = Path(__file__).with_name("cifar10_sample.npz")


def _take(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]
    return np.sort(np.concatenate(picked))


def make_sample(source: str | Path, out: str | Path = OUT) -> Path:
    src = np.load(source)
    tr = _take(src["y_train"], TRAIN_PER_CLASS, seed=0)
    te = _take(src["y_test"], TEST_PER_CLASS, seed=0)
    np.savez_compressed(
        out,
        x_train=src["x_train"][tr],
        y_train=src["y_train"][tr].astype(np.int64),
        x_test=src["x_test"][te],
        y_test=src["y_test"][te].astype(np.int64),
        classes=src["classes"],
    )
    return Path(out)


def main(argv: Sequence[str] | None = None, prog: str = "budgetsweep make-sample") -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print(f"usage: {prog} /path/to/cifar10-dev.npz", file=sys.stderr)
        return 0 if args in (["-h"], ["--help"]) else 2
    path = make_sample(args[0])
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
