"""A foreign app without any budget: it has a `model` node, but no budget.max_params, so the
sweepers size nothing; it writes its own metrics.json with a `status` key (not our contract's)."""

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    score = abs(cfg.model.width - 24) / 8 + cfg.lr
    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "metrics.json").write_text(json.dumps({"status": "done", "score": score}))
    return score


if __name__ == "__main__":
    main()
