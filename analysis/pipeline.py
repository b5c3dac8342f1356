"""The analysis of one or more sweep folders, computed in one direction and written nowhere:

    collect (runs, each config nested) -> ablation assignment and tables -> combine the best
                                       -> or, for a grid without --baseline, its cells and pivot
    find_studies -> summarize (Optuna studies)

`output.write` turns the result into files, `report` into words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from budgetsweep.contract import METRICS_FILE, first_line

from .ablation import Ablation, ablation_tables
from .collect import AnalysisError, check_folders, collect, find_run_dirs
from .combine import CombineResult, combine_best
from .grid import Grid, grid_tables
from .plans import read_ablation_plans, recorded_budget
from .study import StudySummary, find_studies, hide_password, summarize

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    """Everything `analyze` computed; nothing here has been written yet."""

    paths: list[Path]  # the sweep folders given
    runs: pd.DataFrame | None = None  # `collect`: one row per run; None when there are none
    ablation: Ablation | None = None
    grid: Grid | None = None  # runs of a grid (no ablation coordinates, no --baseline)
    combined: CombineResult | None = None
    budget: int | None = None  # the parameter budget (given, else the runs' recorded one)
    studies: list[StudySummary] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # one line per problem met while reading

    @property
    def text(self) -> str:
        """What the CLI prints."""
        from .report import terminal_text

        return terminal_text(self)


def analyze(
    paths: list[str | Path],
    baseline: list[str] | None = None,
    budget: int | None = None,
    top_k: int = 3,
    studies: list[tuple[str, str]] | None = None,
) -> Analysis:
    """Collect the runs under `paths`, tabulate and combine them, summarize their studies.

    Args:
        paths: sweep folders (or run folders); merged into one set of runs.
        baseline: overrides fixing the baseline of inferred factors, e.g. ["model.C=32"].
        budget: parameter budget; default the runs' recorded `max_params`.
        top_k: values per factor searched when the combined config is over the budget.
        studies: extra (storage URL, study name) pairs besides those found in `paths`.

    Raises:
        AnalysisError: a path is not a folder, or holds neither runs nor an Optuna study.
    """
    paths = check_folders(paths)
    found = {p: find_studies(p) for p in paths}
    run_paths = [p for p in paths if find_run_dirs(p)]
    for p in paths:
        if p not in run_paths and not found[p]:
            raise AnalysisError(f"{p}: no runs found (no {METRICS_FILE} or .hydra/config.yaml) and no Optuna study")
    analysis = Analysis(paths)
    if run_paths:
        _analyze_runs(analysis, run_paths, baseline, budget, top_k)
    folders = {s: p for p in reversed(paths) for s in found[p]}  # the study's folder: its trials' run folders
    for storage, name in dict.fromkeys([s for p in paths for s in found[p]] + list(studies or [])):
        _analyze_study(analysis, storage, name, folders.get((storage, name)))
    return analysis


def _analyze_runs(
    analysis: Analysis, paths: list[Path], baseline: list[str] | None, budget: int | None, top_k: int
) -> None:
    df = analysis.runs = collect(paths)
    analysis.warnings += df.attrs.get("warnings", [])
    analysis.budget = budget if budget is not None else recorded_budget(df)
    plan = read_ablation_plans(paths)
    abl = analysis.ablation = ablation_tables(df, baseline, planned=plan.variants)
    if abl is not None and abl.mode == "inferred" and not baseline:
        # a grid, read as a grid: one-at-a-time tables only when a baseline is asked for
        analysis.ablation, analysis.grid = None, grid_tables(df, abl.score)
        for note in analysis.grid.notes if analysis.grid else []:
            log.info(note)
        return
    if abl is None:
        return
    if plan.n_jobs > len(df):
        abl.notes.append(
            f"the ablation sweeper planned {plan.n_jobs} jobs; {len(df)} have a run folder "
            "(the sweep stopped early or is still running)"
        )
    for note in abl.notes:
        log.warning(note)
    analysis.combined = combine_best(df, abl, budget=budget, top_k=top_k)


def _analyze_study(analysis: Analysis, storage: str, name: str, folder: Path | None = None) -> None:
    try:
        analysis.studies.append(summarize(storage, name, folder))
    except Exception as e:  # a missing study / unreachable storage: report it, go on
        line = f"{storage} ({name}): study not readable ({type(e).__name__}: {first_line(e)})"
        line = hide_password(line, storage)  # the URL given may hold it, a server's error may quote it
        log.warning(line)
        analysis.warnings.append(line)
