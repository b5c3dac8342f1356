"""An Analysis as files, under OUT (default SWEEP_DIR/analysis/):

runs.csv                       every collected run, one row each (the config flattened)
ablation_<factor>.{md,csv,tex} one-at-a-time table per factor
ablation_<factor>.png          its chart
grid_cells.{md,csv,tex}        a grid: every cell (mean ± std over repeats), best first
grid_pivot.{md,csv,tex}, grid_heatmap.png   two factors: factor x factor
accuracy_vs_params.png         with the budget line and the Pareto front
learning_curves.png            the best runs
combined.txt                   the combine-the-best step and its `python run.py` line
optuna_<study>_trials.{md,csv,tex}, optuna_<study>_{history,reported,importances}.png
optuna_<study>_pareto.{md,csv,tex,png}  several objectives: the front (study.best_trials), knee choices
report.md                      all of the above, with relative links (readable on GitHub)
report.html                    the same in one offline page: sortable tables, plots with hover
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from budgetsweep.contract.values import canon

from . import html_report, plots, report, tables
from .ablation import slug
from .collect import AnalysisError, leaves
from .pipeline import Analysis


def output_dir(paths: list[Path], out: str | Path | None = None) -> Path:
    """`out`, else the first sweep folder's `analysis/`."""
    if out is not None:
        return Path(out)
    if not paths:
        raise AnalysisError("no SWEEP_DIR given: pass one, or --out for a study alone")
    return Path(paths[0]) / "analysis"


def runs_table(df: pd.DataFrame) -> pd.DataFrame:
    """The collected runs as flat columns: the config as cfg.<dotted.key> (lists as their
    canonical text) where the `config` column was, the overrides as one string, last."""
    config = pd.DataFrame(
        [{f"cfg.{k}": canon(v) if isinstance(v, (list, tuple)) else v for k, v in leaves(c)} for c in df["config"]],
        index=df.index,
    )
    at = df.columns.get_loc("config")
    flat = pd.concat([df.iloc[:, :at], config, df.iloc[:, at + 1 :]], axis=1)
    flat = flat.drop(columns=["overrides"]).assign(overrides=df["overrides"].map(" ".join))
    if "searched" in flat:  # as typed: "x=0.5 y=2"
        flat["searched"] = df["searched"].map(lambda v: " ".join(f"{k}={x}" for k, x in v.items()))
    return flat


def write(analysis: Analysis, out: str | Path | None = None, make_plots: bool = True) -> list[Path]:
    """Write the tables, plots, combined.txt, report.md and report.html of `analysis`; return the paths.

    Args:
        out: the folder; default `<first sweep folder>/analysis`.
        make_plots: False skips the PNGs (faster, e.g. in a terminal-only look).
    """
    out = output_dir(analysis.paths, out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if analysis.runs is not None:
        files += _write_runs(analysis, out, make_plots)
    for summary in analysis.studies:
        name = slug(summary.name)
        files += tables.write_table(
            summary.trials,
            tables.trials_display(summary.trials, summary.direction, summary.objective),
            out / f"optuna_{name}_trials",
            f"Optuna study {summary.name}: trials",
        )
        if summary.pareto is not None:
            files += tables.write_table(
                summary.pareto.table,
                tables.pareto_display(summary.pareto),
                out / f"optuna_{name}_pareto",
                f"Optuna study {summary.name}: Pareto front",
            )
        if make_plots:
            files += _drawn(
                plots.optuna_history(summary.study, out / f"optuna_{name}_history.png", summary.objective),
                plots.pruning_chart(summary.study, out / f"optuna_{name}_reported.png", summary.objective),
                plots.importances_chart(summary.importances, out / f"optuna_{name}_importances.png"),
                summary.pareto and plots.pareto_chart(summary.study, summary.pareto, out / f"optuna_{name}_pareto.png"),
            )
    path = out / "report.md"
    path.write_text(report.markdown(analysis, {f.name for f in files}))
    page = out / "report.html"
    page.write_text(html_report.page(analysis, _study_fronts(analysis), _untrained(analysis)), encoding="utf-8")
    return files + [path, page]


def _write_runs(analysis: Analysis, out: Path, make_plots: bool) -> list[Path]:
    df, files = analysis.runs, [out / "runs.csv"]
    runs_table(df).to_csv(files[0], index=False)
    abl = analysis.ablation
    for factor, table in (abl.tables if abl else {}).items():
        stem = out / f"ablation_{slug(factor)}"
        display = tables.ablation_display(table, abl.score)
        files += tables.write_table(table, display, stem, f"One-at-a-time ablation of {factor}")
        if make_plots:
            files += _drawn(plots.ablation_chart(table, factor, stem.with_suffix(".png"), abl.score))
    if analysis.grid is not None:
        grid = analysis.grid
        files += tables.write_table(
            grid.cells, tables.grid_display(grid), out / "grid_cells", "Grid: every cell, best first"
        )
        if grid.pivot is not None:
            caption = f"Grid: {grid.factors[0]} x {grid.factors[1]}, {grid.score.name} mean ± std"
            files += tables.write_table(
                grid.pivot.reset_index(), tables.pivot_display(grid), out / "grid_pivot", caption
            )
            if make_plots:
                files += _drawn(plots.grid_heatmap(grid, out / "grid_heatmap.png"))
    if analysis.combined is not None:
        files.append(out / "combined.txt")
        files[-1].write_text(report.describe_combine(analysis.combined) + "\n")
    if make_plots:
        files += _drawn(
            plots.accuracy_vs_params(
                df,
                analysis.budget,
                out / "accuracy_vs_params.png",
                _study_fronts(analysis),
                untrained=_untrained(analysis),
            ),
            plots.learning_curves(df, out / "learning_curves.png"),
        )
    return files


def _untrained(analysis: Analysis) -> list[float]:
    """The sizes of the studies' suggestions over the budget: sized, never trained, no folder."""
    sizes: list[float] = []
    for summary in analysis.studies:
        t = summary.trials
        if len(t) and "user_params" in t:
            sizes += list(pd.to_numeric(t.loc[t["kind"] == "infeasible", "user_params"], errors="coerce").dropna())
    return sizes


def _study_fronts(analysis: Analysis) -> list[str]:
    """The run folders (resolved) of the studies' Pareto fronts, to ring on the accuracy plot."""
    fronts = [s.pareto.table["run_dir"] for s in analysis.studies if s.pareto is not None]
    return [str(Path(d).resolve()) for column in fronts for d in column]


def _drawn(*paths: Path | None) -> list[Path]:
    """The pictures that were drawn (a plot with nothing to show returns None)."""
    return [p for p in paths if p is not None]
