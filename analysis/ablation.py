"""One-at-a-time ablation tables: for each factor, every value tried against the baseline.

Which run belongs to which (factor, value) comes from one of two places:

- recorded: the ablation sweeper wrote `factor`, `value`, `baseline`, `repeat` into each
  run's metrics.json (or config `sweep.*`); those are used as they are.
- inferred (grid sweeps, folders of single runs): the factors are the override keys whose
  value differs between runs (`seed` and the sweepers' `sweep.*` excepted: runs that differ
  only in seed are repeats). The baseline takes the values given by the caller
  (`--baseline model.C=32`) and, for the other factors, each factor's most common value
  (ties: the value of the earliest run). A run that differs from the baseline in exactly one
  factor is a variant of it; a run differing in several is left out of the tables, with a
  warning that counts them.

Each table row aggregates the runs of one value: the objective's mean and sample std (ddof=1)
over the completed runs only, `n` of them (columns named after it: `val_acc_mean` for run.py,
`loss_mean` for an app's "loss"); `delta_val_acc` (`delta_<name>`) is against the baseline row's
mean, in the objective's own units (whether higher is better: the score's direction).
Values whose runs did not complete (over_budget, invalid, diverged, failed, pruned, corrupt,
incomplete) keep their row, with their status and empty accuracies.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from budgetsweep.contract import is_missing
from budgetsweep.contract.values import canon, parse_override, sort_key

from .best import Score
from .best import score as score_of
from .collect import AnalysisError, config_value, leaves

log = logging.getLogger(__name__)

# Override keys that are never factors: repeats differ in seed, the sweepers' bookkeeping
# differs per job, and hydra.* settings do not change a run's result.
NOT_FACTOR_KEYS = {"seed", "device", "progress", "checkpoint"}
NOT_FACTOR_PREFIXES = ("sweep.", "hydra.", "hydra/")


def table_columns(name: str = "val_acc") -> list[str]:
    """A table's columns; `name`: the objective's (run.py's val_acc, or an app's own)."""
    test = ["test_acc_mean", "test_acc_std"] if name != "test_acc" else []
    return [
        *("factor", "value", "baseline", "status", "runs", "n", "params"),
        *(f"{name}_mean", f"{name}_std", f"delta_{name}", *test, "epochs", "train_seconds"),
    ]


TABLE_COLUMNS = table_columns()  # run.py's


@dataclass
class Ablation:
    """The one-at-a-time view of a set of runs.

    Attributes:
        mode: "recorded" (the ablation sweeper's fields) or "inferred" (grid / plain runs).
        baseline: factor -> the baseline's canonical value.
        assignment: per included run (index of the collected DataFrame): `factor` (None for
            the baseline), `value` (canonical) and `is_baseline`.
        tables: factor -> its table (columns `table_columns(score.name)`), in the order factors
            were found.
        notes: one line per thing a reader should know (runs left out and why).
    """

    mode: str
    baseline: dict[str, str]
    assignment: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    score: Score = Score("val_acc", "val_acc", "maximize")  # what the tables aggregate and rank by


def _is_factor_key(key: str) -> bool:
    return key not in NOT_FACTOR_KEYS and not key.startswith(NOT_FACTOR_PREFIXES)


def _is_true(value) -> bool:
    return value is True or value == "true"


def _present(column: pd.Series) -> pd.Series:
    return ~column.map(is_missing)


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """The assignment: (index of the run, factor or None, canonical value or None, is_baseline)."""
    return pd.DataFrame(rows, columns=["index", "factor", "value", "is_baseline"]).set_index("index")


def _recorded(df: pd.DataFrame) -> bool:
    return bool(_present(df["factor"]).any() or df["baseline"].map(_is_true).any())


def _assign_recorded(df: pd.DataFrame, planned_factors: list[str]) -> tuple[dict[str, str], pd.DataFrame, list[str]]:
    notes = []
    is_base = df["baseline"].map(_is_true) & ~_present(df["factor"])
    # Planned factors none of whose variants has a folder yet still get a table.
    factors = list(dict.fromkeys([*df.loc[_present(df["factor"]), "factor"], *planned_factors]))
    base_rows = df[is_base]
    baseline = {}
    for f in factors:
        values = [v for v in (config_value(row, f) for _, row in base_rows.iterrows()) if v is not None]
        baseline[f] = Counter(values).most_common(1)[0][0] if values else "baseline"

    rows = []
    for idx, row in df.iterrows():
        if is_base[idx]:
            rows.append((idx, None, None, True))
        elif not is_missing(row["factor"]):
            value = config_value(row, row["factor"]) if is_missing(row["value"]) else canon(row["value"])
            rows.append((idx, row["factor"], value or "?", False))
    left_out = len(df) - len(rows)
    if left_out:
        notes.append(
            f"{left_out} run(s) carry no ablation coordinates (no factor, not the "
            "baseline) and are left out of the ablation tables"
        )
    return baseline, _frame(rows), notes


def candidate_keys(df: pd.DataFrame) -> list[str]:
    keys = []
    for overrides in df["overrides"]:
        for text in overrides or []:
            parsed = parse_override(text)
            if parsed and _is_factor_key(parsed[0]):
                keys.append(parsed[0])
    if not keys:  # no overrides recorded anywhere: every config key is a candidate
        keys = [k for config in df["config"] for k, _ in leaves(config) if _is_factor_key(k)]
    return list(dict.fromkeys(keys))


def _assign_inferred(df: pd.DataFrame, given: dict[str, str]) -> tuple[dict[str, str], pd.DataFrame, list[str]]:
    notes = []
    usable = df[df["config"].map(bool) | df["overrides"].map(bool)]
    if len(usable) < len(df):
        notes.append(
            f"{len(df) - len(usable)} run(s) have neither config nor overrides and are left out of the ablation tables"
        )
    values = pd.DataFrame(
        {k: [config_value(r, k) for _, r in usable.iterrows()] for k in candidate_keys(usable)}, index=usable.index
    )
    factors = [k for k in values.columns if values[k].dropna().nunique() > 1]

    for key in given:
        if key not in factors:
            notes.append(f"--baseline {key}: not varied in these runs; ignored")
    baseline = {}
    for f in factors:
        if f in given:
            baseline[f] = given[f]
        else:
            counts = Counter(values[f].dropna())
            top = max(counts.values())
            # Ties go to the earliest run's value: for a grid, Hydra's job 0.
            baseline[f] = next(v for v in values[f] if counts.get(v) == top)

    rows, multi = [], 0
    for idx in usable.index:
        diffs = [f for f in factors if values.at[idx, f] != baseline[f]]
        if not diffs:
            rows.append((idx, None, None, True))
        elif len(diffs) == 1:
            rows.append((idx, diffs[0], values.at[idx, diffs[0]], False))
        else:
            multi += 1
    if multi:
        notes.append(
            f"{multi} run(s) differ from the baseline in more than one factor and are "
            "left out of the one-at-a-time tables"
        )
    if factors and not any(r[3] for r in rows):
        notes.append("no run has the baseline config; differences to the baseline are empty")
    return baseline, _frame(rows), notes


def _status(statuses: pd.Series) -> str:
    """ "completed" when all agree, else the counts, most common first: "completed 2, failed 1"."""
    counts = Counter(statuses.fillna("unknown"))
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{s} {n}" for s, n in counts.most_common())


def _row(factor: str, value: str, is_baseline: bool, runs: pd.DataFrame, score: Score) -> dict:
    column = score.column
    ok = pd.to_numeric(runs[column], errors="coerce").notna() if column in runs else False
    done = runs[(runs["status"] == "completed") & ok] if len(runs) else runs
    params = runs["params"].dropna() if "params" in runs else pd.Series(dtype=float)

    def mean(col):
        return done[col].astype(float).mean() if col in done and len(done) else float("nan")

    def std(col):
        return done[col].astype(float).std(ddof=1) if col in done and len(done) > 1 else float("nan")

    return {
        "factor": factor,
        "value": value,
        "baseline": is_baseline,
        "status": _status(runs["status"]) if len(runs) else "not run",
        "runs": len(runs),
        "n": len(done),
        "params": int(params.iloc[0]) if len(params) else None,
        f"{score.name}_mean": mean(column),
        f"{score.name}_std": std(column),
        "test_acc_mean": mean("test_acc"),
        "test_acc_std": std("test_acc"),
        "epochs": mean("epochs"),
        "train_seconds": mean("train_seconds"),
    }


def _table(
    df: pd.DataFrame, factor: str, baseline_value: str, assignment: pd.DataFrame, planned: list[str], score: Score
) -> pd.DataFrame:
    base_idx = assignment.index[assignment["is_baseline"]]
    mine = assignment[assignment["factor"] == factor]
    groups: dict[str, list] = {baseline_value: list(base_idx)}
    for idx, value in mine["value"].items():
        # A variant set to the baseline's own value is the baseline config: same row.
        groups.setdefault(value, []).append(idx)
    for value in planned:  # planned by the sweeper but no folder: a "not run" row
        groups.setdefault(value, [])
    rows = [_row(factor, v, v == baseline_value, df.loc[idx], score) for v, idx in groups.items()]
    columns, mean, delta = table_columns(score.name), f"{score.name}_mean", f"delta_{score.name}"
    table = pd.DataFrame(rows, columns=[c for c in columns if c != delta])
    base_mean = table.loc[table["baseline"], mean].iloc[0]
    table.insert(columns.index(delta), delta, table[mean] - base_mean)
    # ints and None ("not sized"), not floats with NaN: 78042 in the CSV, never 78042.0
    table["params"] = pd.Series([r["params"] for r in rows], index=table.index, dtype=object)
    order = sorted(range(len(table)), key=lambda i: sort_key(table.at[i, "value"]))
    return table.iloc[order].reset_index(drop=True)


def ablation_tables(
    df: pd.DataFrame,
    baseline: dict[str, str] | list[str] | None = None,
    planned: list[tuple[str, str]] | None = None,
    score: Score | None = None,
) -> Ablation | None:
    """Build the one-at-a-time tables of the runs in `df` (from `collect`).

    Args:
        df: the collected runs.
        baseline: for inferred factors, the baseline values, as {"model.C": "32"} or as
            overrides ["model.C=32", "optimizer=adam"]; other factors take their most common
            value. Ignored when the ablation sweeper recorded its baseline.
        planned: (factor, value) pairs the sweeper planned (`plans.read_ablation_plans`);
            those without a run get a "not run" row.
        score: what the tables aggregate (`best.score`, the default: the runs' objective).

    Returns:
        The Ablation, or None when the runs are Optuna trials (no baseline to vary from) or
        nothing varies.

    Example:
        >>> abl = ablation_tables(collect("outputs/sweeps/x"), ["model.C=32"])  # doctest: +SKIP
        >>> abl.tables["model.C"][["value", "val_acc_mean", "delta_val_acc"]]  # doctest: +SKIP
    """
    if df.empty:
        return None
    planned = [(f, canon(v)) for f, v in planned or []]
    if _recorded(df):
        mode = "recorded"
        base, assignment, notes = _assign_recorded(df, [f for f, _ in planned])
    elif _present(df["trial"]).any():
        log.info("runs are Optuna trials: no one-at-a-time tables")
        return None
    else:
        mode = "inferred"
        base, assignment, notes = _assign_inferred(df, _parse_baseline(baseline))
    if not base:
        return None
    score = score or score_of(df)
    tables = {
        f: _table(df, f, v, assignment, [value for g, value in planned if g == f], score) for f, v in base.items()
    }
    return Ablation(mode, base, assignment, tables, notes, score)


def _parse_baseline(baseline: dict[str, str] | list[str] | None) -> dict[str, str]:
    if not baseline:
        return {}
    if isinstance(baseline, dict):
        return {k: canon(v) for k, v in baseline.items()}
    out = {}
    for text in baseline:
        parsed = parse_override(text)
        if parsed is None:
            raise AnalysisError(f"--baseline {text!r}: expected KEY=VALUE, e.g. model.C=32")
        out[parsed[0]] = canon(parsed[1])
    return out


def slug(factor: str) -> str:
    """A file-name-safe factor name: "model.C" -> "model_C", "data/augment" -> "data_augment"."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", factor)
