"""The typed vocabulary: choices refused at compose time, ranges by `validate`, defaults written once."""

import re
from dataclasses import fields

import pytest
import yaml
from hydra.errors import ConfigCompositionException

from budgetsweep import models
from budgetsweep.contract import SWEEP_FIELDS
from budgetsweep.trainer import TrainConfigError, train
from budgetsweep.trainer.schema import (
    RANGES,
    Amp,
    ChannelsLast,
    DataConfig,
    Scheduler,
    SweepInfo,
    TrainConfig,
    validate,
)

from helpers import CONF, run_py


@pytest.mark.parametrize("key,enum", [("scheduler", Scheduler), ("amp", Amp), ("channels_last", ChannelsLast)])
def test_each_choice_is_an_enum_checked_at_compose_time(tiny_cfg, key, enum):
    for member in enum:
        assert tiny_cfg([f"{key}={member.value}"])[key] == member
    with pytest.raises(ConfigCompositionException) as e:
        tiny_cfg([f"{key}=bogus"])
    assert f"full_key: {key}" in str(e.value.__cause__) and "bogus" in str(e.value.__cause__)


def test_a_bad_choice_is_one_paragraph_from_the_app(tmp_path):
    r = run_py(["experiment=quick", "scheduler=bogus"], tmp_path, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout
    assert "Invalid value 'bogus', expected one of [none, cosine, onecycle]" in r.stderr
    assert "full_key: scheduler" in r.stderr and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(
    "key,bad",
    [
        ("batch_size", 0),
        ("eval_batch_size", -1),
        ("epochs", 0),
        ("optimizer.lr", 0),
        ("optimizer.lr", "abc"),
        ("warmup_epochs", -1.0),
        ("label_smoothing", 1.0),
        ("threads", 0),
        ("budget.max_params", 0),
        ("objective", "loss"),
    ],
)
def test_validate_names_the_key_out_of_range(tiny_cfg, key, bad):
    cfg = tiny_cfg([f"{key}={bad}"])
    with pytest.raises(TrainConfigError, match=rf"^{re.escape(key)}: expected .* got {re.escape(repr(bad))}$"):
        validate(cfg)


def test_the_range_table_covers_keys_of_the_schema(tiny_cfg):
    cfg = tiny_cfg()
    validate(cfg)  # the shipped defaults pass
    for key, _, _ in RANGES:
        assert key.split(".")[0] in {f.name for f in fields(TrainConfig)}


def test_the_trainers_error_is_its_own(tiny_cfg, tmp_path):
    assert not issubclass(TrainConfigError, models.ConfigError)
    metrics = train(tiny_cfg(["device=tpu9"]), tmp_path)
    assert metrics["status"] == "invalid" and metrics["error"].startswith("device: 'tpu9'")


def test_the_schema_has_the_contracts_sweep_fields():
    assert tuple(f.name for f in fields(SweepInfo)) == SWEEP_FIELDS


def test_each_default_is_written_once():
    # config.yaml picks group options; the schema holds the defaults of the plain keys
    assert set(yaml.safe_load((CONF / "config.yaml").read_text())) == {"defaults", "hydra"}
    defaults = {f.name: f.default for f in fields(DataConfig)}
    for path in (CONF / "data").glob("*.yaml"):
        repeated = {k for k, v in yaml.safe_load(path.read_text()).items() if defaults.get(k) == v}
        assert not repeated, f"{path.name} repeats the schema's defaults {repeated}"


def test_a_new_optimizer_is_one_yaml_file(tiny_cfg, tmp_path):
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "rmsprop.yaml").write_text(
        "_target_: torch.optim.RMSprop\n_partial_: true\nlr: 1.0e-3\nalpha: 0.9\n"
    )
    cfg = tiny_cfg([f"hydra.searchpath=[file://{tmp_path}]", "optimizer=rmsprop"])
    metrics = train(cfg, tmp_path / "run")
    assert metrics["status"] == "completed" and cfg.optimizer.alpha == 0.9
