"""The same Optuna sweep with and without a pruner: total training seconds and best val acc.

    python benchmarks/pruning.py [--data ../shared/data/cifar10-dev.npz] [--out outputs/bench-pruning]

Runs `experiment=search_small` (8 trials of small ResNets, 3,000 training images, 4 epochs, 1 thread)
twice with the TPE sampler's seed fixed: n_startup_trials=10 > 8 trials, so both sweeps train
the very same 8 suggested configs, and the only difference is the pruner
(MedianPruner(n_startup_trials=3, n_warmup_steps=1): from the 4th trial on, a trial whose
val acc at an epoch is below the median of the earlier trials at that epoch stops; the step is
the 1-based epoch, so n_warmup_steps=1 protects no epoch). Results: benchmarks/pruning.md.
Reads the run folders (metrics.json), prints a markdown table. Each sweep is a separate
study in its own folder under --out; rerunning continues (and ends) the same studies, so
remove --out to measure again. Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from budgetsweep.contract.sweep import best_run

ROOT = Path(__file__).resolve().parents[1]
NO_PRUNER = "hydra/sweeper/pruner=none"  # run.py's search prunes by default (pruner/median.yaml)
PRUNER = "++hydra.sweeper.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:3,n_warmup_steps:1}"


def sweep(name: str, data: str, out: Path, extra: list[str]) -> tuple[list[str], float]:
    cmd = [
        sys.executable,
        "run.py",
        "-m",
        "experiment=search_small",
        f"data.path={data}",
        "progress=false",
        "hydra.sweeper.sampler.seed=0",
        f"hydra.sweeper.study_name={name}",
        f"hydra.sweeper.dir={out / name}",
        *extra,
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return cmd, time.perf_counter() - t0


def summary(study_dir: Path) -> dict:
    runs = [json.loads(p.read_text()) for p in sorted(study_dir.glob("*/metrics.json"))]
    best = best_run(runs, "maximize", value=lambda m: m["val_acc"])  # the contract's rule: ties to the earliest trial
    return {
        "trials": len(runs),
        "pruned": sum(m["status"] == "pruned" for m in runs),
        "epochs": sum(m["epochs"] for m in runs),
        "train_s": sum(m["train_seconds"] for m in runs),
        "best_val_acc": best["val_acc"] if best else float("nan"),
        "best_trial": best["trial"] if best else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/cifar10-dev.npz")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench-pruning")
    args = parser.parse_args()
    rows = []
    for name, extra in (("no-pruner", [NO_PRUNER]), ("median-pruner", [NO_PRUNER, PRUNER])):
        cmd, wall = sweep(name, args.data, args.out.resolve(), extra)
        rows.append((name, wall, summary(args.out.resolve() / name), cmd))
    print("| sweep | trials | pruned | epochs trained | total train s | sweep wall s | best val acc (trial) |")
    print("|---|---|---|---|---|---|---|")
    for name, wall, s, _ in rows:
        print(
            f"| {name} | {s['trials']} | {s['pruned']} | {s['epochs']} | {s['train_s']:.0f} | {wall:.0f} "
            f"| {s['best_val_acc']:.4f} ({s['best_trial']}) |"
        )
    for name, _, _, cmd in rows:
        print(f"\n{name}: {' '.join(cmd[1:])}")


if __name__ == "__main__":
    main()
