"""How long sizing a config takes: count_params / count_flops against building the real model.

    python benchmarks/sizing.py

The sweepers size every suggestion before launch, so this must stay far below a training
step. Baseline, measured in the same run: instantiating the model with real weights on the
CPU and summing its parameters (what a naive sweeper would do). Prints a Markdown row per
config; results are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import statistics
import time

import torch

from budgetsweep import models

CONFIGS = {
    "seed_final (4.9M)": dict(name="resnet", N=3, B=3, C=68, F=3, K=1, P=7, stem_kernel=2),
    "resnet_small (78k)": dict(name="resnet", N=3, B=1, C=16, F=3, K=1, P=8, stem_kernel=3),
}


def best_ms(fn, repeats: int = 20) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3, statistics.median(times) * 1e3


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("| config | count_params ms | count_flops ms | real model (baseline) ms | speed-up |")
    print("|---|---|---|---|---|")
    for name, cfg in CONFIGS.items():
        params_ms, _ = best_ms(lambda cfg=cfg: models.count_params(cfg))
        flops_ms, _ = best_ms(lambda cfg=cfg: models.count_flops(cfg))
        real_ms, _ = best_ms(lambda cfg=cfg: sum(p.numel() for p in models.create_model(cfg).parameters()), repeats=5)
        print(
            f"| {name} | {params_ms:.1f} | {flops_ms:.3f} | {real_ms:.1f} | {real_ms / (params_ms + flops_ms):.1f}x |"
        )


if __name__ == "__main__":
    main()
