"""The Pareto front of a multi-objective Optuna study, and the two knee choices read off it.

A study of several objectives (`hydra.sweeper.direction: [maximize, minimize]` with
`hydra.sweeper.objectives: [val_acc, params]`, or `flops`) has no single best trial: its answer
is the front, Optuna's `study.best_trials` (the feasible completed trials that no other one
beats on every objective; infeasible suggestions were never trained and never completed).
Each row of the table: the trial, its objective values, params, FLOPs, val acc, test acc and
run folder (the sweeper keeps them on the trial as user attributes; the folder is
`<study dir>/<trial number>`).

The knee choices, by validation accuracy (`val_acc`, else the first maximized objective) and
size (`params`, else the first minimized objective):
- "best under the budget": the most accurate trial of the front (every one fits the budget);
- "smallest within 0.5 points of the best": the smallest trial whose accuracy is at most 0.5
  percentage points below that one: nearly as good for less.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from budgetsweep.contract import is_missing
from budgetsweep.contract.sweep import best_run

WITHIN = 0.005  # "within 0.5 points": accuracies are fractions in metrics.json
COLUMNS = ["trial", "params", "flops", "val_acc", "test_acc", "run_dir"]


@dataclass
class ParetoFront:
    objectives: list[str]  # their names, one per direction
    directions: list[str]
    table: pd.DataFrame  # one row per front trial: trial, <objective values>, COLUMNS; by size
    best: dict | None = None  # "best under the budget" (a row of table)
    smallest_within: dict | None = None  # "smallest within 0.5 points of the best"
    notes: list[str] = field(default_factory=list)


def objective_names(study: Any) -> list[str]:
    """The objectives' names the sweeper gave the study (Optuna's metric names), else objective_1, ..."""
    names = study.metric_names
    n = len(study.directions)
    if isinstance(names, list) and len(names) == n and len(set(names)) == n:
        return [str(x) for x in names]
    return [f"objective_{i + 1}" for i in range(n)]


def pareto_front(study: Any, study_dir: str | Path | None = None) -> ParetoFront:
    """The front of `study` (an optuna.Study of several directions) as a table, with the knee choices."""
    names = objective_names(study)
    directions = [d.name.lower() for d in study.directions]
    rows = []
    for t in study.best_trials:
        values = dict(zip(names, t.values))
        attrs = t.user_attrs
        row = {"trial": t.number, **{f"objective {n}": v for n, v in values.items()}}
        for key in ("params", "flops", "val_acc", "test_acc"):
            row[key] = values.get(key, attrs.get(key))
        run = str(attrs.get("run_dir", t.number))
        row["run_dir"] = str(Path(study_dir) / run) if study_dir is not None else run
        rows.append(row)
    columns = ["trial", *(f"objective {n}" for n in names), *COLUMNS[1:]]
    table = pd.DataFrame(rows, columns=columns)
    front = ParetoFront(names, directions, table)
    if table.empty:
        front.notes.append("no feasible completed trial: the front is empty")
        return front
    acc, size = _accuracy(front), _size(front)
    if acc is None or size is None:
        front.notes.append("no accuracy and size to choose a knee by (val_acc and params, or objectives)")
        front.table = table.sort_values("trial").reset_index(drop=True)
        return front
    table = table.assign(_acc=pd.to_numeric(table[acc], errors="coerce"), _size=pd.to_numeric(table[size]))
    table = table.sort_values(["_size", "trial"]).reset_index(drop=True)
    known = table[table["_acc"].notna() & table["_size"].notna()]
    if not known.empty:
        # the contract's rule among the front: the highest accuracy, ties to the lowest trial
        best = pd.Series(
            best_run(known.to_dict("records"), "maximize", value=lambda r: r["_acc"], feasible=lambda r: True)
        )
        near = known[known["_acc"] >= best["_acc"] - WITHIN]
        smallest = near.loc[near["_size"].idxmin()]
        front.best, front.smallest_within = _row(best), _row(smallest)
    front.table = table.drop(columns=["_acc", "_size"])
    return front


def _accuracy(front: ParetoFront) -> str | None:
    if front.table["val_acc"].notna().any():
        return "val_acc"
    maximized = [n for n, d in zip(front.objectives, front.directions) if d == "maximize"]
    return f"objective {maximized[0]}" if maximized else None


def _size(front: ParetoFront) -> str | None:
    if front.table["params"].notna().any():
        return "params"
    minimized = [n for n, d in zip(front.objectives, front.directions) if d == "minimize"]
    return f"objective {minimized[0]}" if minimized else None


def _row(row: pd.Series) -> dict:
    return {k: (None if is_missing(v) else v) for k, v in row.drop(["_acc", "_size"]).items()}


def describe(front: ParetoFront) -> list[str]:
    """The front in a few lines for the terminal and the report."""
    shown = ", ".join(f"{n} ({d})" for n, d in zip(front.objectives, front.directions))
    out = [f"Pareto front over {shown}: {len(front.table)} trial(s) (study.best_trials)."]
    choices = (("Best under the budget", front.best), ("Smallest within 0.5 points of the best", front.smallest_within))
    for label, row in choices:
        if row is not None:
            out.append(f"{label}: trial #{row['trial']}, {_describe_row(row)} ({row['run_dir']}).")
    return out + front.notes


def _describe_row(row: dict) -> str:
    parts = []
    for key, label in (("val_acc", "val acc"), ("test_acc", "test acc")):
        if row.get(key) is not None:
            parts.append(f"{label} {100 * float(row[key]):.2f}%")
    for key in ("params", "flops"):
        if row.get(key) is not None:
            parts.append(f"{int(row[key]):,} {key if key == 'params' else 'FLOPs'}")
    return ", ".join(parts) or "no metrics recorded"
