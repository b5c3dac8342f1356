"""Exact sizes of a config without allocating weights.

`count_params` counts trainable parameters (BatchNorm's running statistics are buffers, not
parameters, and are not counted), as the study did. `count_flops` counts one forward pass of
one image with `torch.utils.flop_counter` (convolutions and matrix products, a multiply-add
counted as 2 FLOPs; BatchNorm, ReLU and pooling are not counted). `count_params` builds the
model on the meta device: shapes only, no memory, ~20 ms for the 5M model. `count_flops` uses
the family's own arithmetic (`cfg.flops()`) where it has one, because a meta-device forward
takes ~100 ms; `flops_by_tracing` is the reference the tests compare it with.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .registry import create_model, resolve_model_config


def _meta_model(model_cfg: Any):
    cfg = resolve_model_config(model_cfg)
    with torch.device("meta"):
        return cfg, create_model(cfg)


def count_params(model_cfg: Any) -> int:
    _, model = _meta_model(model_cfg)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model_cfg: Any) -> int:
    cfg = resolve_model_config(model_cfg)
    if hasattr(cfg, "flops"):
        return int(cfg.flops())
    return flops_by_tracing(cfg)


def flops_by_tracing(model_cfg: Any) -> int:
    cfg, model = _meta_model(model_cfg)
    x = torch.empty(1, cfg.in_channels, cfg.image_size, cfg.image_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())
