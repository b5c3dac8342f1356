"""A grid read as a grid: one row per cell (a combination of the factors' values), and for two
factors the factor x factor table and its heatmap.

The factors are the override keys whose value differs between runs (`seed` and the sweepers'
bookkeeping excepted, as for inferred ablations: runs that differ only in seed are repeats of
one cell). Each cell aggregates its runs: the objective's mean and sample std (ddof=1) over the
completed ones, `n` of them, in the objective's own name (`val_acc_mean` for run.py). A cell whose
runs did not complete keeps its row, with their status. Cells are listed best first, in the
objective's direction; the pivot has one row per value of the first factor and one column per
value of the second, in the values' natural order; a cell never run is empty.

A grid is analysed as a grid unless the runs carry ablation coordinates (the ablation sweeper's)
or one-at-a-time tables are asked for (`budgetsweep analyze --baseline ...`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from budgetsweep.contract.values import sort_key

from .ablation import candidate_keys
from .best import Score
from .collect import config_value


@dataclass
class Grid:
    """The cells of a grid (`cells`: factor columns, status, runs, n, params, `<name>_mean`,
    `<name>_std`, train_seconds), best first; `pivot`: with two factors, the mean per cell."""

    factors: list[str]
    cells: pd.DataFrame
    score: Score
    pivot: pd.DataFrame | None = None
    std: pd.DataFrame | None = None  # the pivot's std, same shape
    notes: list[str] = field(default_factory=list)


def grid_tables(df: pd.DataFrame, score: Score) -> Grid | None:
    """The grid view of `df`'s runs, None when nothing varies between them."""
    usable = df[df["config"].map(bool) | df["overrides"].map(bool)]
    values = pd.DataFrame(
        {k: [config_value(r, k) for _, r in usable.iterrows()] for k in candidate_keys(usable)}, index=usable.index
    )
    factors = [k for k in values.columns if values[k].dropna().nunique() > 1]
    if not factors:
        return None
    notes = []
    if len(usable) < len(df):
        notes.append(f"{len(df) - len(usable)} run(s) have neither config nor overrides: not placed in the grid")
    keys = values[factors].fillna("-")
    groups = keys.groupby(factors, sort=False).groups
    rows = [_cell(dict(zip(factors, _tuple(key))), df.loc[idx], score) for key, idx in groups.items()]
    mean = f"{score.name}_mean"
    sign = -1.0 if score.direction == "maximize" else 1.0
    cells = pd.DataFrame(rows)
    order = sorted(
        range(len(cells)),
        key=lambda i: (pd.isna(cells.at[i, mean]), sign * (cells.at[i, mean] if pd.notna(cells.at[i, mean]) else 0.0)),
    )
    cells = cells.iloc[order].reset_index(drop=True)
    grid = Grid(factors, cells, score, notes=notes)
    if len(factors) == 2:
        grid.pivot, grid.std = _pivot(cells, factors, mean), _pivot(cells, factors, f"{score.name}_std")
    full = 1
    for f in factors:
        full *= cells[f].nunique()
    if len(cells) < full:
        grid.notes.append(f"a partial grid: {len(cells)} of the {full} combinations of {', '.join(factors)} were run")
    return grid


def _tuple(key) -> tuple:
    return key if isinstance(key, tuple) else (key,)


def _cell(key: dict[str, str], runs: pd.DataFrame, score: Score) -> dict:
    column = score.column
    ok = pd.to_numeric(runs[column], errors="coerce").notna() if column in runs else False
    done = runs[(runs["status"] == "completed") & ok]
    params = runs["params"].dropna() if "params" in runs else pd.Series(dtype=float)
    counts = Counter(runs["status"].fillna("unknown"))
    status = next(iter(counts)) if len(counts) == 1 else ", ".join(f"{s} {n}" for s, n in counts.most_common())
    values = done[column].astype(float) if len(done) else pd.Series(dtype=float)
    seconds = runs["train_seconds"] if "train_seconds" in runs else pd.Series(dtype=float)
    return {
        **key,
        "status": status,
        "runs": len(runs),
        "n": len(done),
        "params": int(params.iloc[0]) if len(params) else None,
        f"{score.name}_mean": values.mean() if len(values) else float("nan"),
        f"{score.name}_std": values.std(ddof=1) if len(values) > 1 else float("nan"),
        "train_seconds": pd.to_numeric(seconds, errors="coerce").mean(),
    }


def _pivot(cells: pd.DataFrame, factors: list[str], column: str) -> pd.DataFrame:
    pivot = cells.set_index(factors)[column].astype(float).unstack(factors[1])  # a cell never run: NaN
    pivot = pivot.reindex(index=sorted(pivot.index, key=sort_key), columns=sorted(pivot.columns, key=sort_key))
    pivot.index.name, pivot.columns.name = factors[0], factors[1]
    return pivot
