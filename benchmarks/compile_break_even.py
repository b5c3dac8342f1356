"""When does `torch.compile` pay on this device? The break-even behind `compile=auto`.

    python benchmarks/compile_break_even.py [--data ../shared/data/cifar10-dev.npz] [--train-subset 5000]

Runs the project's training (`python run.py`, the 80k model by default) for a few epochs three
ways, in fresh processes: eager (`compile=false`), compiled with an empty kernel cache (a cold
machine), and compiled again with that cache filled (what a sweep's later trials see). From the
per-epoch times in history.csv:
    compile cost = (compiled epoch 1 - compiled later epochs) - (eager epoch 1 - eager later epochs)
    gain a step  = (eager later epochs - compiled later epochs) / steps an epoch
    break-even   = compile cost / gain a step   (training steps; budgetsweep.trainer.build.CPU_COMPILE_BREAK_EVEN_STEPS)
Validation runs the eager model in both, so it cancels out of the differences.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["model=resnet", "model.N=3", "model.B=1", "model.C=16", "model.P=4"]


def epoch_seconds(overrides: list[str], out: Path, cache: Path) -> list[float]:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}
    cmd = [sys.executable, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={out}"]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    with open(out / "history.csv") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "cifar10_sample.npz"))
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    data = ["data=npz", f"data.path={Path(args.data).resolve()}"]
    if args.train_subset:
        data.append(f"data.train_subset={args.train_subset}")
    base = [*MODEL, *data, f"epochs={args.epochs}", f"batch_size={args.batch}", "progress=false", "checkpoint=false"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eager = epoch_seconds([*base, "compile=false"], tmp / "eager", tmp / "cache")
        cold = epoch_seconds([*base, "compile=true"], tmp / "cold", tmp / "cache")
        warm = epoch_seconds([*base, "compile=true"], tmp / "warm", tmp / "cache")
        eager2 = epoch_seconds([*base, "compile=false"], tmp / "eager2", tmp / "cache")  # load drift check
    from omegaconf import OmegaConf

    from budgetsweep.data import load_dataset, n_train_batches  # the epoch's steps, as the trainer counts them
    from budgetsweep.trainer.schema import DataConfig

    ds = load_dataset(
        OmegaConf.structured(DataConfig(name="npz", path=args.data, val_size=1000, train_subset=args.train_subset))
    )
    steps = n_train_batches(len(ds.y_train), args.batch)
    later = lambda s: statistics.median(s[1:])  # noqa: E731
    eager_later = statistics.median(eager[1:] + eager2[1:])
    eager_first = statistics.median([eager[0], eager2[0]])
    gain = (eager_later - later(warm)) / steps
    print(f"{steps} steps an epoch; epoch seconds (train + validation):")
    for name, s in (
        ("eager", eager),
        ("eager again", eager2),
        ("compiled, cold cache", cold),
        ("compiled, warm cache", warm),
    ):
        print(f"  {name:22s} " + "  ".join(f"{x:6.2f}" for x in s))
    print(f"gain a step: {gain * 1000:.1f} ms ({eager_later / later(warm):.2f}x an epoch after the first)")
    for name, s in (("cold", cold), ("warm", warm)):
        cost = (s[0] - later(s)) - (eager_first - eager_later)
        verdict = f"break-even after {cost / gain:,.0f} steps" if gain > 0 else "never pays"
        print(f"compile cost, {name} cache: {cost:.1f} s -> {verdict}")


if __name__ == "__main__":
    main()
