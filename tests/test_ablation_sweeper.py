"""The ablation sweeper inside Hydra, with the project's conf/ and a task that trains nothing.

Each test runs a tiny app (written to tmp_path) as `python app.py -m ...`: the job writes
what it received (cfg.sweep, seed, model, optimizer) to job.json in its folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT

APP = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from budgetsweep.trainer.schema import register_configs

register_configs()


@hydra.main(config_path={conf!r}, config_name="config")
def main(cfg):
    job = dict(sweep=OmegaConf.to_container(cfg.sweep), seed=cfg.seed, model=OmegaConf.to_container(cfg.model),
               optimizer=HydraConfig.get().runtime.choices.optimizer, batch_size=cfg.batch_size,
               overrides=list(HydraConfig.get().overrides.task))
    Path(HydraConfig.get().runtime.output_dir, "job.json").write_text(json.dumps(job))
    if cfg.model.C == 5:
        raise RuntimeError("C=5 raises")
    return 0.0


main()
"""


def sweep(tmp_path: Path, *args: str, default_dir: bool = False) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """The app's sweep in tmp_path/sweep, or in the sweeper's default folder (`default_dir`)."""
    app = tmp_path / "app.py"
    app.write_text(APP.format(root=str(ROOT), conf=str(ROOT / "conf")))
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, str(app), "-m", *args, *([] if default_dir else [f"hydra.sweep.dir={out}"])],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if default_dir:
        out = next((tmp_path / "outputs" / "ablation").iterdir(), out)
    jobs = sorted(out.glob("*/job.json"), key=lambda p: int(p.parent.name))
    assert [int(p.parent.name) for p in jobs] == list(range(len(jobs))), "job folders are 0..n-1"
    return proc, [json.loads(p.read_text()) for p in jobs]


def coords(jobs: list[dict]) -> list[tuple]:
    return [
        (j["sweep"]["factor"], j["sweep"]["value"], j["sweep"]["baseline"], j["sweep"]["repeat"], j["seed"])
        for j in jobs
    ]


def test_one_factor_at_a_time_with_repeats(tmp_path):
    # experiment=quick: resnet_small with C=8, B=1; adam
    proc, jobs = sweep(
        tmp_path,
        "hydra/sweeper=ablation",
        "experiment=quick",
        "model.C=4,8,8.0",
        "optimizer=adam,sgd",
        "model.B=[1,1,1],1",
        "hydra.sweeper.repeats=2",
        "seed=3",
    )
    assert proc.returncode == 0, proc.stderr
    per_repeat = [
        (None, None, True),
        ("model.C", "4", False),
        ("optimizer", "sgd", False),
        ("model.B", "[1, 1, 1]", False),
    ]
    assert coords(jobs) == [(*c, r, 3 + r) for r in range(2) for c in per_repeat]
    by_factor = {j["sweep"]["factor"]: j for j in jobs[:4]}
    assert by_factor[None]["model"]["C"] == 8 and by_factor[None]["optimizer"] == "adam"
    assert by_factor["model.C"]["model"]["C"] == 4 and by_factor["model.C"]["optimizer"] == "adam"
    assert by_factor["optimizer"]["optimizer"] == "sgd" and by_factor["optimizer"]["model"]["C"] == 8
    assert by_factor["model.B"]["model"]["B"] == [1, 1, 1]
    assert all("experiment=quick" in j["overrides"] for j in jobs)
    log = proc.stdout + proc.stderr
    assert "Ablation: 8 jobs = (1 baseline + 3 variants) x 2 repeats" in log
    assert "skips 8, 8.0" in log and "skips adam" in log and "skips 1 " in log
    plan = (tmp_path / "sweep" / "ablation_plan.yaml").read_text()
    assert "n_jobs: 8" in plan and (tmp_path / "sweep" / "multirun.yaml").exists()


def test_joblib_launcher_in_batches(tmp_path):
    proc, jobs = sweep(
        tmp_path,
        "hydra/sweeper=ablation",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.max_batch_size=2",
        "experiment=quick",
        "model.C=4,8,16",
    )
    assert proc.returncode == 0, proc.stderr
    assert coords(jobs) == [(None, None, True, 0, 0), ("model.C", "4", False, 0, 0), ("model.C", "16", False, 0, 0)]
    assert [j["model"]["C"] for j in jobs] == [8, 4, 16]


@pytest.mark.parametrize(
    "preset, repeats, n_jobs, logged",
    [
        ("ablation_quick", 2, (1 + 5) * 2, ["model.C=4: 5,214 params"]),
        # budget 5M: B=4, C=72, F=5, K=3 over it; N=4 leaves a 4x4 map for P=7
        (
            "seed_ablation",
            3,
            (1 + 19) * 3,
            [
                "baseline: 4,883,906 params",
                "model.C=72: 5,474,746 params > budget",
                "model.N=4: invalid (model.P: pool kernel 7",
            ],
        ),
    ],
)
def test_presets(tmp_path, preset, repeats, n_jobs, logged):
    proc, jobs = sweep(tmp_path, f"experiment={preset}")
    assert proc.returncode == 0, proc.stderr
    assert len(jobs) == n_jobs
    assert sum(j["sweep"]["baseline"] for j in jobs) == repeats
    assert len(set(coords(jobs))) == n_jobs  # no variant twice
    for line in logged:
        assert line in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["model.X=1,2"], "ablation: factor 'model.X' is not a key or config group of the composed config"),
        (["model.C=4,8", "hydra.sweeper.repeats=0"], "ablation: hydra.sweeper.repeats must be an int >= 1, got 0"),
        (
            ["optimizer=adam,nope"],
            "ablation: variant optimizer=nope does not compose: In 'config': Could not find 'optimizer/nope'",
        ),
    ],
    ids=["unknown key", "repeats 0", "unknown group option"],
)
def test_bad_input_fails_before_any_job_with_one_line(tmp_path, args, message):
    proc, jobs = sweep(tmp_path, "hydra/sweeper=ablation", "experiment=quick", *args)
    assert proc.returncode == 1
    assert jobs == []
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ablation:")]
    assert len(errors) == 1 and errors[0].startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("rate, rc", [(0.0, 1), (0.5, 0)])
def test_a_job_that_raises_does_not_stop_the_others(tmp_path, rate, rc):
    proc, jobs = sweep(
        tmp_path, "hydra/sweeper=ablation", "experiment=quick", "model.C=5,16", f"hydra.sweeper.max_failure_rate={rate}"
    )
    assert [j["model"]["C"] for j in jobs] == [8, 5, 16]  # all three ran
    assert proc.returncode == rc
    log = proc.stdout + proc.stderr
    assert "1 of 3 jobs raised (first: job 1 experiment=quick model.C=5" in log and "RuntimeError: C=5 raises" in log


def test_the_default_folder_is_named_by_the_plan_and_each_job_gets_the_sweepers_record(tmp_path):
    # run.py's conf sets hydra.sweep.dir to outputs/sweeps/<time>: the ablation's own folder wins,
    # named by the preset and the plan, so the same command finds it again
    args = ("hydra/sweeper=ablation", "experiment=quick", "model.C=5,16", "hydra.sweeper.max_failure_rate=0.5")
    proc, jobs = sweep(tmp_path, *args, default_dir=True)
    assert proc.returncode == 0, proc.stderr
    (out,) = (tmp_path / "outputs" / "ablation").iterdir()
    assert out.name.startswith("quick-") and not (tmp_path / "outputs" / "sweeps").exists()
    assert [j["model"]["C"] for j in jobs] == [8, 5, 16]
    # the app returns 0.0 and writes no metrics.json: the record names run.py's objective, val_acc
    records = [json.loads((out / str(k) / "sweep_record.json").read_text()) for k in range(3)]
    assert [(r["status"], r["objective"], r["error"]) for r in records] == [
        ("completed", 0.0, None),
        ("failed", None, "RuntimeError: C=5 raises"),
        ("completed", 0.0, None),
    ]
    assert all(r["objective_name"] == "val_acc" and r["directions"] == {"val_acc": "maximize"} for r in records)
    assert [(r["factor"], r["value"], r["baseline"], r["repeat"]) for r in records] == [
        (None, None, True, 0),
        ("model.C", "5", False, 0),
        ("model.C", "16", False, 0),
    ]
    assert records[1]["overrides"] == ["experiment=quick", "model.C=5", "sweep.factor=model.C", "sweep.value='5'",
                                       "sweep.baseline=false", "sweep.repeat=0"]  # fmt: skip
    assert records[0]["params"] > 0 and records[2]["params"] > records[0]["params"]  # sized: run.py's budget
    assert all(r["max_params"] == records[0]["max_params"] is not None for r in records)
    log = proc.stdout + proc.stderr
    assert "  model.C: best model.C=16: 0, gain +0" in log
    assert f"tables and plots: budgetsweep analyze outputs/ablation/{out.name}" in log

    again, _ = sweep(tmp_path, *args, default_dir=True)
    assert f"resuming in {out}: 2 of 3 jobs finished before" in again.stdout  # the failed one ran again
    assert again.returncode == 1  # and raised again: 1 of the 1 run, over the rate
