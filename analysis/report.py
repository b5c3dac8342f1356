"""The whole analysis of one or more sweep folders, written under OUT (SWEEP_DIR/analysis/):

  runs.csv                       every collected run, one row each
  ablation_<factor>.{md,csv,tex} one-at-a-time table per factor
  ablation_<factor>.png          its chart
  accuracy_vs_params.png         with the budget line and the Pareto front
  learning_curves.png            the best runs
  combined.txt                   the combine-the-best step and its `python run.py` line
  optuna_<study>_trials.{md,csv,tex}, optuna_<study>_{history,importances}.png
  report.md                      all of the above, with relative links (readable on GitHub)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import plots, tables
from analysis.ablation import Ablation, ablation_tables, slug
from analysis.collect import AnalysisError, collect, find_run_dirs, read_ablation_plans, recorded_budget
from analysis.combine import CombineResult, combine_best
from analysis.combine import describe as describe_combine
from analysis.study import StudySummary, find_studies, summarize
from analysis.study import describe as describe_study

log = logging.getLogger("analysis")

STATUS_ORDER = ["completed", "over_budget", "invalid", "diverged", "failed", "pruned",
                "corrupt", "incomplete"]


@dataclass
class Analysis:
    """Everything `analyze` computed and wrote; `text` is what the CLI prints."""

    out: Path
    runs: pd.DataFrame | None
    ablation: Ablation | None
    combined: CombineResult | None
    studies: list[StudySummary]
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    text: str = ""


def analyze(paths: list[str | Path], out: str | Path | None = None, baseline: list[str] | None = None,
            budget: int | None = None, top_k: int = 3, studies: list[tuple[str, str]] | None = None,
            make_plots: bool = True) -> Analysis:
    """Collect the runs under `paths`, build tables, plots and report.md in `out`.

    Args:
        paths: sweep folders (or run folders); merged into one set of runs.
        out: output folder; default `<first path>/analysis`.
        baseline: overrides fixing the baseline of inferred factors, e.g. ["model.C=32"].
        budget: parameter budget; default the runs' recorded `max_params`.
        top_k: values per factor searched when the combined config is over the budget.
        studies: extra (storage URL, study name) pairs besides those found in `paths`.
        make_plots: False skips the PNGs (faster, e.g. in a terminal-only look).
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise AnalysisError(f"{p}: no such folder")
        if not p.is_dir():
            raise AnalysisError(f"{p}: not a folder (pass a sweep or run folder)")
    if not paths and out is None:
        raise AnalysisError("no SWEEP_DIR given: pass one, or --out for a study alone")
    out = Path(out) if out is not None else paths[0] / "analysis"

    found_studies = [s for p in paths for s in find_studies(p)] + list(studies or [])
    run_paths = [p for p in paths if find_run_dirs(p)]
    for p in paths:
        if p not in run_paths and not find_studies(p):
            raise AnalysisError(f"{p}: no runs found (no metrics.json or .hydra/config.yaml) "
                                "and no Optuna study")

    result = Analysis(out, None, None, None, [])
    out.mkdir(parents=True, exist_ok=True)
    text: list[str] = []
    if run_paths:
        _runs_part(result, run_paths, baseline, budget, top_k, make_plots, text)
    for storage, name in dict.fromkeys(found_studies):
        _study_part(result, storage, name, make_plots, text)

    report = out / "report.md"
    report.write_text(render(result, paths))
    result.files.append(report)
    result.text = "\n\n".join(text)
    return result


def _runs_part(result: Analysis, paths: list[Path], baseline, budget, top_k, make_plots, text) -> None:
    df = collect(paths)
    result.runs = df
    result.warnings += df.attrs.get("warnings", [])
    out = result.out
    df.drop(columns=["overrides"]).assign(overrides=df["overrides"].map(" ".join)) \
        .to_csv(out / "runs.csv", index=False)
    result.files.append(out / "runs.csv")
    text.append(f"{len(df)} runs: {_status_counts(df)}")

    planned, n_jobs = read_ablation_plans(paths)
    result.ablation = abl = ablation_tables(df, baseline, planned=planned)
    if abl is not None:
        if n_jobs > len(df):
            abl.notes.append(f"the ablation sweeper planned {n_jobs} jobs; {len(df)} have a run folder "
                             "(the sweep stopped early or is still running)")
        for factor, table in abl.tables.items():
            display = tables.ablation_display(table)
            result.files += tables.write_table(table, display, out / f"ablation_{slug(factor)}",
                                               f"One-at-a-time ablation of {factor}")
            text.append(f"## {factor}\n{tables.to_markdown(display)}")
            if make_plots:
                _add(result, plots.ablation_chart(table, factor, out / f"ablation_{slug(factor)}.png"))
        for note in abl.notes:
            log.warning(note)
        result.combined = combine_best(df, abl, budget=budget, top_k=top_k)
        if result.combined is not None:
            combined_text = describe_combine(result.combined)
            (out / "combined.txt").write_text(combined_text + "\n")
            result.files.append(out / "combined.txt")
            text.append("## Combine the best\n" + combined_text)

    if make_plots:
        budget_line = budget if budget is not None else recorded_budget(df)
        _add(result, plots.accuracy_vs_params(df, budget_line, out / "accuracy_vs_params.png"))
        _add(result, plots.learning_curves(df, out / "learning_curves.png"))


def _study_part(result: Analysis, storage: str, name: str, make_plots: bool, text) -> None:
    try:
        summary = summarize(storage, name)
    except Exception as e:  # a missing study / unreachable storage: report it, go on
        line = f"{storage} ({name}): study not readable ({type(e).__name__}: {str(e).splitlines()[0]})"
        log.warning(line)
        result.warnings.append(line)
        return
    result.studies.append(summary)
    stem = result.out / f"optuna_{slug(name)}_trials"
    result.files += tables.write_table(summary.trials, tables.trials_display(summary.trials, summary.direction),
                                       stem, f"Optuna study {name}: trials")
    text.append(f"## Optuna\n{describe_study(summary)}")
    if make_plots:
        _add(result, plots.optuna_history(summary.study, result.out / f"optuna_{slug(name)}_history.png"))
        if summary.importances:
            _add(result, plots.importances_chart(summary.importances,
                                                 result.out / f"optuna_{slug(name)}_importances.png"))


def _add(result: Analysis, path: Path | None) -> None:
    if path is not None:
        result.files.append(path)


def _status_counts(df: pd.DataFrame) -> str:
    counts = df["status"].value_counts()
    order = [s for s in STATUS_ORDER if s in counts] + [s for s in counts.index if s not in STATUS_ORDER]
    return ", ".join(f"{counts[s]} {s}" for s in order)


def _img(result: Analysis, name: str, alt: str) -> str:
    """A relative Markdown image link, only when that PNG was written."""
    return f"![{alt}]({name})\n" if result.out / name in result.files else ""


def render(result: Analysis, paths: list[Path]) -> str:
    """report.md: the tables and pictures, linked relatively so the folder can move."""
    sources = ", ".join(f"`{p}`" for p in paths) or "(study only)"
    md = [f"# Sweep analysis: {', '.join(p.name for p in paths) or 'Optuna study'}\n",
          f"Generated by `python -m analysis` from {sources}.\n"]
    df = result.runs
    if df is not None:
        md.append(f"**{len(df)} runs:** {_status_counts(df)}. All runs: [runs.csv](runs.csv).\n")
    if result.warnings:
        md.append("<details><summary>" f"{len(result.warnings)} warning(s) while reading</summary>\n")
        md += [f"- `{w}`" for w in result.warnings]
        md.append("\n</details>\n")

    if df is not None:
        md.append("## Accuracy against size\n")
        md.append(_img(result, "accuracy_vs_params.png", "validation accuracy against parameters"))
        done = df[df["status"] == "completed"]
        if "val_acc" in df and len(done):
            md.append("### Best runs\n")
            top = done.sort_values("val_acc", ascending=False).head(10)
            md.append(tables.to_markdown(tables.runs_display(top)) + "\n")
        others = df[df["status"] != "completed"]
        if len(others):
            md.append("### Runs that did not complete\n")
            shown = tables.runs_display(others)[["run", "status", "params"]]
            shown["reason"] = others["error"].fillna("") if "error" in others else ""
            md.append(tables.to_markdown(shown) + "\n")

    abl = result.ablation
    if abl is not None:
        md.append("## One-at-a-time ablations\n")
        how = ("recorded by the ablation sweeper" if abl.mode == "recorded" else
               "inferred from the overrides that vary (baseline: the values given with "
               "`--baseline`, else each factor's most common value)")
        base = ", ".join(f"`{f}={v}`" for f, v in abl.baseline.items())
        md.append(f"Factors {how}. Baseline: {base}. Accuracies are mean ± std (ddof=1) over "
                  "the completed repeats, `n` of them; Δ is against the baseline, in "
                  "percentage points.\n")
        md += [f"> {note}\n" for note in abl.notes]
        for factor, table in abl.tables.items():
            s = slug(factor)
            md.append(f"### `{factor}`\n")
            md.append(tables.to_markdown(tables.ablation_display(table)) + "\n")
            md.append(_img(result, f"ablation_{s}.png", f"ablation of {factor}"))
            md.append(f"Files: [CSV](ablation_{s}.csv) · [LaTeX](ablation_{s}.tex) · "
                      f"[Markdown](ablation_{s}.md)\n")
    if result.combined is not None:
        md.append("## Combine the best\n")
        md.append(_combine_md(result.combined))
    if df is not None and _img(result, "learning_curves.png", ""):
        md.append("## Learning curves\n")
        md.append(_img(result, "learning_curves.png", "learning curves of the best runs"))
    for summary in result.studies:
        md.append(_study_md(result, summary))
    return "\n".join(md)


def _combine_md(c: CombineResult) -> str:
    return describe_combine(c, markdown=True) + "\n"


def _study_md(result: Analysis, summary: StudySummary) -> str:
    s = slug(summary.name)
    md = [f"## Optuna study `{summary.name}`\n", f"Storage: `{summary.storage}`.\n",
          describe_study(summary).replace("\n", "\n\n") + "\n"]
    md.append(_img(result, f"optuna_{s}_history.png", "optimisation history"))
    md.append(_img(result, f"optuna_{s}_importances.png", "parameter importances"))
    if len(summary.trials):
        shown = tables.trials_display(summary.trials, summary.direction)
        md.append(f"Trials, best feasible first (all in [optuna_{s}_trials.csv](optuna_{s}_trials.csv)):\n")
        md.append(tables.to_markdown(shown.head(15)) + "\n")
    return "\n".join(md)
