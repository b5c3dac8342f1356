"""A research app laid out like most: its own `models`, `data`, `analysis`, `trainer`, `sweeper`
and `contract` packages beside app.py. It minimises a made-up loss of its `_target_` model's
width, named and declared through `budgetsweep.record` (imported by its one top-level name, so
nothing of ours shadows the app's packages); each job records which files its packages came
from.

    python app.py -m hydra/sweeper=budget_optuna 'model.width=int(interval(2,64))'
"""

import json
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

import analysis
import budgetsweep
import contract
import data
import models
import sweeper
import trainer

PACKAGES = {
    "models": models,
    "data": data,
    "analysis": analysis,
    "trainer": trainer,
    "sweeper": sweeper,
    "contract": contract,
}


@hydra.main(config_path=".", config_name="config")
def main(cfg: DictConfig) -> float:
    net = instantiate(cfg.model)
    params = sum(p.numel() for p in net.parameters())
    out = Path(HydraConfig.get().runtime.output_dir)
    found = {name: {"file": m.__file__, "owner": getattr(m, "OWNER", None)} for name, m in PACKAGES.items()}
    (out / "imported.json").write_text(json.dumps({"packages": found, "params": params}))
    loss = (cfg.model.width - 24) ** 2 / 100.0
    budgetsweep.record({"loss": loss, "width": cfg.model.width}, objective="loss", directions="minimize")
    return loss


if __name__ == "__main__":
    main()
