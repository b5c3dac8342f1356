"""budget.max_flops beside budget.max_params: sized before launch the same
way (the sweepers' Sizer), enforced by the trainer, honoured by the combine step, in tables."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from budgetsweep import models
from budgetsweep.sweeper.errors import SweeperError
from budgetsweep.sweeper.sizing import Sizer
from budgetsweep.trainer import train

SMALL = {"name": "resnet", "N": 2, "B": 1, "C": 8, "F": 3, "K": 1, "P": 8, "stem_kernel": 3}


def flops(model: dict) -> int:
    return models.check_budget(model).flops


def test_the_trainer_refuses_a_model_over_the_flops_budget(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["budget.max_flops=1000"]), tmp_path)
    assert metrics["status"] == "over_budget" and metrics["epochs"] == 0
    assert metrics["max_flops"] == 1000 and metrics["flops"] > 1000
    assert "budget.max_flops=1,000" in metrics["error"]


def test_the_flops_budget_is_recorded_and_null_by_default(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["budget.max_flops=null", "budget.max_params=1000"]), tmp_path)
    assert metrics["max_flops"] is None and metrics["status"] == "over_budget"


def test_a_bad_flops_budget_is_one_line(tiny_cfg, tmp_path):
    metrics = train(tiny_cfg(["budget.max_flops=0"]), tmp_path)
    assert metrics["status"] == "invalid"
    assert metrics["error"] == "budget.max_flops: expected a positive int or null, got 0"


def test_the_sweepers_size_against_either_budget_or_both():
    cfg = OmegaConf.create({"model": SMALL, "budget": {"max_params": None, "max_flops": flops(SMALL) - 1}})
    sizer = Sizer.from_settings({})
    sizing = sizer.size(cfg)
    assert sizing.status == "over_budget" and "FLOPs > budget.max_flops" in sizing.error
    assert "FLOPs (budget.max_flops)" in sizer.describe(cfg)
    assert Sizer.from_settings({"max_flops": flops(SMALL)}).size(cfg).fits  # the sweeper's setting wins
    both = OmegaConf.create({"model": SMALL, "budget": {"max_params": 10**9, "max_flops": flops(SMALL)}})
    assert sizer.size(both).fits and "parameters" in sizer.describe(both) and "FLOPs" in sizer.describe(both)


def size_fn_params_and_flops(cfg):
    return 100, 5_000


def test_a_size_function_may_return_params_and_flops():
    cfg = OmegaConf.create({"model": {"_target_": "torch.nn.Linear"}, "budget": {"max_flops": 4_000}})
    sizer = Sizer.from_settings({"size_fn": f"{__name__}.size_fn_params_and_flops"})
    sizing = sizer.size(cfg)
    assert (sizing.status, sizing.params, sizing.flops) == ("over_budget", 100, 5_000)


def test_a_flops_budget_on_a_target_model_without_a_size_function_is_one_line():
    from budgetsweep.sweeper.sizing import Unsizable

    cfg = OmegaConf.create({"model": {"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 1}})
    cfg.budget = {"max_flops": 10}
    with pytest.raises(Unsizable, match="FLOPs are counted for the families of our registry only"):
        Sizer.from_settings({}).size(cfg)
    with pytest.raises(SweeperError, match="hydra.sweeper.budget.max_flops: expected a positive int or null"):
        Sizer.from_settings({"max_flops": -1})


def test_the_combine_step_honours_the_flops_budget():
    import pandas as pd

    from budgetsweep.analysis import ablation_tables, combine_best

    def run(C, acc, factor=None, value=None, baseline=False):
        model = {**SMALL, "C": C}
        return {
            "run_dir": f"r{C}",
            "status": "completed",
            "val_acc": acc,
            "test_acc": acc,
            "params": models.check_budget(model).params,
            "flops": flops(model),
            "max_params": 10**9,
            "max_flops": flops({**SMALL, "C": 12}),
            "config": {"model": model, "budget": {"max_params": 10**9, "max_flops": flops({**SMALL, "C": 12})}},
            "overrides": [] if baseline else [f"model.C={C}"],
            "factor": factor,
            "value": value,
            "baseline": baseline,
            "label": f"C={C}",
        }

    df = pd.DataFrame([run(8, 0.5, baseline=True), run(12, 0.55, "model.C", "12"), run(16, 0.6, "model.C", "16")])
    result = combine_best(df, ablation_tables(df))
    assert result.max_flops == flops({**SMALL, "C": 12})
    assert result.best_each.changes == {"model.C": "16"} and result.best_each.status == "over_budget"
    assert result.chosen.changes == {"model.C": "12"} and result.chosen.flops <= result.max_flops
