"""A foreign app: a function of x and y; nothing of budgetsweep's in its config.

    python app.py -m hydra/sweeper=budget_optuna 'x=interval(-2,2)' 'y=interval(-2,2)'
    python app.py -m hydra/sweeper=ablation x=-1,0,1 y=2

`steps` > 1 makes it an iterative job: it reports a value per step through the public pruning
hook (budgetsweep.sweeper.trial_reporter.trial_reporter), sleeps `sleep` seconds per step, keeps its progress in
progress.json in its folder and resumes from it when run again there. times.json records when
it ran. `slow_trial`: the Optuna trial number that sleeps `slow_seconds` first.
"""

import json
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from budgetsweep.sweeper.trial_reporter import trial_reporter


@hydra.main(config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    started = time.time()
    out = Path(HydraConfig.get().runtime.output_dir)
    if cfg.fail:
        raise RuntimeError(f"asked to fail at x={cfg.x}")
    if cfg.nan:
        return float("nan")
    if cfg.slow_trial is not None and os.environ.get("BUDGETSWEEP_TRIAL") == str(cfg.slow_trial):
        time.sleep(cfg.slow_seconds)
    value = (cfg.x - 1.0) ** 2 + (cfg.y + 0.5) ** 2
    progress = out / "progress.json"
    first = json.loads(progress.read_text())["step"] + 1 if progress.exists() else 1
    if first > 1:
        print(f"resumed from step {first - 1}")
    reporter = trial_reporter()
    for step in range(first, cfg.steps + 1):
        time.sleep(cfg.sleep)
        progress.write_text(json.dumps({"step": step}))
        if reporter.report(step, value + 1.0 / step):
            break
    times = {"start": started, "end": time.time(), "pid": os.getpid(), "first_step": first}
    (out / "times.json").write_text(json.dumps(times))
    return value


if __name__ == "__main__":
    main()
