"""The app's own `models` package: the name our sweepers must not shadow nor be shadowed by."""

from torch import nn

OWNER = "app"


def make_mlp(width: int, depth: int = 1) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(4, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))
