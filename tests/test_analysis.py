"""analysis/ on hand-made run folders: collect, ablation tables, combine-the-best, the CLI.

No training: each run folder is written by `make_run` through the run contract's writers
(`contract`). Sizes come from the real `models.check_budget`.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from budgetsweep.analysis import AnalysisError, ablation_tables, analyze, collect, combine_best, write
from budgetsweep.contract.layouts import AblationPlanRecord, PlannedVariant, write_ablation_plan
from budgetsweep.contract.values import canon

from helpers import BASE_MODEL, BUDGET, ROOT, ablation_job, grid_sweep, make_run

# models.count_params of BASE_MODEL with one change (checked against models/ by the test below).
SIZES = {
    (): 78_042,
    ("C", 8): 19_954,
    ("C", 32): 308_650,
    ("C", 64): 1_227_594,
    ("B", 2): 175_258,
    ("C", 32, "B", 2): 696_618,
}


@pytest.fixture
def ablation_sweep(tmp_path: Path) -> Path:
    """An ablation sweep of 4 factors around BASE_MODEL (C=16, B=1, lr=1e-3, P=8).

    Baseline: 3 repeats, val 0.50/0.52/0.54. model.C: 8 (one run), 32 (two repeats), 64 over
    the budget. model.B=2: two repeats and one corrupt metrics.json. optimizer.lr=0.01: one
    run without history.csv and one diverged. model.P=9: invalid (cannot build).
    """
    sweep = tmp_path / "sweep"
    jobs = [
        dict(val=0.50, repeat=0),
        dict(val=0.52, repeat=1),
        dict(val=0.54, repeat=2),
        dict(factor="model.C", value="8", model={"C": 8}, val=0.45, params=SIZES[("C", 8)]),
        dict(factor="model.C", value="32", model={"C": 32}, val=0.60, params=SIZES[("C", 32)]),
        dict(factor="model.C", value="32", model={"C": 32}, val=0.62, repeat=1, params=SIZES[("C", 32)]),
        dict(factor="model.C", value="64", model={"C": 64}, status="over_budget", params=SIZES[("C", 64)]),
        dict(factor="model.B", value="2", model={"B": 2}, val=0.55, params=SIZES[("B", 2)]),
        dict(factor="model.B", value="2", model={"B": 2}, val=0.57, repeat=1, params=SIZES[("B", 2)]),
        dict(factor="model.B", value="2", model={"B": 2}, repeat=2, metrics='{"status": "compl'),
        dict(factor="optimizer.lr", value="0.01", lr=0.01, val=0.53, history=False),
        dict(factor="optimizer.lr", value="0.01", lr=0.01, repeat=1, status="diverged"),
        dict(factor="model.P", value="9", model={"P": 9}, status="invalid"),
    ]
    for i, job in enumerate(jobs):
        if job.get("status") != "invalid":  # every sized run records its params
            job.setdefault("params", SIZES[()])
        ablation_job(sweep, str(i), **job)
    return sweep


def rows(table: pd.DataFrame) -> list[tuple]:
    """(value, baseline, status, runs, n) per row: the exact shape of a table."""
    return list(table[["value", "baseline", "status", "runs", "n"]].itertuples(index=False, name=None))


def test_sizes_match_models():
    models = pytest.importorskip("models")
    for change, expected in SIZES.items():
        cfg = dict(BASE_MODEL, **dict(zip(change[::2], change[1::2], strict=True)))
        assert models.count_params(cfg) == expected, change


def test_collect_reads_every_run_and_warns_once_per_problem(ablation_sweep, caplog):
    df = collect(ablation_sweep)
    assert len(df) == 13
    assert list(df["job"]) == [str(i) for i in range(13)]  # natural order: 2 before 10
    assert df["status"].value_counts().to_dict() == {
        "completed": 9,
        "over_budget": 1,
        "corrupt": 1,
        "diverged": 1,
        "invalid": 1,
    }
    warnings = df.attrs["warnings"]
    assert len(warnings) == 2, warnings  # the corrupt metrics.json, the missing history.csv
    assert any("9/metrics.json: unreadable" in w and w.endswith("shown with status 'corrupt'") for w in warnings)
    assert any("10/history.csv: missing" in w for w in warnings)
    assert len([r for r in caplog.records if r.name.startswith("budgetsweep.analysis")]) == 2
    # The corrupt run keeps its ablation coordinates from the config's sweep.* fields.
    corrupt = df[df["status"] == "corrupt"].iloc[0]
    assert (corrupt["factor"], corrupt["value"], corrupt["config"]["model"]["B"]) == ("model.B", "2", 2)
    assert corrupt["error"].startswith("metrics.json unreadable (Unterminated string")
    # Each config stays nested data: lists are lists, not text to parse back.
    assert df.loc[0, "choice.optimizer"] == "adam" and df.loc[0, "config"]["optimizer"]["lr"] == 0.001
    assert df.loc[0, "config"]["model"] == BASE_MODEL
    assert list(df["has_history"]) == [True] * 6 + [False, True, True] + [False] * 4
    assert list(df.loc[[0, 4, 5], "label"]) == ["baseline seed=0", "model.C=32 seed=0", "model.C=32 seed=1"]


def test_collect_bad_input(tmp_path):
    with pytest.raises(AnalysisError, match="no such folder"):
        collect(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match="no runs found"):
        collect(tmp_path / "empty")


def test_recorded_ablation_tables_exact(ablation_sweep):
    abl = ablation_tables(collect(ablation_sweep))
    assert abl.mode == "recorded"
    assert abl.baseline == {"model.C": "16", "model.B": "1", "optimizer.lr": "0.001", "model.P": "8"}
    assert list(abl.tables) == ["model.C", "model.B", "optimizer.lr", "model.P"]

    c = abl.tables["model.C"]
    assert rows(c) == [
        ("8", False, "completed", 1, 1),
        ("16", True, "completed", 3, 3),
        ("32", False, "completed", 2, 2),
        ("64", False, "over_budget", 1, 0),
    ]
    assert list(c["params"]) == [19_954, 78_042, 308_650, 1_227_594]
    assert c["val_acc_mean"].tolist()[:3] == pytest.approx([0.45, 0.52, 0.61])
    assert math.isnan(c.loc[3, "val_acc_mean"])
    assert math.isnan(c.loc[0, "val_acc_std"])  # n = 1: no std
    assert c.loc[1, "val_acc_std"] == pytest.approx(0.02)  # sample std of .50 .52 .54
    assert c.loc[2, "val_acc_std"] == pytest.approx(0.01 * math.sqrt(2))
    assert c["delta_val_acc"].tolist()[:3] == pytest.approx([-0.07, 0.0, 0.09])
    assert c["test_acc_mean"].tolist()[:3] == pytest.approx([0.44, 0.51, 0.60])
    assert c.loc[1, "epochs"] == 3 and c.loc[1, "train_seconds"] == 10.0

    b = abl.tables["model.B"]
    assert rows(b) == [("1", True, "completed", 3, 3), ("2", False, "completed 2, corrupt 1", 3, 2)]
    assert b.loc[1, "val_acc_mean"] == pytest.approx(0.56)
    assert b.loc[1, "delta_val_acc"] == pytest.approx(0.04)

    lr = abl.tables["optimizer.lr"]
    assert rows(lr) == [("0.001", True, "completed", 3, 3), ("0.01", False, "completed 1, diverged 1", 2, 1)]
    assert lr.loc[1, "delta_val_acc"] == pytest.approx(0.01)

    p = abl.tables["model.P"]
    assert rows(p) == [("8", True, "completed", 3, 3), ("9", False, "invalid", 1, 0)]
    assert pd.isna(p.loc[1, "params"])


def test_combine_best_falls_back_when_over_budget(ablation_sweep):
    pytest.importorskip("models")
    df = collect(ablation_sweep)
    result = combine_best(df, ablation_tables(df))
    assert result.budget == BUDGET
    # Each factor's best: C=32, B=2, lr=0.01 (P=9 never completed): 696,618 > 500,000.
    assert result.best_each.changes == {"model.C": "32", "model.B": "2", "optimizer.lr": "0.01"}
    assert (result.best_each.params, result.best_each.status) == (696_618, "over_budget")
    # Highest summed gain that fits: C=32 (+0.09) with lr=0.01 (+0.01), B stays 1.
    assert result.fallback
    assert result.chosen.changes == {"model.C": "32", "optimizer.lr": "0.01"}
    assert result.chosen.params == 308_650
    assert result.chosen.gain == pytest.approx(0.10)
    assert result.chosen.command == "python run.py experiment=quick model.C=32 optimizer.lr=0.01"
    assert result.searched == 3 * 2 * 2 * 1  # C: 32, 16, 8; B: 2, 1; lr: 0.01, 0.001; P: 8


def test_combine_best_without_fallback_when_it_fits(ablation_sweep):
    pytest.importorskip("models")
    df = collect(ablation_sweep)
    result = combine_best(df, ablation_tables(df), budget=1_000_000)
    assert not result.fallback and result.searched == 1
    assert result.chosen.changes == {"model.C": "32", "model.B": "2", "optimizer.lr": "0.01"}
    assert result.chosen.params == 696_618
    assert result.chosen.command == "python run.py experiment=quick model.C=32 model.B=2 optimizer.lr=0.01"


def test_combine_best_top_k_1_keeps_the_baseline_option(ablation_sweep):
    pytest.importorskip("models")
    df = collect(ablation_sweep)
    result = combine_best(df, ablation_tables(df), budget=200_000, top_k=1)
    # C=32 alone is over 200k; the best that fits: B=2 (+0.04) and lr=0.01 (+0.01).
    assert result.chosen.changes == {"model.B": "2", "optimizer.lr": "0.01"}
    assert result.chosen.params == 175_258


def test_combine_best_takes_its_verdicts_from_check_budget(ablation_sweep):
    """The one sizing path, injected: what it calls invalid is never chosen, and a bug in it
    (any other exception) propagates instead of passing for an infeasible config."""
    models = pytest.importorskip("models")
    df = collect(ablation_sweep)
    abl = ablation_tables(df)
    seen = []

    def check(model_cfg, max_params):
        seen.append((model_cfg["C"], model_cfg["B"], max_params))
        if model_cfg["C"] == 32:
            return models.Sizing("invalid", None, None, "C=32 refused by this test")
        return models.check_budget(model_cfg, max_params)

    result = combine_best(df, abl, check_budget=check)
    assert (result.best_each.status, result.best_each.error) == ("invalid", "C=32 refused by this test")
    assert result.chosen.changes == {"model.B": "2", "optimizer.lr": "0.01"}
    assert result.chosen.params == 175_258 and result.chosen.status == "fits"
    # One call per distinct model config, every one held to the recorded budget.
    assert sorted(seen) == [
        (8, 1, BUDGET),
        (8, 2, BUDGET),
        (16, 1, BUDGET),
        (16, 2, BUDGET),
        (32, 1, BUDGET),
        (32, 2, BUDGET),
    ]

    def broken(model_cfg, max_params):
        raise RuntimeError("a bug in a model family")

    with pytest.raises(RuntimeError, match="a bug in a model family"):
        combine_best(df, abl, check_budget=broken)


def test_inferred_ablation_of_a_grid_with_given_baseline(tmp_path):
    df = collect(grid_sweep(tmp_path / "grid"))
    abl = ablation_tables(df, ["model.C=16"])
    assert abl.mode == "inferred"
    # lr is not given: a tie (3 runs each) goes to job 0's value, 0.001.
    assert abl.baseline == {"model.C": "16", "optimizer.lr": "0.001"}
    c, lr = abl.tables["model.C"], abl.tables["optimizer.lr"]
    assert rows(c) == [
        ("8", False, "completed", 1, 1),
        ("16", True, "completed", 2, 2),
        ("32", False, "completed", 1, 1),
    ]
    assert c["delta_val_acc"].tolist() == pytest.approx([-0.11, 0.0, 0.09])
    assert rows(lr) == [("0.001", True, "completed", 2, 2), ("0.01", False, "completed", 1, 1)]
    assert lr.loc[1, "delta_val_acc"] == pytest.approx(0.04)
    # (8, 0.01) and (32, 0.01) differ from the baseline twice: out, and said so.
    assert any(n.startswith("2 run(s) differ") for n in abl.notes)


def test_inferred_baseline_defaults_to_most_common_values(tmp_path):
    df = collect(grid_sweep(tmp_path / "grid"))
    abl = ablation_tables(df)
    # C=16 has 3 runs (2 seeds at lr 0.001, one at 0.01): the most common value.
    assert abl.baseline == {"model.C": "16", "optimizer.lr": "0.001"}


def test_plain_folder_of_single_runs(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "2025-01-01_10-00-00", val=0.50)  # the defaults: no override
    make_run(runs, "2025-01-01_11-00-00", model={"C": 32}, val=0.58, overrides=["model.C=32"])
    make_run(runs, "2025-01-01_12-00-00", lr=1e-2, val=0.49, overrides=["optimizer.lr=1e-2"])
    abl = ablation_tables(collect(runs), ["model.C=16", "optimizer.lr=1e-3"])
    assert abl.baseline == {"model.C": "16", "optimizer.lr": "0.001"}  # 1e-3 and 0.001 match
    assert rows(abl.tables["model.C"]) == [("16", True, "completed", 1, 1), ("32", False, "completed", 1, 1)]
    assert abl.tables["optimizer.lr"]["delta_val_acc"].tolist() == pytest.approx([0.0, -0.01])


@pytest.mark.parametrize(
    "value, expected",
    [
        (1e-3, "0.001"),
        ("1e-3", "0.001"),
        ("0.001", "0.001"),
        (0.0, "0"),
        (32, "32"),
        ("32", "32"),
        ([1, 2, 2], "[1, 2, 2]"),
        ("[1,2,2]", "[1, 2, 2]"),
        ("sgd", "sgd"),
        (None, "null"),
        (True, "true"),
    ],
)
def test_canon(value, expected):
    assert canon(value) == expected


def test_cli_writes_tables_plots_and_report(ablation_sweep):
    proc = subprocess.run(
        [sys.executable, "-m", "budgetsweep.analysis", str(ablation_sweep)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = ablation_sweep / "analysis"
    for stem in ("ablation_model_C", "ablation_model_B", "ablation_optimizer_lr", "ablation_model_P"):
        for ext in (".md", ".csv", ".tex"):
            assert (out / f"{stem}{ext}").stat().st_size > 0, stem + ext
    for png in (
        "ablation_model_C.png",
        "ablation_model_B.png",
        "ablation_optimizer_lr.png",
        "ablation_model_P.png",
        "accuracy_vs_params.png",
        "learning_curves.png",
    ):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    tex = (out / "ablation_model_C.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"$\pm$" in tex
    assert pd.read_csv(out / "ablation_model_C.csv")["value"].tolist() == [8, 16, 32, 64]
    report = (out / "report.md").read_text()
    assert "](ablation_model_C.png)" in report and "](accuracy_vs_params.png)" in report
    assert "python run.py experiment=quick model.C=32 optimizer.lr=0.01" in report
    assert "| 64 " in report and "over_budget" in report  # shown, not dropped
    assert "python run.py experiment=quick model.C=32 optimizer.lr=0.01" in proc.stdout
    # One warning line per problem on stderr, no traceback.
    warning_lines = [line for line in proc.stderr.splitlines() if line.startswith("analysis: warning:")]
    assert len(warning_lines) == 2 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["does/not/exist"], "does/not/exist: no such folder"),
        (["--baseline", "model.C"], "expected KEY=VALUE"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    if args[0] == "--baseline":
        args = [str(grid_sweep(tmp_path / "g"))] + args
    proc = subprocess.run(
        [sys.executable, "-m", "budgetsweep.analysis", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_planned_variants_without_a_folder_are_shown_not_dropped(ablation_sweep):
    # The sweeper's plan lists model.C=128 (x2 repeats) and model.K=3, but the sweep stopped first.
    variants = [PlannedVariant(None, None), PlannedVariant("model.C", "128"), PlannedVariant("model.K", "3")]
    write_ablation_plan(ablation_sweep, AblationPlanRecord(repeats=2, factors={}, variants=variants, n_jobs=17))
    result = analyze([ablation_sweep])
    assert not (ablation_sweep / "analysis").exists()  # analyze computes, write writes
    c, k = result.ablation.tables["model.C"], result.ablation.tables["model.K"]
    assert rows(c)[-1] == ("128", False, "not run", 0, 0)
    assert rows(k) == [("1", True, "completed", 3, 3), ("3", False, "not run", 0, 0)]
    assert any("planned 17 jobs; 13 have a run folder" in n for n in result.ablation.notes)
    files = write(result, make_plots=False)
    assert [f.name for f in files][-2:] == ["report.md", "report.html"] and not [f for f in files if f.suffix == ".png"]
    assert "| 128 " in (ablation_sweep / "analysis" / "report.md").read_text()
