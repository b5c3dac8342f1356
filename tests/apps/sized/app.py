"""A foreign app that trains nothing: a model of our registry and a budget, so the sweeper sizes
each suggestion (`models.check_budget`) before launch, as for run.py; the "accuracy" returned
is a made-up function of the config, instant (with `two_objectives=true`: that and a made-up size, a tuple, as a foreign
multi-objective app returns its objectives).

    python app.py -m hydra/sweeper=budget_optuna 'model.C=int(interval(8,128))' budget.max_params=60000
"""

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config")
def main(cfg: DictConfig) -> float | tuple[float, float]:
    m = cfg.model
    score = 0.5 + 0.01 * m.B + 0.001 * m.C - 0.01 * abs(m.P - 4)
    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "done.json").write_text(json.dumps({"C": m.C, "N": m.N}))
    if cfg.two_objectives:  # (accuracy, a size): hydra.sweeper.direction=[maximize,minimize]
        return score, float(m.C * m.B)
    return score


if __name__ == "__main__":
    main()
