"""What the Optuna sweeper spends around each trial, against the standard plugin (hydra-optuna-sweeper).

    python benchmarks/sweeper_overhead.py [--trials 50 200] [--repeats 2] [--infeasible 60] [--infeasible-runs 3]
                                          [--sampler tpe|random]

1. Instant trials: `benchmarks/instant_app` (a function of x and y that returns at once, nothing
   of ours in it) swept over x, y in [-2, 2] with Hydra's basic launcher by our sweeper
   (`hydra/sweeper=budget_optuna`, SQLite in the study folder) and by the plugin (`hydra/sweeper=
   optuna`, SQLite, then in memory), the three alternated in one sitting, `--repeats` times. Each
   job stamps its start; a trial's cost is the gap between consecutive starts, so the process's
   start-up is left out. Printed: the median per trial, the median over trials 1-50 and over the
   last 50 (their ratio is the growth with study size), ours over the plugin's. Both use TPE,
   whose own work grows with the trials it models; `--sampler random` (Optuna's RandomSampler,
   which reads nothing of the study) leaves the engines' own growth.
2. An over-budget suggestion: run.py's ResNet (`experiment=quick`) under a budget nothing in the
   space fits, `--infeasible` suggestions, never launched; the median gap between the log lines
   that tell them infeasible, in each of `--infeasible-runs` sweeps, and the median of those.

Rows for benchmarks/RESULTS.md are printed at the end, with this command.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "benchmarks" / "instant_app" / "app.py"
SPACE = ["x=interval(-2,2)", "y=interval(-2,2)"]


def sweep_args(kind: str, n_trials: int, where: Path, sampler: str = "tpe") -> list[str]:
    study = f"hydra.sweeper.study_name={kind}"
    common = [*SPACE, f"hydra.sweeper.n_trials={n_trials}", study]
    if sampler != "tpe":  # TPE: each sweeper's default, as its users get it
        common.append(f"hydra/sweeper/sampler={sampler}")
    if kind == "ours":
        return ["hydra/sweeper=budget_optuna", f"hydra.sweeper.dir={where / 'study'}", *common]
    common.append(f"hydra.sweep.dir={where / 'sweep'}")
    if kind == "plugin_sqlite":
        return ["hydra/sweeper=optuna", f"hydra.sweeper.storage=sqlite:///{where / 'study.db'}", *common]
    return ["hydra/sweeper=optuna", *common]  # plugin_memory


def instant_sweep(kind: str, n_trials: int, sampler: str = "tpe") -> list[float]:
    """The start times of the sweep's jobs, in order."""
    with tempfile.TemporaryDirectory(prefix="overhead-") as tmp:
        where = Path(tmp)
        stamps = where / "stamps"
        env = {**os.environ, "INSTANT_STAMPS": str(stamps), "HYDRA_FULL_ERROR": "1"}
        args = [sys.executable, str(APP), "-m", *sweep_args(kind, n_trials, where, sampler)]
        done = subprocess.run(args, cwd=where, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
        starts = [float(line) for line in stamps.read_text().split()]
    if len(starts) != n_trials:
        raise SystemExit(f"{kind}: {len(starts)} jobs ran, expected {n_trials}")
    return starts


def per_trial(starts: list[float]) -> dict[str, float]:
    """Median gap; growth: the median gap of the last 50 trials over that of the first 50 (a
    pause of the machine moves a mean of 50 by a tenth; the mean's ratio is printed beside it)."""
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    head, tail = gaps[:49], gaps[-50:]
    return {
        "median": statistics.median(gaps),
        "first50": statistics.median(head),
        "last50": statistics.median(tail),
        "growth": statistics.median(tail) / statistics.median(head),
        "growth_mean": statistics.fmean(tail) / statistics.fmean(head),
    }


STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[HYDRA\] trial \d+: over_budget, not trained")


def infeasible_sweep(n: int) -> list[float]:
    """Gaps (s) between consecutive over-budget suggestions of run.py, none of which trains."""
    with tempfile.TemporaryDirectory(prefix="infeasible-") as tmp:
        args = [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            "hydra/sweeper=optuna",
            "experiment=quick",
            "budget.max_params=100",  # no ResNet of the space is that small
            f"hydra.sweeper.max_suggestions={n}",
            f"hydra.sweeper.n_trials={n}",
            f"hydra.sweeper.dir={tmp}/study",
        ]
        done = subprocess.run(args, cwd=tmp, capture_output=True, text=True)
    times = [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for m in map(STAMP.match, (done.stdout + done.stderr).splitlines())
        if m
    ]
    if len(times) < n // 2:
        raise SystemExit(f"infeasible sweep: {len(times)} over-budget lines:\n{done.stderr[-3000:]}")
    return [b - a for a, b in zip(times, times[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="*", default=[50, 200], help="study sizes (none: skip)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--infeasible", type=int, default=60, help="over-budget suggestions (0: skip)")
    parser.add_argument("--infeasible-runs", type=int, default=3, help="sweeps of over-budget suggestions")
    parser.add_argument("--sampler", choices=("tpe", "random"), default="tpe", help="of the instant sweeps")
    args = parser.parse_args()

    kinds = ("ours", "plugin_sqlite", "plugin_memory")
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for n in args.trials:
        for r in range(args.repeats):
            for kind in kinds if r % 2 == 0 else reversed(kinds):  # alternated: drift hits all alike
                t0 = time.perf_counter()
                stats = per_trial(instant_sweep(kind, n, args.sampler))
                results.setdefault((kind, n), []).append(stats)
                print(
                    f"{kind:14s} n_trials={n:4d}: median {stats['median'] * 1e3:6.1f} ms/trial, first 50 "
                    f"{stats['first50'] * 1e3:6.1f}, last 50 {stats['last50'] * 1e3:6.1f} (growth "
                    f"{stats['growth']:.2f}x, of the means {stats['growth_mean']:.2f}x), whole sweep "
                    f"{time.perf_counter() - t0:.1f} s",
                    flush=True,
                )

    def median_of(kind: str, n: int, key: str) -> float:
        return statistics.median(s[key] for s in results[(kind, n)])

    command = "python benchmarks/sweeper_overhead.py " + " ".join(sys.argv[1:])
    print(f"\n`{command.strip()}`\n")
    if args.trials:
        header = ["n_trials", "ours ms/trial", "plugin SQLite", "plugin in memory", "ours / plugin SQLite"]
        print("| " + " | ".join([*header, "growth ours", "growth plugin"]) + " |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.trials:
        ours, sql, mem = (median_of(k, n, "median") for k in kinds)
        growth = {k: median_of(k, n, "growth") for k in kinds}
        print(
            f"| {n} | {ours * 1e3:.1f} | {sql * 1e3:.1f} | {mem * 1e3:.1f} | {ours / sql:.2f}x | "
            f"{growth['ours']:.2f}x | {growth['plugin_sqlite']:.2f}x |"
        )
    if args.infeasible:
        medians = [statistics.median(infeasible_sweep(args.infeasible)) for _ in range(args.infeasible_runs)]
        runs = ", ".join(f"{m * 1e3:.1f}" for m in medians)
        median = statistics.median(medians) * 1e3
        print(
            f"\nover-budget suggestion (run.py's ResNet, never launched): median {median:.1f} ms "
            f"({len(medians)} sweep{'s' if len(medians) > 1 else ''} of {args.infeasible}: {runs} ms)"
        )


if __name__ == "__main__":
    main()
