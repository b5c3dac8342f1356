"""End to end: a tiny real ablation sweep (synthetic data, one epoch), then `python -m budgetsweep.analysis`.

~20 s on one free core: two 160-image runs and one config that is sized but never trained.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from helpers import ROOT, TINY_RUN


def test_ablation_sweep_then_analysis(tmp_path):
    # Baseline: experiment=quick's C=8, B=1 (19,954 params); B=2 (44,370) trains;
    # C=16 (78,042) is over the budget: sized, recorded, never trained.
    sweep = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            "-m",
            "hydra/sweeper=ablation",
            *TINY_RUN,
            "model.B=1,2",
            "model.C=8,16",
            "budget.max_params=50000",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "outputs" / "ablation").iterdir()  # the ablation sweeper's own folder
    statuses = sorted(
        json.loads((d / "metrics.json").read_text())["status"]
        for d in sweep_dir.iterdir()
        if (d / "metrics.json").is_file()
    )
    assert statuses == ["completed", "completed", "over_budget"]

    # No SWEEP_DIR: the newest sweep under ./outputs/.
    proc = subprocess.run(
        [sys.executable, "-m", "budgetsweep.analysis"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "analysis: warning" not in proc.stderr, proc.stderr
    out = sweep_dir / "analysis"
    for stem in ("ablation_model_B", "ablation_model_C"):
        for ext in (".md", ".csv", ".tex", ".png"):
            assert (out / f"{stem}{ext}").stat().st_size > 0, stem + ext
    for png in ("accuracy_vs_params.png", "learning_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png

    b = pd.read_csv(out / "ablation_model_B.csv")
    assert b[["value", "baseline", "status", "n", "params"]].values.tolist() == [
        [1, True, "completed", 1, 19_954],
        [2, False, "completed", 1, 44_370],
    ]
    assert b.loc[1, "delta_val_acc"] == b.loc[1, "val_acc_mean"] - b.loc[0, "val_acc_mean"]
    c = pd.read_csv(out / "ablation_model_C.csv")
    assert c[["value", "status", "n", "params"]].values.tolist() == [
        [8, "completed", 1, 19_954],
        [16, "over_budget", 0, 78_042],
    ]

    report = (out / "report.md").read_text()
    assert "](ablation_model_C.png)" in report and "](learning_curves.png)" in report
    assert "python run.py experiment=quick" in report  # the combined config's command
    assert "over_budget" in report
