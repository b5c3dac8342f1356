"""From run folders to tables, plots and a report. Reads the run contract (`contract/`) only.

    budgetsweep analyze [SWEEP_DIR ...]      (also python -m budgetsweep.analysis)

The data goes one way: collect -> ablation assignment and tables -> combine the best ->
(studies) -> an Analysis; then files and words are made from it.

API for notebooks:
    collect(path) -> DataFrame             one row per run, each config a nested dict
    best_run(df) -> row | None             the best run, by the rule every side applies
    ablation_tables(df, baseline) -> Ablation   one-at-a-time tables per factor
    combine_best(df, ablation) -> CombineResult  the config to train next, under the budget
    summarize(storage, study_name) -> StudySummary   an Optuna study
    analyze(paths) -> Analysis             all of it, computed; nothing written
    write(analysis, out) -> [Path]         its files under OUT (default SWEEP_DIR/analysis/)

Imports `models` only to size configs; never trains, never imports sweeper/ or data/.
"""

from .ablation import Ablation, ablation_tables
from .best import best_run
from .collect import AnalysisError, collect, read_history
from .combine import Combination, CombineResult, combine_best
from .output import write
from .pipeline import Analysis, analyze
from .study import StudySummary, find_studies, summarize

__all__ = [
    "Ablation",
    "Analysis",
    "AnalysisError",
    "Combination",
    "CombineResult",
    "StudySummary",
    "ablation_tables",
    "analyze",
    "best_run",
    "collect",
    "combine_best",
    "find_studies",
    "read_history",
    "summarize",
    "write",
]
