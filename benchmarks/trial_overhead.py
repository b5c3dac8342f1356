"""What a sweep pays per trial besides training: from a trial's launch to its first training step.

    python benchmarks/trial_overhead.py [--data ../shared/data/cifar10-dev.npz] [--trials 6] [-- SWEEP ARGS]

Runs `python run.py -m` (Hydra's basic launcher: every trial in this one process, as a sweep on
one machine does) over `seed=0..trials-1` by default, or over the sweep arguments given after
`--` (e.g. `hydra/sweeper=ablation optimizer.lr=1e-3,2e-3,3e-3`), with a Hydra callback that
stamps each job's start and end and the moment its first epoch starts training. A trial's launch
is the end of the one before it (the first: the start of the multirun), so the overhead counts
the sweeper's and the launcher's work too (composing the trial's config, sizing it, Hydra's job
folder and logs), then the trainer's (checks, the dataset, the model). The first trial is the
cold one (it decodes the dataset); the later ones show what a warm process pays.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMPS_ENV = "TRIAL_OVERHEAD_STAMPS"

try:  # the callback side, imported by Hydra inside the sweep (PYTHONPATH=benchmarks)
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


class Stamps(Callback):
    """Appends (event, perf_counter) lines to $TRIAL_OVERHEAD_STAMPS."""

    def __init__(self) -> None:
        import budgetsweep.trainer.loop

        train_epoch = budgetsweep.trainer.loop.train_epoch

        def stamped(*args, **kwargs):
            if args[-1] == 1:  # the epoch number: the first epoch's first step is next
                self._stamp("first_step")
            return train_epoch(*args, **kwargs)

        budgetsweep.trainer.loop.train_epoch = stamped

    def _stamp(self, event: str) -> None:
        with open(os.environ[STAMPS_ENV], "a") as f:
            f.write(json.dumps([event, time.perf_counter()]) + "\n")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._stamp("multirun_start")

    def on_job_start(self, config, **kwargs) -> None:
        self._stamp("job_start")

    def on_job_end(self, config, job_return, **kwargs) -> None:
        self._stamp("job_end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data" / "cifar10_sample.npz"))
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("sweep", nargs="*", help="after --: the sweep's own arguments (default: seeds)")
    args = parser.parse_args()
    sweep = args.sweep or [f"seed={','.join(map(str, range(args.trials)))}"]
    with tempfile.TemporaryDirectory() as tmp:
        stamps = Path(tmp) / "stamps.jsonl"
        cmd = [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            "model=resnet_small",
            "data=npz",
            f"data.path={Path(args.data).resolve()}",
            "data.train_subset=256",  # a short training: the overhead is what is measured
            "epochs=1",
            "progress=false",
            f"hydra.sweep.dir={tmp}/sweep",
            "+hydra.callbacks.stamps._target_=trial_overhead.Stamps",
            *sweep,
        ]
        env = {**os.environ, STAMPS_ENV: str(stamps), "PYTHONPATH": str(ROOT / "benchmarks")}
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
        events = [json.loads(line) for line in stamps.read_text().splitlines()]
        trains = sorted(
            (json.loads(p.read_text())["train_seconds"], p.parent.name)
            for p in Path(tmp, "sweep").glob("*/metrics.json")
        )
    launched = events[0][1]  # multirun_start
    rows = []
    for event, t in events[1:]:
        if event == "job_start":
            job_start = t
        elif event == "first_step":
            rows.append(dict(to_first_step=t - launched, in_job=t - job_start))
        elif event == "job_end":
            rows[-1]["job"] = t - job_start
            launched = t
    print(f"{len(rows)} trials, {len(trains)} with metrics; seconds from a trial's launch:")
    print("| trial | to its first training step | of which inside the job | job (incl. 1 short epoch) |")
    print("|---|---|---|---|")
    for i, r in enumerate(rows):
        print(f"| {i}{' (cold)' if i == 0 else ''} | {r['to_first_step']:.3f} | {r['in_job']:.3f} | {r['job']:.2f} |")
    warm = [r["to_first_step"] for r in rows[1:]]
    if warm:
        print(f"warm trials: median {statistics.median(warm):.3f} s, max {max(warm):.3f} s to the first step")
    print(f"load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
