"""Typed configs: the schema every composed config is checked against before anything runs.

`conf/config.yaml` lists `base_config` first in its defaults, so Hydra merges every group
option and every command-line override onto these dataclasses: a wrong type, an unknown key
or a choice outside its Enum (`scheduler=foo`) fails at composition time with Hydra's own
one-paragraph message. Each default is written here once; `conf/config.yaml` only picks the
group options. What a type cannot say (`epochs >= 1`) is in `RANGES`, checked by `validate`.

`model` is a plain dict because each family brings its own dataclass
(`budgetsweep.models.resnet.ResNetConfig`), checked by `models.check_budget`. `optimizer` is a plain dict
because it is a `_target_` node (`conf/optimizer/*.yaml`): its keys are the optimizer's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Union

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from budgetsweep import models


class TrainConfigError(ValueError):
    """A training setting that cannot work (device, optimizer, a range). The message names the key."""


class Scheduler(str, Enum):  # stepped once per batch
    none = "none"  # the optimizer's rate throughout
    cosine = "cosine"  # linear warm-up over warmup_epochs, then cosine decay to zero
    onecycle = "onecycle"  # torch's OneCycleLR, peaking at optimizer.lr


class Amp(str, Enum):
    auto = "auto"  # bf16 on CUDA only (a CPU without native bf16 is ~15x slower with it)
    bf16 = "bf16"
    off = "off"


class SaveWeights(str, Enum):  # weights.pt in the run folder; test_acc is measured on the kept weights
    best = "best"  # the best validation epoch's (the epoch the objective comes from)
    last = "last"  # the last epoch's
    none = "none"  # keep nothing (test_acc on the last epoch's weights)


class ChannelsLast(str, Enum):  # in a YAML file write "on"/"off" quoted: bare, YAML reads a boolean
    auto = "auto"  # on (measured faster on CUDA and on the CPU), unless the model trips a PyTorch CPU bug
    on = "on"
    off = "off"


@dataclass
class AugmentConfig:
    crop_padding: int = 4  # random crop after reflect-padding this many pixels; 0 = off
    flip: bool = True  # random horizontal flip
    cutout: int = 0  # side of one zeroed square per image; 0 = off


@dataclass
class DataConfig:
    name: str = MISSING  # cifar10 | npz | cifar10_sample | synthetic: set by the data group option
    root: str = "datasets"  # cifar10: where torchvision's files are (downloaded when missing)
    path: Optional[str] = None  # npz: the arrays file
    val_size: int = 500  # carved from train, stratified, seeded by data.split_seed
    split_seed: int = 0  # fixed apart from `seed` so every run of a sweep sees the same split
    train_subset: Optional[int] = None  # use only this many training images (after the split)
    test_subset: Optional[int] = None
    # synthetic only: a learnable generated dataset
    n_train: int = 512
    n_test: int = 128
    image_size: int = 32
    num_classes: int = 10
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class BudgetConfig:
    max_params: int = 5_000_000  # trainable parameters; a config above it is never trained
    max_flops: Optional[int] = None  # forward FLOPs of one image (models.count_flops); null: no limit


@dataclass
class SweepInfo:
    """Set by our sweepers on each job; copied into metrics.json (contract.SWEEP_FIELDS). Null in a plain run."""

    trial: Optional[int] = None  # Optuna trial number
    study: Optional[str] = None  # Optuna study name
    factor: Optional[str] = None  # ablation: the key varied from the baseline (null = baseline)
    value: Optional[str] = None  # ablation: the value it was set to
    baseline: bool = False  # ablation: this job is the baseline
    repeat: int = 0  # ablation: repeat index (seed = seed + repeat is set by the sweeper)


@dataclass
class TrainConfig:
    model: Dict[str, Any] = MISSING  # a model group option: the family's name and its keys
    optimizer: Dict[str, Any] = MISSING  # an optimizer group option: `_target_`, `_partial_: true`, lr, ...
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 128
    epochs: int = 3
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    scheduler: Scheduler = Scheduler.cosine
    warmup_epochs: float = 0.0  # cosine only: linear warm-up
    label_smoothing: float = 0.0
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    objective: str = "val_acc"  # the metrics.json key returned to Hydra (val_acc: the best epoch's)
    amp: Amp = Amp.auto
    channels_last: ChannelsLast = ChannelsLast.auto
    # torch.compile the model: true | false | auto (on CUDA; on a CPU for runs of more than
    # budgetsweep.trainer.build.CPU_COMPILE_BREAK_EVEN_STEPS steps, where the compile time pays back)
    compile: Union[bool, str] = "auto"
    # CPU threads for torch: an int | auto (the cores divided among the jobs that run at once on
    # this machine: the launcher's n_jobs, or $BUDGETSWEEP_JOBS_PER_MACHINE) | null (torch's default)
    threads: Optional[Union[int, str]] = "auto"
    # Trials sharing one GPU, with several visible: the job in registry slot s trains on GPU
    # (s // trials_per_gpu) % GPUs. null: as many copies of this model and batch as fit in 80%
    # of the smallest GPU's memory, at most 4, and no more than the jobs at once need to fill
    # every GPU (budgetsweep.trainer.cores.trials_per_gpu)
    trials_per_gpu: Optional[int] = None
    checkpoint: bool = True  # save the last epoch atomically so a killed run resumes
    progress: bool = True  # a tqdm bar per epoch
    eval_batch_size: int = 1000
    save_weights: SaveWeights = SaveWeights.best
    # Experiment trackers, one node per logger group option: {name: {_target_: ..., settings}}
    logger: Dict[str, Any] = field(default_factory=dict)
    tags: List[str] = field(default_factory=list)  # copied into metrics.json and sent to the trackers
    sweep: SweepInfo = field(default_factory=SweepInfo)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive(v: Any) -> bool:
    return _number(v) and v > 0


def _at_least(low: int, optional: bool = False) -> Callable[[Any], bool]:
    return lambda v: (optional and v is None) or (_number(v) and v >= low)


# The metrics.json keys a run can be optimised on: numbers every run measures. The first
# three need the validation split (data.val_size > 0).
OBJECTIVES = ("val_acc", "final_val_acc", "final_val_loss", "test_acc", "test_loss", "train_seconds")
VALIDATION_OBJECTIVES = OBJECTIVES[:3]


# What the types cannot express: (key, predicate, what was expected).
RANGES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("batch_size", _positive, "a positive int"),
    ("eval_batch_size", _positive, "a positive int"),
    ("epochs", _positive, "a positive int"),
    ("optimizer.lr", _positive, "a positive number"),
    ("optimizer._partial_", lambda v: v is True, "true (the trainer passes the model's parameters)"),
    ("optimizer.weight_decay", _at_least(0, optional=True), "a number >= 0"),
    ("optimizer.momentum", lambda v: v is None or (_number(v) and 0 <= v < 1), "a number in [0, 1)"),
    ("optimizer.nesterov", lambda v: v is None or isinstance(v, bool), "true or false"),
    (
        "optimizer.betas",
        lambda v: (
            v is None or (isinstance(v, ListConfig) and len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v))
        ),
        "two numbers in [0, 1)",
    ),
    ("warmup_epochs", lambda v: v >= 0, "a number >= 0"),
    ("label_smoothing", lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("threads", lambda v: v in (None, "auto") or (_number(v) and v >= 1), "auto, a positive int or null"),
    ("compile", lambda v: isinstance(v, bool) or v == "auto", "true, false or auto"),
    ("trials_per_gpu", _at_least(1, optional=True), "a positive int or null (from the model's size)"),
    ("budget.max_params", _positive, "a positive int"),
    ("budget.max_flops", _at_least(1, optional=True), "a positive int or null"),
    ("objective", lambda v: v in OBJECTIVES, f"one of {', '.join(OBJECTIVES)} (metrics.json keys)"),
    ("data.val_size", _at_least(0), "an int >= 0"),
    ("data.split_seed", _at_least(0), "an int >= 0"),
    ("data.train_subset", _at_least(1, optional=True), "a positive int or null (all)"),
    ("data.test_subset", _at_least(1, optional=True), "a positive int or null (all)"),
    ("data.n_train", _at_least(1), "a positive int"),
    ("data.n_test", _at_least(1), "a positive int"),
    ("data.image_size", _at_least(1), "a positive int"),
    ("data.num_classes", _at_least(2), "an int >= 2"),
    ("data.augment.crop_padding", _at_least(0), "an int >= 0 (0: off)"),
    ("data.augment.cutout", _at_least(0), "an int >= 0 (0: off)"),
    ("sweep.trial", _at_least(0, optional=True), "an int >= 0 or null"),
    ("sweep.repeat", _at_least(0), "an int >= 0"),
)


def _check_together(cfg: DictConfig) -> None:
    """Settings each in range that cannot work together."""
    if cfg.warmup_epochs > cfg.epochs:
        raise TrainConfigError(f"warmup_epochs: {cfg.warmup_epochs} is longer than the run (epochs={cfg.epochs})")
    if cfg.data.val_size == 0 and cfg.objective in VALIDATION_OBJECTIVES:
        raise TrainConfigError(
            f"data.val_size: 0 leaves no validation split, which objective={cfg.objective} is measured on "
            "(set data.val_size > 0, or objective=test_acc)"
        )
    try:  # the model's image side, its family's default included; the data must match it
        side = models.resolve_model_config(cfg.model).image_size
    except (models.ConfigError, AttributeError):  # the model's own error, reported by models.check_budget
        side = None
    if _positive(side):
        if cfg.data.augment.crop_padding >= side:
            raise TrainConfigError(
                f"data.augment.crop_padding: {cfg.data.augment.crop_padding} must be under "
                f"the image side ({side} px, model.image_size)"
            )
        if cfg.data.augment.cutout > side:
            raise TrainConfigError(
                f"data.augment.cutout: {cfg.data.augment.cutout} is larger than the image ({side} px, model.image_size)"
            )


def validate(cfg: DictConfig) -> None:
    """Check the ranges of RANGES, then the settings that depend on each other; TrainConfigError
    names the first key that is wrong."""
    for key, ok, expected in RANGES:
        value = OmegaConf.select(cfg, key)
        if not ok(value):
            raise TrainConfigError(f"{key}: expected {expected}, got {value!r}")
    _check_together(cfg)


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore; call before composing (run.py, tests)."""
    ConfigStore.instance().store(name="base_config", node=TrainConfig, replace=True)
