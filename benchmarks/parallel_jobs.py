"""Jobs sharing a machine: each job's images/s against a lone job's, with the default threads=auto.

    python benchmarks/parallel_jobs.py [--data ../shared/data/cifar10-dev.npz] [--jobs 2] [--epochs 3]

In one run, interleaved: a lone job (`python run.py`, defaults), then `--jobs` jobs at once three
ways, each job's images/s from its metrics.json:
1. torch's own thread count in every job (`threads=null`, the default before threads=auto);
2. a sweep through the joblib launcher (`hydra/launcher=joblib hydra.launcher.n_jobs=JOBS`):
   threads=auto reads the launcher's n_jobs;
3. separate processes with $BUDGETSWEEP_JOBS_PER_MACHINE=JOBS (several sweep workers).
then the lone job again (the load may drift). The goal: each job at least 40% of a lone job.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from budgetsweep.contract.sweep import JOBS_ENV

ROOT = Path(__file__).resolve().parents[1]
MODEL = ["model=resnet", "model.N=3", "model.B=1", "model.C=16", "model.P=4"]


def images_per_second(folder: Path) -> list[float]:
    return [json.loads(p.read_text())["images_per_second"] for p in sorted(folder.glob("**/metrics.json"))]


def start(args: list[str], out: Path, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "run.py"), *args]
    cmd.append(f"hydra.sweep.dir={out}" if "-m" in args else f"hydra.run.dir={out}")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def wait(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"a job failed: {err.decode()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "cifar10_sample.npz"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=None)
    args = parser.parse_args()
    base = [*MODEL, "data=npz", f"data.path={Path(args.data).resolve()}", f"epochs={args.epochs}", "progress=false"]
    if args.train_subset:
        base.append(f"data.train_subset={args.train_subset}")
    n = args.jobs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results: dict[str, list[float]] = {}

        def lone(name: str) -> None:
            wait([start(base, tmp / name)])
            results[name] = images_per_second(tmp / name)

        lone("lone")
        wait([start([*base, "threads=null"], tmp / f"torch{i}") for i in range(n)])
        results["torch's threads"] = [x for i in range(n) for x in images_per_second(tmp / f"torch{i}")]
        seeds = ",".join(str(s) for s in range(n))
        wait([start(["-m", *base, "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n}", f"seed={seeds}"], tmp / "jl")])
        results["auto, joblib launcher"] = images_per_second(tmp / "jl")
        env = {JOBS_ENV: str(n)}
        wait([start(base, tmp / f"env{i}", env) for i in range(n)])
        results["auto, $BUDGETSWEEP_JOBS_PER_MACHINE"] = [
            x for i in range(n) for x in images_per_second(tmp / f"env{i}")
        ]
        lone("lone again")
    alone = statistics.mean(results["lone"] + results["lone again"])
    print(f"{os.cpu_count()} CPUs, {n} jobs at once, load average now {os.getloadavg()[0]:.2f}")
    print("| setting | each job's img/s | vs a lone job |")
    print("|---|---|---|")
    for name, values in results.items():
        each = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {name} | {each} | {', '.join(f'{v / alone:.0%}' for v in values)} |")


if __name__ == "__main__":
    main()
