"""The example's model: a plain PyTorch MLP, built from the config's `model` node by `_target_`."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """`depth` hidden layers of `hidden` units with ReLU, then a linear head.

    Args:
        in_features: inputs per example.
        hidden: units per hidden layer.
        depth: hidden layers (>= 1).
        out_features: classes.
    """

    def __init__(self, in_features: int, hidden: int, depth: int, out_features: int) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_features) -> (B, out_features)
        return self.net(x)
