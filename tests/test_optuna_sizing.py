"""budgetsweep.sweeper.sizing without a sweep: every way of sizing a config, on the meta device."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from budgetsweep.sweeper.errors import SweeperError
from budgetsweep.sweeper.sizing import Sizer, Unsizable
from budgetsweep.sweeper.trial_reporter import NullReporter, current_trial, trial_reporter


def sizer(**budget) -> Sizer:
    return Sizer.from_settings(budget)


def cfg(model=None, max_params=None) -> OmegaConf:
    node = {} if model is None else {"model": model}
    return OmegaConf.create({**node, **({"budget": {"max_params": max_params}} if max_params else {})})


LINEAR = {"_target_": "torch.nn.Linear", "in_features": 10, "out_features": 3}  # 33 parameters


def test_a_target_model_is_counted_on_the_meta_device():
    assert sizer().size(cfg(LINEAR, 40)).params == 33
    over = sizer().size(cfg(LINEAR, 20))
    assert over.status == "over_budget" and over.error == "33 parameters > budget.max_params=20"
    # 10^10 parameters (40 GB as float32): sized at once, nothing allocated
    huge = {"_target_": "torch.nn.Linear", "in_features": 100_000, "out_features": 100_000, "bias": False}
    assert sizer().size(cfg(huge, 10)).params == 10**10


def test_a_lightning_template_model_is_sized_by_its_net():
    lit = {"_target_": "src.models.mnist_module.MNISTLitModule", "net": LINEAR, "compile": False}
    assert sizer().size(cfg(lit, 40)).params == 33


def test_the_registry_family_gets_the_one_verdict():
    from budgetsweep import models

    resnet = {"name": "resnet", "N": 3, "B": 3, "C": 68, "P": 7, "stem_kernel": 2}
    assert sizer().size(cfg(resnet, 5_000_000)) == models.check_budget(resnet, 5_000_000)
    assert sizer().size(cfg({**resnet, "N": 4, "P": 9}, 5_000_000)).status == "invalid"


def test_a_constructor_that_refuses_the_values_makes_the_config_invalid():
    bad = {**LINEAR, "in_features": -1}
    sizing = sizer().size(cfg(bad, 40))
    assert sizing.status == "invalid" and sizing.error.startswith("model: RuntimeError")


@pytest.mark.parametrize(
    "model, why",
    [
        (None, "the config has no `model` node to size"),
        ({"name": "mlp", "width": 3}, "`model` has no _target_ and no net._target_ (model.name 'mlp' is not a family"),
        ({"_target_": "nowhere.MLP"}, "model: Error locating target 'nowhere.MLP'"),
        ({"_target_": "torch.nn.LazyLinear", "out_features": 3}, "model: cannot count its parameters"),
        ({"_target_": "builtins.dict"}, "model builds a dict, not a torch.nn.Module"),
    ],
)
def test_a_config_that_cannot_be_sized_says_why(model, why):
    with pytest.raises(Unsizable) as e:
        sizer().size(cfg(model, 40))
    assert str(e.value).startswith(why)


def test_no_budget_no_sizing_and_the_sweepers_setting_wins():
    assert sizer().size(cfg(LINEAR)) is None
    assert "no budget" in sizer().describe(cfg(LINEAR))
    assert sizer(max_params=20).size(cfg(LINEAR, 1000)).status == "over_budget"
    assert "hydra.sweeper.budget.max_params" in sizer(max_params=20).describe(cfg(LINEAR))


def test_a_named_size_function_is_used_instead(tmp_path, monkeypatch):
    (tmp_path / "my_sizes.py").write_text(
        "def count(cfg):\n    return cfg.model.in_features * 1000\n\ndef text(cfg):\n    return 'many'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sizing = sizer(size_fn="my_sizes.count").size(cfg(LINEAR, 5000))
    assert sizing.status == "over_budget" and sizing.params == 10_000
    with pytest.raises(Unsizable, match="returned 'many', not an int"):
        sizer(size_fn="my_sizes.text").size(cfg(LINEAR, 5000))


@pytest.mark.parametrize(
    "budget, message",
    [
        ({"max_params": 0}, "hydra.sweeper.budget.max_params: expected a positive int or null, got 0"),
        ({"size_fn": "nowhere.fn"}, "hydra.sweeper.budget.size_fn: "),
        ({"max_param": 5}, "hydra.sweeper.budget.max_param: not a setting"),
    ],
)
def test_bad_budget_settings_are_one_line(budget, message):
    with pytest.raises(SweeperError) as e:
        Sizer.from_settings(budget)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_the_public_reporter_is_a_no_op_outside_a_trial():
    assert current_trial() is None
    reporter = trial_reporter()
    assert isinstance(reporter, NullReporter) and reporter.report(1, 0.5) is False and not reporter.pruned
