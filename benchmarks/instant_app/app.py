"""An instant trial: a function of x and y that returns at once, with nothing of budgetsweep in
it, for measuring what a sweeper spends around each trial (`benchmarks/sweeper_overhead.py`).
Each job appends its start time to $INSTANT_STAMPS."""

import os
import time

import hydra
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float:
    if os.environ.get("INSTANT_STAMPS"):
        with open(os.environ["INSTANT_STAMPS"], "a") as f:
            f.write(f"{time.perf_counter()}\n")
    return (cfg.x - 1.0) ** 2 + (cfg.y + 0.5) ** 2


if __name__ == "__main__":
    main()
