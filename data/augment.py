"""Batched augmentation on the device: pure functions over a whole (B, C, H, W) batch.

No per-image Python loop and no PIL: a batch of 512 images costs a few tensor ops, on the GPU
or the CPU alike. Randomness comes from an explicit torch.Generator so runs are reproducible.
"""

from __future__ import annotations

import torch


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float, scaled to [0, 1] then standardised per channel."""
    return (x.to(dtype).div_(255) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def flip_lr(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    mask = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def mirror_index(t: torch.Tensor, n: int) -> torch.Tensor:
    """Indices in [-(n-1), 2(n-1)] folded into [0, n) as reflect padding does (no edge repeat)."""
    return (n - 1) - ((n - 1) - t.abs()).abs()


def flip_crop(x: torch.Tensor, idx: torch.Tensor, padding: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """`x[idx]`, a random half mirrored left-right (when `flip`), each image cut back to its size
    at a random offset after reflect-padding by `padding`: one gather, no host round trip.

    The random draws and the pixels are those of `flip_lr` then `random_crop` on `x[idx]`. The
    result is NCHW in channels_last memory (the gather produces NHWC), which the model takes as is."""
    b, _, h, w = len(idx), *x.shape[1:]
    mask = torch.rand(b, device=x.device, generator=gen) < 0.5 if flip else None
    rows = torch.arange(h, device=x.device).expand(b, h)
    cols = torch.arange(w, device=x.device).expand(b, w)
    if padding > 0:
        shifts = torch.randint(0, 2 * padding + 1, (2, b, 1), device=x.device, generator=gen) - padding
        rows, cols = mirror_index(rows + shifts[0], h), mirror_index(cols + shifts[1], w)
    if mask is not None:
        cols = torch.where(mask.view(-1, 1), (w - 1) - cols, cols)  # crop of the mirrored image
    nhwc = x[idx.view(-1, 1, 1), :, rows.view(b, h, 1), cols.view(b, 1, w)]  # (B, H, W, C)
    return nhwc.permute(0, 3, 1, 2)


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Reflect-pad by `padding`, then cut each image back to its size at a random offset."""
    if padding <= 0:
        return x
    return flip_crop(x, torch.arange(len(x), device=x.device), padding, False, gen)


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
