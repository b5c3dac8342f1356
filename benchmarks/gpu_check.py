"""The checks that need a GPU, in one run of at most ~9 minutes; rows appended to RESULTS.md.

    python benchmarks/gpu_check.py             # on a machine with CUDA
    python benchmarks/gpu_check.py --dry-run   # anywhere: the commands, nothing run

In turn, each under a time limit and the whole under --budget seconds (a step that fails or runs
out of time is recorded as such, and the next one runs):
1. `benchmarks/vs_plain_loop.py` for the 80k model, then for seed_final (the study's 4.9M
   model): the project against a plain loop on CUDA (that script appends its own rows);
2. GPU sharing, the 80k model: one `python run.py` alone, then four at once with
   `trials_per_gpu=4` on the same GPU: each one's images/s and the four together against the
   lone one (compile=false: the comparison is about sharing, not compile time);
3. a short `experiment=budget_search` sweep (the shipped sample, 3 trials of 2 epochs,
   compile=false): that the GPU preset runs end to end, its wall time and best val_acc.
Data: the shipped CIFAR-10 sample and generated images, so the machine needs no network.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SAMPLE = ROOT / "data" / "cifar10_sample.npz"
SECTION = "## On a GPU (`python benchmarks/gpu_check.py`)"
MODEL_80K = ["model=resnet", "model.N=3", "model.B=1", "model.C=16", "model.P=4"]
SHARED = 4  # trials on one GPU in step 2
# Generated images: enough per epoch that a fast GPU trains for seconds, not milliseconds.
SHARING_RUN = [*MODEL_80K, "data=synthetic", "data.n_train=20000", "data.n_test=1000", "epochs=3"]
SHARING_RUN += ["compile=false", "progress=false", "device=cuda"]


def run(cmd: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess | str:
    """The finished process, or why it did not finish (a timeout)."""
    try:
        return subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
        )
    except subprocess.TimeoutExpired:
        return f"over its {timeout:.0f} s"


def vs_plain_loop(model: str, epochs: int) -> list[str]:
    return [sys.executable, "benchmarks/vs_plain_loop.py", "--model", model, "--epochs", str(epochs)]


def sharing(tmp: Path, timeout: float, dry_run: bool) -> str:
    """Step 2: a table row of each job's images/s, alone and SHARED at once on one GPU."""
    cmd = [sys.executable, "run.py", *SHARING_RUN]
    registry = {"BUDGETSWEEP_REGISTRY": str(tmp / "registry")}  # this check's jobs only
    if dry_run:
        print(f"  {shlex.join(cmd + ['trials_per_gpu=1'])}\n  then {SHARED} at once: ... trials_per_gpu={SHARED}")
        return ""
    deadline = time.monotonic() + timeout

    def together(name: str, n: int, per_gpu: int) -> list[float]:
        procs = [
            subprocess.Popen(
                [*cmd, f"trials_per_gpu={per_gpu}", f"hydra.run.dir={tmp / f'{name}{i}'}"],
                cwd=ROOT,
                env={**os.environ, **registry},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(n)
        ]
        try:
            errors = [p.communicate(timeout=max(1.0, deadline - time.monotonic()))[1] for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        if any(p.returncode for p in procs):
            raise RuntimeError(next(e for e in errors if e).strip().splitlines()[-1])
        return [json.loads((tmp / f"{name}{i}" / "metrics.json").read_text())["images_per_second"] for i in range(n)]

    try:
        alone = together("alone", 1, 1)[0]
        shared = together("shared", SHARED, SHARED)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return f"| {date.today()} | 80k, trials_per_gpu 1 vs {SHARED} | {card()} | failed: {e} |"
    each = ", ".join(f"{v:,.0f}" for v in shared)
    return (
        f"| {date.today()} | 80k, trials_per_gpu 1 vs {SHARED} | {card()} | alone {alone:,.0f} img/s; "
        f"{SHARED} at once {each} img/s, together {sum(shared) / alone:.2f}x the lone job | "
        f"`python run.py {shlex.join(SHARING_RUN)} trials_per_gpu=N` |"
    )


def budget_search(tmp: Path, timeout: float, dry_run: bool) -> str:
    """Step 3: a table row: the short budget_search sweep's wall time and best val_acc."""
    args = ["-m", "experiment=budget_search", "data=npz", f"data.path={SAMPLE}", "epochs=2", "warmup_epochs=1"]
    args += ["compile=false", "progress=false", "hydra.sweeper.n_trials=3", f"hydra.sweeper.dir={tmp / 'study'}"]
    args += [f"hydra.sweep.dir={tmp / 'sweep'}"]
    cmd = [sys.executable, "run.py", *args]
    if dry_run:
        print(f"  {shlex.join(cmd)}")
        return ""
    t0 = time.perf_counter()
    done = run(cmd, timeout)
    wall = time.perf_counter() - t0
    shown = "python run.py " + shlex.join(a for a in args if "dir=" not in a)
    if isinstance(done, str) or done.returncode:
        why = done if isinstance(done, str) else (done.stderr.strip().splitlines() or ["exit status"])[-1]
        return f"| {date.today()} | budget_search, 3 trials x 2 epochs | {card()} | failed: {why} | `{shown}` |"
    runs = [json.loads(p.read_text()) for p in (tmp / "study").glob("**/metrics.json")]
    done_runs = [r for r in runs if r.get("status") == "completed"]
    best = max((r["val_acc"] for r in done_runs), default=float("nan"))
    return (
        f"| {date.today()} | budget_search, 3 trials x 2 epochs | {card()} | {len(done_runs)} of {len(runs)} "
        f"trials completed, best val_acc {best:.3f}, {wall:.0f} s in all | `{shown}` |"
    )


def card() -> str:
    import torch

    return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"


def record(rows: list[str]) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if SECTION not in text:
        text = (
            text.rstrip("\n") + f"\n\n{SECTION}\n\n| date | check | GPU | result | command |\n|---|---|---|---|---|\n"
        )
    lines = text.rstrip("\n").split("\n")
    at = lines.index(SECTION) + 1
    while not lines[at].startswith("|"):
        at += 1
    while at < len(lines) and lines[at].startswith("|"):
        at += 1
    lines[at:at] = rows
    RESULTS.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the commands; run nothing")
    parser.add_argument("--budget", type=float, default=540, help="seconds for all the checks together")
    args = parser.parse_args()
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            sys.exit("error: no CUDA device here (--dry-run shows the commands)")
        print(f"on {card()}")
    end = time.monotonic() + args.budget
    plain = [(vs_plain_loop("80k", 5), 150), (vs_plain_loop("seed_final", 2), 180)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cmd, limit in plain:
            print(f"1. {shlex.join(cmd)}")
            if not args.dry_run:
                done = run(cmd, min(limit, end - time.monotonic()))
                ok = not isinstance(done, str) and done.returncode == 0
                print(
                    done.stdout[-1500:] if ok else f"  failed: {done if isinstance(done, str) else done.stderr[-1500:]}"
                )
                if not ok:
                    rows.append(f"| {date.today()} | `{shlex.join(cmd[1:])}` | {card()} | failed | |")
        print(f"2. sharing one GPU ({SHARED} trials vs 1)")
        rows.append(sharing(Path(tmp), min(150, end - time.monotonic()), args.dry_run))
        print("3. a short budget_search sweep")
        rows.append(budget_search(Path(tmp), max(30, end - time.monotonic()), args.dry_run))
    if args.dry_run:
        return
    for row in rows:
        print(row)
    record(rows)


if __name__ == "__main__":
    main()
