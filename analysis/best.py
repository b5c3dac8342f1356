"""Which collected run is best: the contract's rule (`budgetsweep.contract.sweep.best_run`) over
the DataFrame of `collect`, so the report's best run, its best-runs table, the plots' `best:`
marker, `optimization_results.yaml` and `budgetsweep evaluate` name the same run.

The rule: a completed run with a number in `objective` (val_acc for a run written without one)
competes; the best value wins in the sweep's direction; ties go to the lowest trial number, then
to the first run in folder order. The direction is the study's (`study.json`) when the folder
given is an Optuna study of one objective, else the one the runs' records declare (an app's
`directions`, the ablation sweeper's), else that of the runs' objective name (the config's
`objective`, val_acc when not set): `budgetsweep.contract.sweep.sweep_direction`.

`score(df)` says what the runs are ranked by, for tables and plots: the objective's name (run.py's
val_acc, or what an app calls its value), the column holding it, its direction and how to show it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from budgetsweep.contract import ContractError, is_missing
from budgetsweep.contract.layouts import read_study
from budgetsweep.contract.sweep import DIRECTIONS, declared_direction, ranked_runs, sweep_direction

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
    mine = df[df["sweep_dir"] == sweep_dir]
    recorded = _recorded_direction(sweep_dir)
    if not (isinstance(recorded, str) and recorded in DIRECTIONS):
        recorded = _declared_direction(mine)
    return sweep_direction(recorded, objective_name(mine))


def _declared_direction(df: pd.DataFrame) -> str | None:
    if "directions" not in df or "objective_name" not in df:
        return None
    return declared_direction(df[["directions", "objective_name"]].to_dict("records"))


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
    """The objective's name the runs share (their record's `objective_name`, else their config's
    `objective`), None when they name none or several."""
    for column in ("objective_name", "config"):
        if column not in df:
            continue
        named = df[column] if column == "objective_name" else df[column].map(lambda c: lookup(c, "objective"))
        names = {name for name in named if isinstance(name, str) and name}
        if names:
            return names.pop() if len(names) == 1 else None
    return None


ACCURACIES = ("acc", "accuracy")  # a name ending so holds a fraction in [0, 1]: shown in percent


@dataclass(frozen=True)
class Score:
    """What runs are ranked by: `name` (run.py's val_acc, an app's "loss"), the DataFrame
    `column` holding it, its `direction`."""

    name: str
    column: str
    direction: str

    @property
    def percent(self) -> bool:
        return self.name.lower().replace("-", "_").split("_")[-1] in ACCURACIES

    @property
    def label(self) -> str:
        """A column header: "val acc (%)", or the name as the app spells it."""
        return f"{self.name.replace('_', ' ')} (%)" if self.percent else self.name

    @property
    def better(self) -> str:
        return "higher is better" if self.direction == "maximize" else "lower is better"

    def show(self, value: Any, std: Any = None) -> str:
        """One value (and its std) for a table cell: "91.20 ± 0.30" (percent) or "0.1234 ± 0.01"."""
        if is_missing(value) or not math.isfinite(float(value)):
            return ""
        scale, form = (100.0, ".2f") if self.percent else (1.0, ".4g")
        text = format(scale * float(value), form)
        if not is_missing(std) and math.isfinite(float(std)):
            text += f" ± {format(scale * float(std), form)}"
        return text


def score(df: pd.DataFrame, direction: str | None = None) -> Score:
    """What `df`'s runs are ranked by (see `Score`); `direction` default `ranking_direction(df)`."""
    name = objective_name(df)
    if name is None:
        name = "val_acc" if _has_numbers(df, "val_acc") or not _has_numbers(df, "objective") else "objective"
    column = name if _has_numbers(df, name) else "objective"
    return Score(name, column, direction or ranking_direction(df))


def _has_numbers(df: pd.DataFrame, column: str) -> bool:
    return column in df and bool(pd.to_numeric(df[column], errors="coerce").notna().any())


def weights_path(run: pd.Series) -> Path | None:
    """The absolute path of a run's kept weights (metrics.json's `weights`), None when none were kept."""
    name = run.get("weights")
    path = Path(run["run_dir"]).resolve() / str(name) if isinstance(name, str) and name else None
    return path if path is not None and path.is_file() else None
