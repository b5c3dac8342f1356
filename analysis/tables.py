"""Numeric tables -> what people read: Markdown, LaTeX (booktabs) and CSV.

The CSV keeps the raw numbers (accuracies in [0, 1]); Markdown and LaTeX show accuracies
in percent with mean ± std, differences in percentage points (an app's own objective, e.g. a
loss, with 4 significant digits in its own units), parameters with thousands separators.
Empty cells mean "no completed run", never zero; a column no run has is left out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from budgetsweep.contract import is_missing
from budgetsweep.contract.sweep import DIRECTIONS, direction_of
from budgetsweep.contract.values import short_value

from .best import Score
from .study import ranked_trials


def pct(mean, std=None) -> str:
    """0.7123, 0.0045 -> "71.23 ± 0.45"; no std (n < 2) -> "71.23"; no mean -> ""."""
    if is_missing(mean):
        return ""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if not is_missing(std) else f"{100 * mean:.2f}"


def signed_pp(x) -> str:
    return f"{100 * x:+.2f}" if not is_missing(x) else ""


def thousands(x) -> str:
    return f"{int(x):,}" if not is_missing(x) else ""


def short(x, digits: int = 1) -> str:
    if is_missing(x):
        return ""
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.{digits}f}"


def ablation_display(table: pd.DataFrame, score: Score | None = None) -> pd.DataFrame:
    """An ablation table (`ablation.table_columns`) formatted for reading. `score`: what it
    aggregates (default: read off its columns, `<name>_mean`); columns no run filled (an app
    without a test split, epochs or sizes) are left out."""
    score = score or _table_score(table)
    name = score.name
    delta = f"Δ {_short_name(name)} (pp)" if score.percent else f"Δ {name}"
    out = pd.DataFrame(
        {
            "value": [f"{v} (baseline)" if b else v for v, b in zip(table["value"], table["baseline"], strict=False)],
            "status": table["status"],
            "params": table["params"].map(thousands),
            score.label: [score.show(m, s) for m, s in zip(table[f"{name}_mean"], table[f"{name}_std"], strict=False)],
            "n": table["n"],
            delta: [
                ("0 (ref)" if b and not is_missing(d) else _signed(d, score.percent))
                for d, b in zip(table[f"delta_{name}"], table["baseline"], strict=False)
            ],
            "test acc (%)": [pct(m, s) for m, s in zip(table["test_acc_mean"], table["test_acc_std"], strict=False)]
            if "test_acc_mean" in table
            else "",
            "epochs": table["epochs"].map(short),
            "train (s)": table["train_seconds"].map(short),
        }
    )
    return _drop_empty(out, ("params", "test acc (%)", "epochs", "train (s)"))


def _table_score(table: pd.DataFrame) -> Score:
    names = [c.removeprefix("delta_") for c in table.columns if c.startswith("delta_")]
    name = names[0] if names else "val_acc"
    return Score(name, name, direction_of(name, "minimize"))


def _short_name(name: str) -> str:
    """The Δ column's name: run.py's "Δ val (pp)" as before, an app's objective as it is."""
    return "val" if name == "val_acc" else name


def _signed(x, percent: bool) -> str:
    if is_missing(x):
        return ""
    return signed_pp(x) if percent else f"{x:+.4g}"


def _drop_empty(out: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """`out` without those of `columns` whose every cell is empty (what the runs did not record)."""
    empty = [c for c in columns if c in out and all(v in ("", None) for v in out[c])]
    return out.drop(columns=empty)


def grid_display(grid) -> pd.DataFrame:
    """A grid's cells (`grid.Grid.cells`), best first, for reading."""
    cells, score = grid.cells, grid.score
    out = pd.DataFrame({f: cells[f] for f in grid.factors})
    out["status"] = cells["status"]
    out["params"] = cells["params"].map(thousands)
    out[score.label] = [
        score.show(m, s) for m, s in zip(cells[f"{score.name}_mean"], cells[f"{score.name}_std"], strict=False)
    ]
    out["n"] = cells["n"]
    out["train (s)"] = cells["train_seconds"].map(short)
    return _drop_empty(out, ("params", "train (s)"))


def pivot_display(grid) -> pd.DataFrame:
    """Two factors: the first's values as rows, the second's as columns, each cell mean ± std."""
    mean, std, score = grid.pivot, grid.std, grid.score
    out = pd.DataFrame(
        {str(c): [score.show(mean.at[r, c], std.at[r, c]) for r in mean.index] for c in mean.columns},
    )
    out.insert(0, f"{grid.factors[0]} / {grid.factors[1]}", [str(r) for r in mean.index])
    return out


MAX_SEARCHED = 6  # searched values shown as columns of a runs table (all of them in runs.csv)


def short_headers(keys: list[str]) -> list[str]:
    """Column headers for dotted keys: the last part where it names one key alone ("C" for
    model.C), the whole key where two share it (model.lr, optimizer.lr).

    >>> short_headers(["model.C", "optimizer.lr", "model.lr", "batch_size"])
    ['C', 'optimizer.lr', 'model.lr', 'batch_size']
    """
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return [tail if last.count(tail) == 1 else key for key, tail in zip(keys, last, strict=True)]


def runs_display(df: pd.DataFrame, objective: str | None = None) -> pd.DataFrame:
    """Collected runs (one row each) formatted for reading; `objective`: the name of what they
    are ranked by, shown in its own column when it is not val_acc (already shown). Columns no
    run filled (an app's runs have no accuracies, maybe no sizes) are left out."""
    out = pd.DataFrame(
        {
            "run": df["label"],
            "status": df["status"],
            "params": df["params"].map(thousands) if "params" in df else "",
            "FLOPs": df["flops"].map(thousands) if "flops" in df else "",
            "val acc (%)": df["val_acc"].map(pct) if "val_acc" in df else "",
            "test acc (%)": df["test_acc"].map(pct) if "test_acc" in df else "",
            "epochs": df["epochs"].map(short) if "epochs" in df else "",
            "train (s)": df["train_seconds"].map(short) if "train_seconds" in df else "",
        }
    )
    if objective and objective != "val_acc" and "objective" in df:
        out.insert(2, objective, df["objective"].map(_cell))
    if "searched" in df and "trial" in df and df["trial"].notna().any():  # a trial's name says nothing of its values
        keys = list(dict.fromkeys(k for values in df["searched"] for k in values))[:MAX_SEARCHED]
        for i, (key, header) in enumerate(zip(keys, short_headers(keys), strict=True)):
            out.insert(1 + i, header, df["searched"].map(lambda v, k=key: short_value(v[k]) if k in v else ""))
    return _drop_empty(out, ("params", "FLOPs", "val acc (%)", "test acc (%)", "epochs", "train (s)"))


def trials_display(trials: pd.DataFrame, direction: str, objective: str = "value") -> pd.DataFrame:
    """An Optuna trials table (study.trials_table) for reading: feasible completed trials
    first, best first (`study.ranked_trials`: the best is the one the summary names); then the
    rest by trial number. Columns: the trial, what became of it and why, the searched values
    (4 significant digits), the objective under its name, the size and the time; the
    sweeper's bookkeeping (run folder, status as an attribute) stays in the CSV."""
    if trials.empty:
        return trials
    if direction in DIRECTIONS:
        best_first = ranked_trials(trials, direction)
    else:  # several objectives: no single order; the complete ones first, by number
        best_first = trials[trials["kind"] == "complete"].sort_values("number")
    rest = trials.drop(index=best_first.index).sort_values("number")
    ranked = pd.concat([best_first, rest])
    out = pd.DataFrame(
        {
            "trial": ranked["number"],
            "status": ranked["status"] if "status" in ranked else ranked["kind"],
            objective: ranked["value"].map(lambda v: f"{v:.4g}" if not is_missing(v) else ""),
        }
    )
    searched = [c.removeprefix("params_") for c in ranked.columns if c.startswith("params_")]
    for key, header in zip(searched, short_headers(searched), strict=True):
        out[header] = ranked[f"params_{key}"].map(_cell)
    if "user_params" in ranked:
        out["params"] = ranked["user_params"].map(thousands)
    out["seconds"] = ranked["duration_s"].map(short)
    if "reason" in ranked:
        out["reason"] = ranked["reason"].map(lambda r: "" if is_missing(r) else str(r)[:60])
    return _drop_empty(out.loc[:, ~out.columns.duplicated()], ("params", "reason")).reset_index(drop=True)


def pareto_display(front) -> pd.DataFrame:
    """A study's Pareto front (`budgetsweep.analysis.pareto.ParetoFront`) for reading: smallest first, the
    knee choices marked."""
    t = front.table
    marks = {}
    for row, mark in ((front.smallest_within, "smallest within 0.5 pt"), (front.best, "best under budget")):
        if row is not None:
            marks[row["trial"]] = f"{marks[row['trial']]}; {mark}" if row["trial"] in marks else mark
    out = pd.DataFrame({"trial": t["trial"], "choice": t["trial"].map(lambda n: marks.get(n, ""))})
    for name in front.objectives:
        column = t[f"objective {name}"]
        out[name] = column.map(pct if name.endswith("acc") else thousands if name in ("params", "flops") else _cell)
    out["params"] = t["params"].map(thousands)
    out["FLOPs"] = t["flops"].map(thousands)
    out["val acc (%)"] = t["val_acc"].map(pct)
    out["test acc (%)"] = t["test_acc"].map(pct)
    out["run folder"] = t["run_dir"]
    return out.loc[:, ~out.columns.duplicated()].reset_index(drop=True)


def _cell(v) -> str:
    if is_missing(v):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def to_markdown(display: pd.DataFrame) -> str:
    # disable_numparse: "71.20" must not turn into 71.2, nor "0 (ref)" into anything else.
    return display.to_markdown(index=False, disable_numparse=True)


def to_latex(display: pd.DataFrame, caption: str, label: str) -> str:
    """booktabs LaTeX (pandas' to_latex writes \\toprule/\\midrule/\\bottomrule)."""
    tex = display.to_latex(
        index=False, escape=True, caption=caption, label=label, position="t", column_format="l" * len(display.columns)
    )
    # escape=True keeps unicode as is; these two need math mode to typeset everywhere.
    return tex.replace("±", r"$\pm$").replace("Δ", r"$\Delta$")


def write_table(numeric: pd.DataFrame, display: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    """Write stem.csv (numbers), stem.md and stem.tex (formatted); return the paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}{ext}" for ext in (".csv", ".md", ".tex")]
    numeric.to_csv(paths[0], index=False)
    paths[1].write_text(to_markdown(display) + "\n")
    paths[2].write_text(to_latex(display, caption, f"tab:{stem.name}"))
    return paths
