"""An Analysis in words: the text the CLI prints, combined.txt and report.md. Pure rendering:
nothing here computes a result or writes a file (`output.write` does)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from budgetsweep.contract import is_missing

from . import pareto, tables
from .ablation import slug
from .best import best_run, objective_name, ranked, weights_path
from .best import score as score_of
from .collect import STATUS_ORDER, lookup
from .combine import Combination, CombineResult
from .grid import Grid
from .pipeline import Analysis
from .study import COUNT_KEYS, StudySummary

FEW_TRIALS = 30  # below this many completed trials, importances are said to be rough


def status_counts(df: pd.DataFrame) -> str:
    """ "9 completed, 1 over_budget, 1 corrupt": the contract's statuses first, then analysis' own."""
    counts = df["status"].value_counts()
    order = [s for s in STATUS_ORDER if s in counts] + [s for s in counts.index if s not in STATUS_ORDER]
    return ", ".join(f"{counts[s]} {s}" for s in order)


def describe_best_run(df: pd.DataFrame) -> str | None:
    """The best run (`best.best_run`: the one `budgetsweep evaluate` and the sweeper's summary
    name too): its folder and kept weights, as absolute paths, and what it scored."""
    run = best_run(df)
    if run is None:
        return None
    scores = []
    name = objective_name(df) or lookup(run.get("config"), "objective")
    if not isinstance(name, str) and not is_missing(run.get("objective")) and is_missing(run.get("val_acc")):
        name = "objective"
    if isinstance(name, str) and name != "val_acc" and not is_missing(run.get("objective")):
        scores.append(f"{name} {float(run['objective']):.4g}")
    if not is_missing(run.get("val_acc")):
        scores.append(f"val acc {100 * float(run['val_acc']):.2f}%")
    if not is_missing(run.get("test_acc")):
        epoch = run.get("test_epoch")
        scores.append(f"test acc {100 * float(run['test_acc']):.2f}%")
        scores[-1] += f" (epoch {int(epoch)} weights)" if not is_missing(epoch) else ""
    weights = weights_path(run)
    if weights:
        kept = f"weights: {weights}"
    elif "source" in run and not is_missing(run.get("source")):
        kept = "no weights kept by the app"
    else:
        kept = "no weights kept (schema 1, or save_weights=none)"
    trial = f"trial {int(run['trial'])}, " if not is_missing(run.get("trial")) else ""
    return f"Best run: {Path(run['run_dir']).resolve()} ({trial}{', '.join(scores) or 'no scores'}); {kept}"


def _verdict(c: Combination) -> str:
    return c.status.replace("_", " ") + (f": {c.error}" if c.status == "invalid" and c.error else "")


def describe_combine(result: CombineResult, markdown: bool = False) -> str:
    """The combine step as text: plain for the terminal, bullets and a code block for Markdown."""

    def line(c: Combination) -> str:
        changes = " ".join(f"{f}={v}" for f, v in c.changes.items()) or "the baseline (no change)"
        changes = f"`{changes}`" if markdown else changes
        params = f"{c.params:,} params" if c.params is not None else "params unknown"
        params += f", {c.flops:,} FLOPs" if c.flops is not None and result.max_flops is not None else ""
        predicted = score.show(result.predicted(c)) + ("%" if score.percent else "")
        return f"{changes}: {params}, predicted {name} {predicted} (baseline + summed gains)"

    score = result.score
    name = score.label.removesuffix(" (%)")
    budget = f"{result.budget:,}" if result.budget is not None else "none"
    budget += f" params, {result.max_flops:,} FLOPs" if result.max_flops is not None else " params"
    base = score.show(result.baseline_value) + ("%" if score.percent else "")
    lines = [
        f"Baseline {name} {base} ({score.better}); budget {budget}.",
        f"Each factor's best value together: {line(result.best_each)} [{_verdict(result.best_each)}].",
    ]
    if result.chosen is None:
        lines.append(
            f"No combination of the top {result.top_k} values per factor fits the budget ({result.searched} sized)."
        )
    elif result.fallback:
        lines.append(
            f"Over the budget, so searched {result.searched} combinations of each "
            f"factor's top {result.top_k} values and the baseline's (rule: the highest "
            f"summed gain that fits; ties to fewer params)."
        )
        lines.append(f"Chosen: {line(result.chosen)}.")
    lines += result.notes
    if markdown:
        text = "\n".join(f"- {line}" for line in lines)
        if result.chosen is not None:
            text += f"\n\nTrain it with:\n\n```bash\n{result.chosen.command}\n```"
        return text
    if result.chosen is not None:
        lines.append(f"Train it with:\n    {result.chosen.command}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def describe_study(summary: StudySummary) -> str:
    """The study in a few lines for the terminal and the report."""
    counts = ", ".join(f"{summary.counts[k]} {k}" for k in COUNT_KEYS if summary.counts[k] or k != "other")
    out = [f"Study {summary.name!r} ({summary.direction}): {len(summary.trials)} trials: {counts}."]
    if summary.pareto is not None:
        out += pareto.describe(summary.pareto)
    elif summary.best:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in summary.best["params"].items())
        value = f"{summary.objective} {summary.best['value']:.4g}"
        out.append(f"Best feasible trial #{summary.best['number']}: {value} ({params}).")
    else:
        out.append("No feasible completed trial.")
    if summary.importances:
        imp = ", ".join(f"{k} {v:.2f}" for k, v in summary.importances.items())
        n = summary.counts["complete"]
        caveat = f" Few trials (under {FEW_TRIALS}): a rough guide, not a ranking." if n < FEW_TRIALS else ""
        out.append(f"Importances (Optuna default evaluator, from {n} completed trials): {imp}.{caveat}")
    return "\n".join(out + summary.notes)


def terminal_text(analysis: Analysis) -> str:
    """What `budgetsweep analyze` prints: counts, the ablation tables, the combined config, studies."""
    parts = []
    if analysis.runs is not None:
        parts.append(f"{len(analysis.runs)} runs: {status_counts(analysis.runs)}")
        best = describe_best_run(analysis.runs)
        if best:
            parts.append(best)
    if analysis.grid is not None:
        grid = analysis.grid
        if grid.pivot is not None:
            parts.append(f"## {grid.factors[0]} × {grid.factors[1]}\n{tables.to_markdown(tables.pivot_display(grid))}")
        parts.append(f"## Grid cells, best first\n{tables.to_markdown(tables.grid_display(grid).head(20))}")
    for factor, table in (analysis.ablation.tables if analysis.ablation else {}).items():
        parts.append(f"## {factor}\n{tables.to_markdown(tables.ablation_display(table, analysis.ablation.score))}")
    if analysis.combined is not None:
        parts.append("## Combine the best\n" + describe_combine(analysis.combined))
    parts += [f"## Optuna\n{describe_study(summary)}" for summary in analysis.studies]
    return "\n\n".join(parts)


def _img(written: set[str], name: str, alt: str) -> str:
    """A relative Markdown image link, only when that PNG was written."""
    return f"![{alt}]({name})\n" if name in written else ""


def markdown(analysis: Analysis, written: set[str]) -> str:
    """report.md: the tables and the pictures among `written` (file names), linked relatively
    so the folder can move."""
    paths = analysis.paths
    sources = ", ".join(f"`{p}`" for p in paths) or "(study only)"
    md = [
        f"# Sweep analysis: {', '.join(p.name for p in paths) or 'Optuna study'}\n",
        f"Generated by `budgetsweep analyze` from {sources}.\n",
    ]
    df = analysis.runs
    if df is not None:
        md.append(f"**{len(df)} runs:** {status_counts(df)}. All runs: [runs.csv](runs.csv).\n")
    if analysis.warnings:
        md.append(f"<details><summary>{len(analysis.warnings)} warning(s) while reading</summary>\n")
        md += [f"- `{w}`" for w in analysis.warnings]
        md.append("\n</details>\n")
    if df is not None:
        md += _runs_md(df, written)
    if analysis.grid is not None:
        md += _grid_md(analysis.grid, written)
    if analysis.ablation is not None:
        md += _ablation_md(analysis, written)
    if analysis.combined is not None:
        md += ["## Combine the best\n", describe_combine(analysis.combined, markdown=True) + "\n"]
    if df is not None and "learning_curves.png" in written:
        md += ["## Learning curves\n", _img(written, "learning_curves.png", "learning curves of the best runs")]
    md += [_study_md(summary, written) for summary in analysis.studies]
    return "\n".join(md)


def _runs_md(df: pd.DataFrame, written: set[str]) -> list[str]:
    score = score_of(df)
    md = []
    if "accuracy_vs_params.png" in written:
        what = "Accuracy" if score.name == "val_acc" else f"`{score.name}`"
        md += [f"## {what} against size\n", _img(written, "accuracy_vs_params.png", f"{score.name} against parameters")]
    top = ranked(df).head(10)  # best first, ties in the contract's order: its first row is the best run
    if len(top):
        md += ["### Best runs\n", tables.to_markdown(tables.runs_display(top, objective_name(df))) + "\n"]
        md.append(describe_best_run(df).replace("Best run: ", "**Best run:** ", 1) + "\n")
    others = df[df["status"] != "completed"]
    if len(others):
        shown = tables.runs_display(others)
        shown = shown[[c for c in ("run", "status", "params") if c in shown]]
        shown["reason"] = others["error"].fillna("") if "error" in others else ""
        md += ["### Runs that did not complete\n", tables.to_markdown(shown) + "\n"]
    return md


def _grid_md(grid: Grid, written: set[str]) -> list[str]:
    score = grid.score
    md = [
        "## Grid\n",
        (
            f"Factors: {', '.join(f'`{f}`' for f in grid.factors)}. `{score.name}` ({score.better}) is the mean ± std "
            "(ddof=1) over each cell's completed repeats, `n` of them. One-at-a-time tables instead: "
            "`budgetsweep analyze DIR --baseline KEY=VALUE ...`.\n"
        ),
    ]
    md += [f"> {note}\n" for note in grid.notes]
    if grid.pivot is not None:
        md += [
            f"### `{grid.factors[0]}` × `{grid.factors[1]}`\n",
            tables.to_markdown(tables.pivot_display(grid)) + "\n",
        ]
        md.append(_img(written, "grid_heatmap.png", f"{score.name} per cell"))
    md += ["### Every cell, best first\n", tables.to_markdown(tables.grid_display(grid)) + "\n"]
    md.append("Files: [CSV](grid_cells.csv) · [LaTeX](grid_cells.tex) · [Markdown](grid_cells.md)\n")
    return md


def _ablation_md(analysis: Analysis, written: set[str]) -> list[str]:
    abl = analysis.ablation
    how = (
        "recorded by the ablation sweeper"
        if abl.mode == "recorded"
        else "inferred from the overrides that vary (baseline: the values given with "
        "`--baseline`, else each factor's most common value)"
    )
    base = ", ".join(f"`{f}={v}`" for f, v in abl.baseline.items())
    score = abl.score
    units = "in percentage points" if score.percent else "in its own units"
    md = [
        "## One-at-a-time ablations\n",
        (
            f"Factors {how}. Baseline: {base}. `{score.name}` ({score.better}) is the mean ± std (ddof=1) "
            f"over the completed repeats, `n` of them; Δ is against the baseline, {units}.\n"
        ),
    ]
    md += [f"> {note}\n" for note in abl.notes]
    for factor, table in abl.tables.items():
        s = slug(factor)
        md += [
            f"### `{factor}`\n",
            tables.to_markdown(tables.ablation_display(table, score)) + "\n",
            _img(written, f"ablation_{s}.png", f"ablation of {factor}"),
            f"Files: [CSV](ablation_{s}.csv) · [LaTeX](ablation_{s}.tex) · [Markdown](ablation_{s}.md)\n",
        ]
    return md


def _study_md(summary: StudySummary, written: set[str]) -> str:
    s = slug(summary.name)
    md = [
        f"## Optuna study `{summary.name}`\n",
        f"Storage: `{summary.storage}`.\n",
        describe_study(summary).replace("\n", "\n\n") + "\n",
        _img(written, f"optuna_{s}_history.png", "optimisation history"),
        _img(written, f"optuna_{s}_reported.png", "reported values and where the pruner stopped"),
        _img(written, f"optuna_{s}_importances.png", "parameter importances"),
    ]
    if summary.pareto is not None and not summary.pareto.table.empty:
        md.append(f"Pareto front (all in [optuna_{s}_pareto.csv](optuna_{s}_pareto.csv)):\n")
        md.append(tables.to_markdown(tables.pareto_display(summary.pareto)) + "\n")
        md.append(_img(written, f"optuna_{s}_pareto.png", "Pareto front"))
    if len(summary.trials):
        shown = tables.trials_display(summary.trials, summary.direction, summary.objective)
        md.append(f"Trials, best feasible first (all in [optuna_{s}_trials.csv](optuna_{s}_trials.csv)):\n")
        md.append(tables.to_markdown(shown.head(15)) + "\n")
    return "\n".join(md)
