"""Typed configs: the schema every composed config is checked against before anything runs.

`conf/config.yaml` lists `base_config` first in its defaults, so Hydra merges every group
option and every command-line override onto these dataclasses: a wrong type or an unknown
key fails at composition time with Hydra's own one-paragraph message.

`model` is a plain dict here because each family brings its own dataclass
(`models.resnet.ResNetConfig`); `models.resolve_model_config` checks it against that.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])  # adam/adamw only


@dataclass
class AugmentConfig:
    crop_padding: int = 4  # random crop after reflect-padding this many pixels; 0 = off
    flip: bool = True  # random horizontal flip
    cutout: int = 0  # side of one zeroed square per image; 0 = off


@dataclass
class DataConfig:
    name: str = "cifar10_sample"  # cifar10 | npz | cifar10_sample | synthetic
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


@dataclass
class SweepInfo:
    """Set by our sweepers on each job; recorded in metrics.json. Null in a plain run."""

    trial: Optional[int] = None  # Optuna trial number
    study: Optional[str] = None  # Optuna study name
    factor: Optional[str] = None  # ablation: the key varied from the baseline (null = baseline)
    value: Optional[str] = None  # ablation: the value it was set to
    baseline: bool = False  # ablation: this job is the baseline
    repeat: int = 0  # ablation: repeat index (seed = seed + repeat is set by the sweeper)


@dataclass
class TrainConfig:
    model: Dict[str, Any] = MISSING
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 128
    epochs: int = 3
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    scheduler: str = "cosine"  # none | cosine | onecycle
    warmup_epochs: float = 0.0  # cosine only: linear warm-up
    label_smoothing: float = 0.0
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    objective: str = "val_acc"  # the metric returned to Hydra (the best epoch's)
    amp: str = "auto"  # auto (bf16 on CUDA only) | bf16 | off
    channels_last: str = "auto"  # auto (on CUDA and CPU, measured faster on both) | on | off
    compile: bool = False  # torch.compile the model
    threads: Optional[int] = None  # CPU threads for torch (null: torch's default); 1 per job when jobs share a CPU
    checkpoint: bool = True  # save the last epoch atomically so a killed run resumes
    progress: bool = True  # a tqdm bar per epoch
    eval_batch_size: int = 1000
    sweep: SweepInfo = field(default_factory=SweepInfo)


def register_configs() -> None:
    """Put the schema in Hydra's ConfigStore; call before composing (run.py, tests)."""
    ConfigStore.instance().store(name="base_config", node=TrainConfig, replace=True)
