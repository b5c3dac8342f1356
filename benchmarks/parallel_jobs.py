"""Jobs sharing a machine: each job's images/s against a lone job's, with the default threads=auto.

    python benchmarks/parallel_jobs.py [--data ../shared/data/cifar10-dev.npz] [--jobs 2 3] [--epochs 3]
        [--cases torch joblib env independent]

In one run, interleaved: a lone job (`python run.py`, defaults), then for each count in `--jobs`
that many jobs at once, each case of `--cases` (all by default), each job's images/s from its
metrics.json:
1. `torch`: torch's own thread count in every job (`threads=null`, the default before threads=auto);
2. `joblib`: a sweep through the joblib launcher (`hydra/launcher=joblib hydra.launcher.n_jobs=JOBS`):
   threads=auto reads the launcher's n_jobs;
3. `env`: separate processes with $BUDGETSWEEP_JOBS_PER_MACHINE=JOBS (several sweep workers);
4. `independent`: separate `python run.py` processes with nothing set, started together: each
   finds the others in the registry of training jobs (`trainer.cores`);
then the lone job again (the load may drift). The goal: each of two jobs at least 45% of a lone
job, each of three at least 28%.
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
from budgetsweep.trainer.cores import REGISTRY_ENV

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


CASES = ("torch", "joblib", "env", "independent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "cifar10_sample.npz"))
    parser.add_argument("--jobs", type=int, nargs="+", default=[2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = parser.parse_args()
    base = [*MODEL, "data=npz", f"data.path={Path(args.data).resolve()}", f"epochs={args.epochs}", "progress=false"]
    if args.train_subset:
        base.append(f"data.train_subset={args.train_subset}")
    # The registry of training jobs is this run's own: jobs of other programs on the machine
    # would change what threads=auto chooses here.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        own = {REGISTRY_ENV: str(tmp / "registry")}
        results: dict[str, list[float]] = {}

        def together(name: str, runs: list[tuple[list[str], dict]]) -> None:
            case = tmp / f"case{len(results)}"
            wait([start(a, case / str(i), {**own, **e}) for i, (a, e) in enumerate(runs)])
            results[name] = [x for i in range(len(runs)) for x in images_per_second(case / str(i))]

        together("lone", [(base, {})])
        for n in args.jobs:
            if "torch" in args.cases:
                together(f"{n} jobs, torch's threads (`threads=null`)", [([*base, "threads=null"], {})] * n)
            if "joblib" in args.cases:
                seeds = ",".join(str(s) for s in range(n))
                sweep = ["-m", *base, "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n}", f"seed={seeds}"]
                together(f"{n} jobs, joblib launcher `n_jobs={n}`", [(sweep, {})])
            if "env" in args.cases:
                together(f"{n} jobs, `{JOBS_ENV}={n}`", [(base, {JOBS_ENV: str(n)})] * n)
            if "independent" in args.cases:
                together(f"{n} independent `python run.py`, defaults", [(base, {})] * n)
        together("lone again", [(base, {})])
    alone = statistics.mean(results["lone"] + results["lone again"])
    print(f"{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.2f}; vs the mean of the two lone jobs")
    print("| setting | each job's img/s | vs a lone job |")
    print("|---|---|---|")
    for name, values in results.items():
        each = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {name} | {each} | {', '.join(f'{v / alone:.0%}' for v in values)} |")


if __name__ == "__main__":
    main()
