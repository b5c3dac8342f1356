"""From run folders to tables, plots and a report. Reads the run contract (README.md) only.

    python -m analysis [SWEEP_DIR ...]

API for notebooks:
    collect(path) -> DataFrame             one row per run
    ablation_tables(df, baseline) -> Ablation   one-at-a-time tables per factor
    combine_best(df, ablation) -> CombineResult  the config to train next, under the budget
    summarize(storage, study_name) -> StudySummary   an Optuna study
    analyze(paths) -> Analysis             all of it, written under SWEEP_DIR/analysis/

Imports `models` only to size configs; never trains, never imports sweeper/ or data/.
"""
from analysis.ablation import Ablation, ablation_tables
from analysis.collect import AnalysisError, collect, read_history
from analysis.combine import CombineResult, Combination, combine_best
from analysis.report import Analysis, analyze
from analysis.study import StudySummary, find_studies, summarize

__all__ = [
    "Ablation", "Analysis", "AnalysisError", "Combination", "CombineResult", "StudySummary",
    "ablation_tables", "analyze", "collect", "combine_best", "find_studies", "read_history",
    "summarize",
]
