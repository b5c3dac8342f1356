"""A grid read as a grid (analysis/grid.py): one row per cell, mean ± std over its seeds, the
factor x factor table and its heatmap, no run left out; one-at-a-time tables only when a
baseline is asked for. And the summary callback that ends a grid of any app (sweeper/callbacks.py)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from budgetsweep.analysis import analyze
from budgetsweep.analysis.output import write

from helpers import grid_sweep, run_foreign_app, run_py


@pytest.fixture
def grid(tmp_path):
    return grid_sweep(tmp_path / "grid")  # model.C 8,16,32 x optimizer.lr 0.001,0.01; C=16 lr=0.001 twice


def test_a_grid_gets_its_cells_and_its_pivot_not_one_at_a_time_tables(grid):
    result = analyze([grid])
    assert result.ablation is None and result.combined is None
    g = result.grid
    assert g.factors == ["model.C", "optimizer.lr"]
    cells = g.cells.set_index(["model.C", "optimizer.lr"])
    assert cells.loc[("16", "0.001"), "val_acc_mean"] == pytest.approx(0.51)
    assert cells.loc[("16", "0.001"), "val_acc_std"] == pytest.approx(pd.Series([0.50, 0.52]).std())
    assert cells.loc[("16", "0.001"), "n"] == 2
    assert list(g.cells["val_acc_mean"])[:2] == pytest.approx([0.60, 0.55])  # best first
    assert g.pivot.loc["32", "0.01"] == pytest.approx(0.30) and list(g.pivot.index) == ["8", "16", "32"]
    assert sum(g.cells["runs"]) == 7  # every run is in a cell: none left out


def test_the_report_of_a_grid_shows_the_pivot_and_the_heatmap(grid, tmp_path):
    files = {f.name for f in write(analyze([grid]), tmp_path / "out")}
    assert {"grid_cells.csv", "grid_pivot.md", "grid_heatmap.png"} <= files
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Grid" in report and "### `model.C` × `optimizer.lr`" in report
    assert "| 16                       | 51.00 ± 1.41 | 55.00  |" in report  # mean ± std in percent, over the two seeds
    assert "left out" not in report and "## One-at-a-time ablations" not in report


def test_a_partial_grid_says_which_combinations_ran(tmp_path):
    root = grid_sweep(tmp_path / "grid")
    shutil.rmtree(root / "6")  # C=32 lr=0.01 never ran
    result = analyze([root])
    assert any("a partial grid: 5 of the 6 combinations" in n for n in result.grid.notes)
    assert pd.isna(result.grid.pivot.loc["32", "0.01"])


def test_one_at_a_time_tables_of_a_grid_when_a_baseline_is_given(grid):
    result = analyze([grid], baseline=["model.C=16", "optimizer.lr=0.001"])
    assert result.grid is None and result.ablation.mode == "inferred"
    assert set(result.ablation.tables) == {"model.C", "optimizer.lr"}


def test_run_pys_grid_ends_with_a_summary(tmp_path):
    r = run_py(["-m", "experiment=quick", "epochs=1", "model.C=4,8", "hydra.sweep.dir=grid"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line.split("] ", 1)[-1] for line in r.stdout.splitlines() + r.stderr.splitlines()]
    assert "Sweep: 2 runs: 2 completed" in lines and "tables and plots: budgetsweep analyze grid" in lines
    (best,) = [line for line in lines if line.startswith("Best: model.C=")]
    m = {
        c: json.loads((tmp_path / "grid" / str(j) / "metrics.json").read_text())["val_acc"] for j, c in ((0, 4), (1, 8))
    }
    winner = max(m, key=lambda c: (m[c], -c))
    assert best.startswith(f"Best: model.C={winner}, val_acc={m[winner]:.4g}")
    assert not list((tmp_path / "grid").rglob("sweep_record.json"))  # run.py's metrics.json is the record


def test_any_apps_grid_is_recorded_and_summarised_by_the_callback(tmp_path):
    callback = "++hydra.callbacks.sweep_summary._target_=budgetsweep.sweeper.callbacks.SweepSummary"
    r = run_foreign_app(tmp_path, "xy", "x=0,1", "y=0,2", "hydra.sweep.dir=grid", callback)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert "Sweep: 4 runs: 4 completed" in out and "Best: x=1 y=0, objective=0.25, in grid/2" in out
    record = json.loads((tmp_path / "grid" / "2" / "sweep_record.json").read_text())
    assert (record["objective"], record["directions"]) == (0.25, {"objective": "minimize"})
    assert sorted(record["overrides"]) == ["x=1", "y=0"]
