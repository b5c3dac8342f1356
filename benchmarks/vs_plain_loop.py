"""This project's training against a plain PyTorch loop, on real images, in one run.

    python benchmarks/vs_plain_loop.py                                   # the shipped CIFAR-10 sample
    python benchmarks/vs_plain_loop.py --data ../shared/data/cifar10-dev.npz --train-subset 5000
    python benchmarks/vs_plain_loop.py --model seed_final --train-subset 320 --batch 64 --epochs 1
    python benchmarks/vs_plain_loop.py ... -- compile=true               # overrides for the project's run

Three fresh processes per round, interleaved round by round so load hits all of them alike:
1. the project: `python run.py data=npz ...` with its defaults (threads=auto, compile=auto,
   channels_last=auto, amp=auto), the whole command timed;
2. the plain loop users write: a torchvision DataLoader (2 workers) over a Dataset whose
   `__getitem__` runs RandomCrop / RandomHorizontalFlip / ToTensor / Normalize on one PIL image,
   NCHW, float32 on a CPU; the same model, split, batch size, Adam, cosine schedule, epochs,
   seed, validation each epoch and a test pass at the end;
3. the bare-step ceiling: the project's training step (memory format, precision, compile as the
   project's run decides them) on random tensors already on the device, with no data path,
   alternating in one process with the project's own epochs (budgetsweep.trainer.loop.train_epoch) so that
   the project / ceiling ratio is measured under the same load.
Prints images/s (training only), wall time (the whole command) and the ratios, and appends a
row to benchmarks/RESULTS.md with the machine, its load and the exact command (--no-record: not).
On CUDA the same script measures bf16 autocast, channels_last and compile (the project's auto).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
DEFAULT_DATA = ROOT / "data" / "cifar10_sample.npz"
MODELS = {  # model group overrides of the project; the plain loop builds the same model
    "80k": ["model=resnet", "model.N=3", "model.B=1", "model.C=16", "model.P=4"],
    "seed_final": ["model=seed_final"],
}
SECTION = "## Against a plain PyTorch loop (`python benchmarks/vs_plain_loop.py`)"
HEADER = (
    "| date | model | data | device, load | project img/s | plain img/s | bare-step img/s | "
    "project / plain (training) | project / plain (wall) | project / bare (alternating) | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def project_overrides(args) -> list[str]:
    data = ["data=npz", f"data.path={Path(args.data).resolve()}", f"data.val_size={args.val_size}"]
    if args.train_subset:
        data.append(f"data.train_subset={args.train_subset}")
    if args.test_subset:
        data.append(f"data.test_subset={args.test_subset}")
    run = [f"epochs={args.epochs}", f"batch_size={args.batch}", f"seed={args.seed}", "progress=false"]
    return [*MODELS[args.model], *data, *run, *args.overrides]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from budgetsweep.trainer import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        return hydra_compose(config_name="config", overrides=overrides)


# --- 1. the project ---------------------------------------------------------------------------


def run_project(args, out: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "run.py"), *project_overrides(args), f"hydra.run.dir={out}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    metrics = json.loads((out / "metrics.json").read_text())
    compiled = "torch.compile" in (out / "run.log").read_text()  # budgetsweep.trainer.build logs it when it compiles
    return dict(
        images_per_second=metrics["images_per_second"], wall=wall, test_acc=metrics["test_acc"], compiled=compiled
    )


# --- 2. the plain loop ------------------------------------------------------------------------


def plain_loop(args) -> dict:
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from budgetsweep import models
    from budgetsweep.data import load_dataset, n_train_batches

    cfg = compose(project_overrides(args))
    ds = load_dataset(cfg.data, "cpu")  # the project's split, handed over as NHWC uint8 arrays
    mean, std = ds.mean.tolist(), ds.std.tolist()

    class Images(Dataset):
        def __init__(self, x, y, transform):
            self.x, self.y, self.transform = x.permute(0, 2, 3, 1).numpy(), y.numpy(), transform

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.x[i])), int(self.y[i])

    train_tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4, padding_mode="reflect"),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    eval_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    n, bs = len(ds.y_train), args.batch
    drop_last = n_train_batches(n, bs) == n // bs  # the project drops a last batch under half a batch
    train_dl = DataLoader(
        Images(ds.x_train, ds.y_train, train_tf), bs, shuffle=True, num_workers=2, drop_last=drop_last
    )
    val_dl = DataLoader(Images(ds.x_val, ds.y_val, eval_tf), 1000, num_workers=2)
    test_dl = DataLoader(Images(ds.x_test, ds.y_test, eval_tf), 1000, num_workers=2)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    model = models.create_model(cfg.model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optimizer.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(train_dl) * args.epochs)

    def accuracy(loader) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in loader:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        return correct / len(loader.dataset)

    train_seconds, images = 0.0, 0
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in train_dl:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            images += len(y)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t0
        accuracy(val_dl)
    return dict(images_per_second=images / train_seconds, test_acc=accuracy(test_dl))


# --- 3. the bare step -------------------------------------------------------------------------


def bare_step(args) -> dict:
    """The bare step's img/s, and the project's epoch measured in the same process, alternating
    segment by segment (load that comes and goes hits both alike): the project / ceiling ratio."""
    import torch
    import torch.nn.functional as F

    from budgetsweep.data import load_dataset, n_train_batches
    from budgetsweep.trainer.build import build_model, make_optimizer, make_scheduler, pick_device, resolve_threads
    from budgetsweep.trainer.loop import train_epoch

    cfg = compose(project_overrides(args))
    device = pick_device(cfg.device)
    if threads := resolve_threads(cfg.threads):
        torch.set_num_threads(threads)
    ds = load_dataset(cfg.data, device)
    steps = n_train_batches(len(ds.y_train), args.batch)
    setup = build_model(cfg, device, planned_steps=steps * args.epochs)
    opt = make_optimizer(cfg.optimizer, setup.model.parameters())
    sched = make_scheduler(cfg, opt, steps * args.epochs)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32, device=device).contiguous(memory_format=setup.memory_format)
    y = torch.randint(0, 10, (args.batch,), device=device)

    def step():
        with setup.autocast():
            loss = F.cross_entropy(setup.step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(segment) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        images = segment()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return images / (time.perf_counter() - t0)

    def bare() -> int:
        for _ in range(steps):
            step()
        return args.batch * steps

    train_epoch(cfg, setup, ds, opt, sched, gen, 1)  # warm-up (and compiling, when it compiles)
    bare()
    project, ceiling = [], []
    for epoch in range(2, 2 + max(2, min(args.epochs, 6))):
        project.append(timed(lambda e=epoch: train_epoch(cfg, setup, ds, opt, sched, gen, e)["images"]))
        ceiling.append(timed(bare))
    return dict(
        images_per_second=statistics.median(ceiling),
        project_alternating=statistics.median(project),
        ratio=statistics.median(p / c for p, c in zip(project, ceiling)),
    )


# --- the comparison ---------------------------------------------------------------------------


def in_subprocess(role: str, argv: list[str]) -> dict:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--role", role, *argv], check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - t0
    return result


def machine() -> str:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/cpu_name.py, under `python -P` too
    from cpu_name import cpu_name

    cpu = cpu_name()
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    return f"{os.cpu_count()} CPUs ({cpu}), torch {torch.__version__}"


def record(args, argv: list[str], figures: dict, load: float) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{HEADER}\n"
    command = "python benchmarks/vs_plain_loop.py " + shlex.join(argv)
    p, q, b = figures["project"], figures["plain"], figures["bare"]
    data = Path(args.data).name + (f", {args.train_subset} train" if args.train_subset else "")
    model = args.model + (" (compiled)" if figures["compiled"] else "")
    row = (
        f"| {date.today()} | {model} | {data}, {args.epochs} ep, batch {args.batch} | "
        f"{figures['machine']}, load {load:.1f} | {p['images_per_second']:,.0f} | {q['images_per_second']:,.0f} | "
        f"{b['images_per_second']:,.0f} | {p['images_per_second'] / q['images_per_second']:.2f}x | "
        f"{q['wall'] / p['wall']:.2f}x ({p['wall']:.0f} s vs {q['wall']:.0f} s) | "
        f"{b['ratio']:.0%} | `{command}` |"
    )
    lines = text.rstrip("\n").split("\n")
    at = lines.index(SECTION) + 1
    while not lines[at].startswith("|"):  # the table's header
        at += 1
    while at < len(lines) and lines[at].startswith("|"):  # after its last row
        at += 1
    lines.insert(at, row)
    RESULTS.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="an npz of real images (default: the sample)")
    parser.add_argument("--model", default="80k", choices=sorted(MODELS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--test-subset", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the medians are reported")
    parser.add_argument("--no-record", action="store_true", help="do not append the row to RESULTS.md")
    parser.add_argument("--role", choices=("plain", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help="after --: overrides for the project's run only")
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    if args.role:
        print(json.dumps((plain_loop if args.role == "plain" else bare_step)(args)))
        return
    child_argv = [a for a in argv if a != "--no-record"]
    load = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"project": [], "plain": [], "bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            runs["project"].append(run_project(args, Path(tmp) / f"project{r}"))
            runs["plain"].append(in_subprocess("plain", child_argv))
            runs["bare"].append(in_subprocess("bare", child_argv))
            for name, rows in runs.items():
                print(f"round {r + 1} {name:8s} {rows[-1]['images_per_second']:8,.0f} img/s  {rows[-1]['wall']:6.1f} s")
    median = {
        name: {k: statistics.median(row[k] for row in rows) for k in rows[0] if k not in ("test_acc", "compiled")}
        for name, rows in runs.items()
    }
    p, q, b = median["project"], median["plain"], median["bare"]
    print(f"project:   {p['images_per_second']:8,.0f} img/s, {p['wall']:.1f} s for the whole command")
    print(f"plain:     {q['images_per_second']:8,.0f} img/s, {q['wall']:.1f} s")
    print(f"bare step: {b['images_per_second']:8,.0f} img/s")
    print(
        f"alternating in one process: project epoch {b['project_alternating']:,.0f} img/s, bare step "
        f"{b['images_per_second']:,.0f} img/s: {b['ratio']:.0%} of the ceiling"
    )
    print(
        f"project / plain: {p['images_per_second'] / q['images_per_second']:.2f}x training, "
        f"{q['wall'] / p['wall']:.2f}x wall"
    )
    print(f"test accuracy: project {runs['project'][-1]['test_acc']:.4f}, plain {runs['plain'][-1]['test_acc']:.4f}")
    compiled = runs["project"][-1]["compiled"]
    print(f"the project's run compiled the model: {'yes' if compiled else 'no'}")
    print(f"load average at the start: {load:.2f}")
    if not args.no_record:
        record(args, argv, dict(median, machine=machine(), compiled=compiled), load)
        print(f"row appended to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
