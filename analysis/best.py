"""Which collected run is best: the contract's rule (`budgetsweep.contract.sweep.best_run`) over
the DataFrame of `collect`, so the report's best run, its best-runs table, the plots' `best:`
marker, `optimization_results.yaml` and `budgetsweep evaluate` name the same run.

The rule: a completed run with a number in `objective` (val_acc for a run written without one)
competes; the best value wins in the sweep's direction; ties go to the lowest trial number, then
to the first run in folder order. The direction is the study's (`study.json`) when the folder
given is an Optuna study of one objective, else that of the runs' objective name (the config's
`objective`, val_acc when not set): `budgetsweep.contract.sweep.sweep_direction`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from budgetsweep.contract import ContractError
from budgetsweep.contract.layouts import read_study
from budgetsweep.contract.sweep import ranked_runs, sweep_direction

from .collect import lookup


def _recorded_direction(sweep_dir: str) -> object:
    try:
        record = read_study(sweep_dir)
    except ContractError:  # the study summary warns about it; rank by the objective's name
        return None
    return record.direction if record is not None else None


def ranking_direction(df: pd.DataFrame) -> str:
    """The direction `df`'s runs are ranked in (see the module docstring).

    Runs merged from several folders are ranked in the first folder's direction: values of
    folders optimised in opposite directions are not comparable anyway.
    """
    if df.empty or "sweep_dir" not in df:
        return "maximize"
    sweep_dir = df["sweep_dir"].iloc[0]
    names = df.loc[df["sweep_dir"] == sweep_dir, "config"].map(lambda c: lookup(c, "objective"))
    named = [n for n in names if isinstance(n, str) and n]
    return sweep_direction(_recorded_direction(sweep_dir), named[0] if named else None)


def ranked(df: pd.DataFrame, direction: str | None = None) -> pd.DataFrame:
    """The runs that compete, best first, in the contract's order (ties: trial number, then
    folder order); the first row is `best_run(df)`. `direction`: default `ranking_direction(df)`."""
    records = df.to_dict("records")
    order = ranked_runs(records, direction or ranking_direction(df))
    position = {id(record): i for i, record in enumerate(records)}
    return df.iloc[[position[id(record)] for record in order]]


def best_run(df: pd.DataFrame, direction: str | None = None) -> pd.Series | None:
    """The best run of `df` (a row of it), or None when no run competes."""
    top = ranked(df, direction)
    return top.iloc[0] if len(top) else None


def objective_name(df: pd.DataFrame) -> str | None:
    """The objective's name the runs share (their config's `objective`), None when they name none or several."""
    if "config" not in df:
        return None
    names = {name for name in df["config"].map(lambda c: lookup(c, "objective")) if isinstance(name, str)}
    return names.pop() if len(names) == 1 else None


def weights_path(run: pd.Series) -> Path | None:
    """The absolute path of a run's kept weights (metrics.json's `weights`), None when none were kept."""
    name = run.get("weights")
    path = Path(run["run_dir"]).resolve() / str(name) if isinstance(name, str) and name else None
    return path if path is not None and path.is_file() else None
