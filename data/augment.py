"""Batched augmentation on the device: pure functions over a whole (B, C, H, W) batch.

No per-image Python loop and no PIL: a batch of 512 images costs a few tensor ops, on the GPU
or the CPU alike. Randomness comes from an explicit torch.Generator so runs are reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, scaled to [0, 1] then standardised per channel."""
    return (x.to(dtype).div_(255) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def flip_lr(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    mask = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Reflect-pad by `padding`, then cut each image back to its size at a random offset.

    Images are grouped by their (dy, dx) shift, so there are at most (2p+1)^2 slicing ops
    whatever the batch size."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x.float() if x.dtype == torch.uint8 else x, (padding,) * 4, mode="reflect").to(x.dtype)
    shifts = torch.randint(0, 2 * padding + 1, (2, b), device=x.device, generator=gen)
    out = torch.empty_like(x)
    key = shifts[0] * (2 * padding + 1) + shifts[1]
    for k in key.unique().tolist():
        idx = (key == k).nonzero().squeeze(1)
        dy, dx = divmod(k, 2 * padding + 1)
        out[idx] = padded[idx, :, dy : dy + h, dx : dx + w]
    return out


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero one size x size square per image at a random centre (DeVries & Taylor, 2017)."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b, 1, 1), device=x.device, generator=gen)
    cx = torch.randint(0, w, (b, 1, 1), device=x.device, generator=gen)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)  # (B, H, W)
    return x.masked_fill(inside.unsqueeze(1), 0)
