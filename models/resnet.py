"""The study's ResNet family for 32x32 images.

Layout: stem conv(3 -> C1, stem_kernel, no bias) + BN + ReLU; N layers of B residual blocks;
layer 1 keeps the resolution, each later layer halves it with stride 2 in its first block;
average pooling with kernel P (stride P); one linear layer whose input size is taken from the
real pooled map. A block is conv-BN-ReLU-conv-BN (F x F, no bias) plus a shortcut, then ReLU;
the shortcut is the identity, or a K x K conv + BN where the stride or the width changes.

Padding: stride-1 convs keep the size ("same", also for even kernels); stride-2 convs pad
(k - 1) // 2, which halves every even size exactly whatever k is, so the block's two paths
always agree and the map sizes are 32, 16, 8, ... The study's final model (N=3, B=3, C=68,
F=3, K=1, P=7, stem_kernel=2) has 4,883,906 trainable parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import ConfigError
from .registry import register_model


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(key: str, v: Any) -> int:
    if not _is_int(v) or v < 1:
        raise ConfigError(f"model.{key}: expected a positive int, got {v!r}")
    return v


def _per_layer(key: str, v: Any, n: int) -> list[int]:
    """An int for every layer, or an explicit list of n positive ints."""
    if _is_int(v) and v >= 1:
        return [v] * n
    if isinstance(v, (list, tuple)) or type(v).__name__ == "ListConfig":
        v = list(v)
        if len(v) != n:
            raise ConfigError(f"model.{key}: a list must have N={n} entries, got {len(v)}: {v}")
        if all(_is_int(x) and x >= 1 for x in v):
            return v
    raise ConfigError(f"model.{key}: expected a positive int or a list of N={n} positive ints, got {v!r}")


@dataclass
class ResNetConfig:
    name: str = "resnet"
    N: int = 3  # residual layers
    B: Any = 2  # blocks per layer: int or list of N
    C: Any = 32  # channels of layer 1, doubled per layer; or an explicit list of N
    F: Any = 3  # kernel of the block convs: int or list of N
    K: int = 1  # kernel of the shortcut conv
    P: int = 8  # average-pool kernel (and stride) before the classifier
    stem_kernel: int = 3  # the study's F1
    in_channels: int = 3
    image_size: int = 32
    num_classes: int = 10

    def check(self) -> None:
        """Raise ConfigError naming the key if this config cannot build a model."""
        for key in ("N", "K", "P", "stem_kernel", "in_channels", "image_size", "num_classes"):
            _positive_int(key, getattr(self, key))
        self.blocks, self.channels, self.kernels  # noqa: B018 - each property checks its key
        final = self.feature_sizes[-1]
        if final < 1 or (self.image_size >> (self.N - 1)) << (self.N - 1) != self.image_size:
            raise ConfigError(
                f"model.N: {self.N} layers halve a {self.image_size} px image {self.N - 1} times, "
                f"more than it allows (at most {self.image_size.bit_length() - 1} halvings)"
            )
        if self.P > final:
            raise ConfigError(f"model.P: pool kernel {self.P} is larger than the final {final}x{final} feature map")

    @property
    def blocks(self) -> list[int]:
        return _per_layer("B", self.B, self.N)

    @property
    def channels(self) -> list[int]:
        if _is_int(self.C) and self.C >= 1:
            return [self.C * 2**i for i in range(self.N)]
        return _per_layer("C", self.C, self.N)

    @property
    def kernels(self) -> list[int]:
        return _per_layer("F", self.F, self.N)

    @property
    def feature_sizes(self) -> list[int]:
        """Spatial size of each layer's output map."""
        return [self.image_size >> i for i in range(self.N)]

    @property
    def pooled_size(self) -> int:
        return (self.feature_sizes[-1] - self.P) // self.P + 1

    def flops(self) -> int:
        """Forward FLOPs of one image by arithmetic, as torch.utils.flop_counter counts them
        (convs and the linear layer, 2 per multiply-add); a test checks the two agree.
        Arithmetic because a meta-device forward of the 5M model takes ~100 ms here."""
        conv = lambda c_in, c_out, k, size: 2 * c_in * c_out * k * k * size * size  # noqa: E731
        channels, sizes = self.channels, self.feature_sizes
        total = conv(self.in_channels, channels[0], self.stem_kernel, sizes[0])
        c_in = channels[0]
        for i, (n_blocks, c_out, k) in enumerate(zip(self.blocks, channels, self.kernels)):
            for j in range(n_blocks):
                total += conv(c_in, c_out, k, sizes[i]) + conv(c_out, c_out, k, sizes[i])
                if (i > 0 and j == 0) or c_in != c_out:
                    total += conv(c_in, c_out, self.K, sizes[i])
                c_in = c_out
        return total + 2 * channels[-1] * self.pooled_size**2 * self.num_classes


class EvenSameConv2d(nn.Conv2d):
    """A stride-1 conv with an even kernel k that keeps the map size: it pads (k - 1) // 2 before
    and k // 2 after, as padding="same" would. Explicit, because for "same" with an even kernel
    PyTorch pads a copy of the input anyway and warns at every call (the study's stem_kernel=2)."""

    def __init__(self, c_in: int, c_out: int, k: int):
        super().__init__(c_in, c_out, k, bias=False)
        self.same_padding = ((k - 1) // 2, k // 2) * 2  # (left, right, top, bottom), as pad() takes it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(nn.functional.pad(x, self.same_padding))


def _conv(c_in: int, c_out: int, k: int, stride: int) -> nn.Conv2d:
    if stride == 1 and k % 2 == 0:
        return EvenSameConv2d(c_in, c_out, k)
    padding: int | str = "same" if stride == 1 else (k - 1) // 2
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, skip_kernel: int, stride: int):
        super().__init__()
        self.conv1 = _conv(c_in, c_out, kernel, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = _conv(c_out, c_out, kernel, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(_conv(c_in, c_out, skip_kernel, stride), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, cfg: ResNetConfig):
        super().__init__()
        channels = cfg.channels
        self.stem = nn.Sequential(
            _conv(cfg.in_channels, channels[0], cfg.stem_kernel, 1), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)
        )
        layers, c_in = [], channels[0]
        for i, (n_blocks, c_out, kernel) in enumerate(zip(cfg.blocks, channels, cfg.kernels)):
            blocks = []
            for j in range(n_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, kernel, cfg.K, stride))
                c_in = c_out
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(cfg.P)
        self.head = nn.Linear(channels[-1] * cfg.pooled_size**2, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))  # (B, C_N, S, S), S = image_size / 2**(N-1)
        return self.head(torch.flatten(self.pool(x), 1))


@register_model("resnet", ResNetConfig)
def build_resnet(cfg: ResNetConfig) -> ResNet:
    return ResNet(cfg)
