"""`python run.py -m hydra/sweeper=ablation ...` end to end: real (tiny) training, metrics.json checked."""

from __future__ import annotations

import json
import subprocess
import sys

from hydra import compose, initialize_config_dir

from helpers import ROOT, TINY_ABLATION


def quick_baseline() -> tuple[int, str]:
    """model.C and the optimizer choice that experiment=quick composes to."""
    from budgetsweep.trainer.schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf")):
        cfg = compose("config", ["experiment=quick"], return_hydra_config=True)
    return cfg.model.C, cfg.hydra.runtime.choices.optimizer


def test_run_py_ablation_records_every_job_and_over_budget_is_not_fatal(tmp_path):
    base_c, base_opt = quick_baseline()
    cs, opts, repeats, budget = (8, 12), ("adam", "sgd"), 2, 25_000  # C=12: ~45k params, over the budget
    out = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "run.py",
            "-m",
            "hydra/sweeper=ablation",
            *TINY_ABLATION,
            f"model.C={','.join(map(str, cs))}",
            f"optimizer={','.join(opts)}",
            f"hydra.sweeper.repeats={repeats}",
            f"budget.max_params={budget}",
            f"hydra.sweep.dir={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    variants = (
        [(None, None)]
        + [("model.C", str(c)) for c in cs if c != base_c]
        + [("optimizer", o) for o in opts if o != base_opt]
    )
    expected = [(f, v, f is None, r) for r in range(repeats) for f, v in variants]
    folders = sorted((p for p in out.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    assert len(folders) == len(expected) == (1 + 1 + 1) * repeats
    metrics = [json.loads((p / "metrics.json").read_text()) for p in folders]
    assert [(m["factor"], m["value"], m["baseline"], m["repeat"]) for m in metrics] == expected
    assert [m["seed"] for m in metrics] == [e[3] for e in expected]  # seed 0 + repeat

    for m in metrics:
        over = m["factor"] == "model.C" and int(m["value"]) > base_c
        assert m["status"] == ("over_budget" if over else "completed"), m
        assert (m["params"] > budget) is over and m["max_params"] == budget
        assert m["epochs"] == (0 if over else 1)
    assert "> budget 25,000" in proc.stdout + proc.stderr  # the plan says so before launching
    assert not list(out.rglob("sweep_record.json"))  # run.py records its runs itself: no second record
    log = proc.stdout + proc.stderr
    assert f"Ablation: {len(expected)} runs: {len(expected) - repeats} completed, {repeats} over_budget" in log
    assert "Ablation: val_acc (maximize), mean over repeats of completed runs; baseline " in log
    assert f"tables and plots: budgetsweep analyze {out}" in log
