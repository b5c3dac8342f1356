"""An ablation sweep rerun in its folder: finished variants are kept and not run again, an
interrupted one resumes from its checkpoint, and a changed plan is refused in one line (its runs
would mix with the old ones in analysis). Real `run.py` processes, killed with SIGKILL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from budgetsweep.contract import load_metrics

from helpers import ROOT, RUN_PY, TINY_TO_INTERRUPT, env, kill_when, run_folders, start_sweep

RESULTS = ("metrics.json", "history.csv", "weights.pt")


def command(out: Path, *factors: str) -> list[str]:
    return [
        *RUN_PY,
        "-m",
        "hydra/sweeper=ablation",
        *TINY_TO_INTERRUPT,
        *factors,
        f"hydra.sweep.dir={out}",
    ]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)


def results(folders: list[Path]) -> dict:
    return {f: (f.read_bytes(), f.stat().st_mtime_ns) for p in folders for f in p.iterdir() if f.name in RESULTS}


@pytest.mark.slow
def test_a_rerun_keeps_finished_variants_resumes_the_interrupted_one_and_refuses_another_plan(tmp_path):
    out = tmp_path / "sweep"
    args = command(out, "model.C=8,12", "optimizer=adam,sgd")  # the baseline, C=8 or 12, sgd: 3 jobs
    proc = start_sweep(args, ROOT)
    # killed once job 0 finished and job 1 is between its epochs
    kill_when(proc, lambda: (out / "0" / "metrics.json").exists() and (out / "1" / "checkpoint.pt").exists(), 300)
    assert not (out / "1" / "metrics.json").exists()
    finished = results([out / "0"])

    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 of 3 jobs finished before" in rerun.stdout
    assert results([out / "0"]) == finished  # kept as it was, not trained again
    assert "resumed from" in (out / "1" / "run.log").read_text()  # from its checkpoint, in its folder
    metrics = [load_metrics(p) for p in run_folders(out)]
    assert [m["status"] for m in metrics] == ["completed"] * 3 and all(m["epochs"] == 3 for m in metrics)
    assert len({(m["factor"], m["value"]) for m in metrics}) == 3  # each variant once

    done = results(run_folders(out))
    again = run(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 of 3 jobs finished before" in again.stdout
    assert results(run_folders(out)) == done and len(run_folders(out)) == 3

    for changed, named in (
        (command(out, "model.C=8,12,16", "optimizer=adam,sgd"), "new: model.C=16"),
        ([*args, "epochs=2"], "epochs=2"),
    ):
        refused = run(changed)
        assert refused.returncode != 0
        assert "Traceback" not in refused.stderr
        (line,) = [x for x in refused.stderr.splitlines() if x.strip()]
        assert "holds an ablation with another plan" in line and named in line and "hydra.sweep.dir" in line
        assert results(run_folders(out)) == done and len(run_folders(out)) == 3  # nothing run, nothing touched


def test_a_folder_with_runs_but_no_plan_is_refused(tmp_path):
    out = tmp_path / "sweep"
    (out / "0" / ".hydra").mkdir(parents=True)
    (out / "0" / ".hydra" / "overrides.yaml").write_text("- model.C=8\n")
    refused = run(command(out, "model.C=8,12"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "holds runs of another sweep" in refused.stderr
    assert not (out / "ablation_plan.yaml").exists()
