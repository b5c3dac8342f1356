"""Training throughput on this machine's device: memory format and the batched data path.

    python benchmarks/throughput.py [--model resnet_small|seed_final] [--steps 30]

Two ratios, each against a baseline measured in the same run:
1. channels_last vs contiguous (NCHW) training steps of the same model (img/s);
2. our on-device batched augmentation (crop + flip + normalise of a whole batch) vs the
   per-image path that a torchvision DataLoader would run (PIL-free but one image at a time).
Measure on a quiet machine: a second job on the other core halves every figure.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from budgetsweep import models
from budgetsweep.data import augment

MODELS = {
    "resnet_small": dict(name="resnet", N=3, B=1, C=16, F=3, K=1, P=8, stem_kernel=3),
    "seed_final": dict(name="resnet", N=3, B=3, C=68, F=3, K=1, P=7, stem_kernel=2),
}


def train_images_per_second(cfg: dict, memory_format, batch: int, steps: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = models.create_model(cfg).to(device=device, memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def augment_images_per_second(batched: bool, n: int = 4096, batch: int = 512) -> float:
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        xb = x[start : start + batch]
        if batched:
            out = augment.normalize(augment.random_crop(augment.flip_lr(xb, gen), 4, gen), mean, std)
        else:  # one image at a time, as a Dataset.__getitem__ with transforms does
            out = torch.stack(
                [
                    augment.normalize(augment.random_crop(augment.flip_lr(img[None], gen), 4, gen), mean, std)[0]
                    for img in xb
                ]
            )
        assert out.shape == xb.shape
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_small", choices=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, model {args.model}, "
        f"batch {args.batch}, {args.steps} steps"
    )
    nchw = train_images_per_second(MODELS[args.model], torch.contiguous_format, args.batch, args.steps, device)
    nhwc = train_images_per_second(MODELS[args.model], torch.channels_last, args.batch, args.steps, device)
    print(f"| training, NCHW (baseline) | {nchw:.0f} img/s |")
    print(f"| training, channels_last   | {nhwc:.0f} img/s | {nhwc / nchw:.2f}x |")
    per_image = augment_images_per_second(batched=False)
    batched = augment_images_per_second(batched=True)
    print(f"| augmentation, per image (baseline) | {per_image:.0f} img/s |")
    print(f"| augmentation, batched             | {batched:.0f} img/s | {batched / per_image:.1f}x |")


if __name__ == "__main__":
    main()
