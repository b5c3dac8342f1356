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

Each table row aggregates the runs of one value: accuracy mean and sample std (ddof=1) over
the completed runs only, `n` of them; `delta_val_acc` is against the baseline row's mean.
Values whose runs did not complete (over_budget, invalid, diverged, failed, pruned, corrupt,
incomplete) keep their row, with their status and empty accuracies.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from analysis.collect import AnalysisError
from analysis.values import canon, parse_override, sort_key

log = logging.getLogger("analysis")

# Override keys that are never factors: repeats differ in seed, the sweepers' bookkeeping
# differs per job, and hydra.* settings do not change a run's result.
NOT_FACTOR_KEYS = {"seed", "device", "progress", "checkpoint"}
NOT_FACTOR_PREFIXES = ("sweep.", "hydra.", "hydra/")

TABLE_COLUMNS = [
    "factor", "value", "baseline", "status", "runs", "n", "params",
    "val_acc_mean", "val_acc_std", "delta_val_acc", "test_acc_mean", "test_acc_std",
    "epochs", "train_seconds",
]


@dataclass
class Ablation:
    """The one-at-a-time view of a set of runs.

    Attributes:
        mode: "recorded" (the ablation sweeper's fields) or "inferred" (grid / plain runs).
        baseline: factor -> the baseline's canonical value.
        assignment: per included run (index of the collected DataFrame): `factor` (None for
            the baseline), `value` (canonical) and `is_baseline`.
        tables: factor -> its table (columns TABLE_COLUMNS), in the order factors were found.
        notes: one line per thing a reader should know (runs left out and why).
    """

    mode: str
    baseline: dict[str, str]
    assignment: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _is_factor_key(key: str) -> bool:
    return key not in NOT_FACTOR_KEYS and not key.startswith(NOT_FACTOR_PREFIXES)


def config_value(row: pd.Series, key: str) -> str | None:
    """A run's canonical value of `key`: its config, else its group choice, else its override."""
    for column in (f"cfg.{key}", f"choice.{key}"):
        if column in row.index and not _missing(row[column]):
            return canon(row[column])
    for text in row.get("overrides") or []:
        parsed = parse_override(text)
        if parsed and parsed[0] == key:
            return canon(parsed[1])
    return None


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _has_config(row: pd.Series) -> bool:
    return any(k.startswith("cfg.") and not _missing(v) for k, v in row.items())


def _recorded(df: pd.DataFrame) -> bool:
    has_factor = df["factor"].map(lambda v: not _missing(v)).any()
    has_baseline = df["baseline"].map(lambda v: v is True or v == "true").any()
    return bool(has_factor or has_baseline)


def _assign_recorded(df: pd.DataFrame) -> tuple[dict[str, str], pd.DataFrame, list[str]]:
    notes = []
    is_base = df["baseline"].map(lambda v: v is True or v == "true") & df["factor"].map(_missing)
    factors = list(dict.fromkeys(f for f in df["factor"] if not _missing(f)))
    base_rows = df[is_base]
    baseline = {}
    for f in factors:
        values = [config_value(row, f) for _, row in base_rows.iterrows()]
        values = [v for v in values if v is not None]
        baseline[f] = Counter(values).most_common(1)[0][0] if values else "baseline"

    rows = []
    for idx, row in df.iterrows():
        if is_base[idx]:
            rows.append((idx, None, None, True))
        elif not _missing(row["factor"]):
            value = canon(row["value"]) if not _missing(row["value"]) else config_value(row, row["factor"])
            rows.append((idx, row["factor"], value or "?", False))
    left_out = len(df) - len(rows)
    if left_out:
        notes.append(f"{left_out} run(s) carry no ablation coordinates (no factor, not the "
                     "baseline) and are left out of the ablation tables")
    assignment = pd.DataFrame(rows, columns=["index", "factor", "value", "is_baseline"]).set_index("index")
    return baseline, assignment, notes


def _candidate_keys(df: pd.DataFrame) -> list[str]:
    keys = []
    for overrides in df["overrides"]:
        for text in overrides or []:
            parsed = parse_override(text)
            if parsed and _is_factor_key(parsed[0]):
                keys.append(parsed[0])
    keys = list(dict.fromkeys(keys))
    if keys:
        return keys
    # No overrides recorded anywhere: fall back to every config key.
    return [c[4:] for c in df.columns if c.startswith("cfg.") and _is_factor_key(c[4:])]


def _assign_inferred(df: pd.DataFrame, given: dict[str, str]) -> tuple[dict[str, str], pd.DataFrame, list[str]]:
    notes = []
    usable = df[df.apply(_has_config, axis=1) | df["overrides"].map(bool)]
    if len(usable) < len(df):
        notes.append(f"{len(df) - len(usable)} run(s) have neither config nor overrides and "
                     "are left out of the ablation tables")
    values = pd.DataFrame({k: [config_value(r, k) for _, r in usable.iterrows()]
                           for k in _candidate_keys(usable)}, index=usable.index)
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
        notes.append(f"{multi} run(s) differ from the baseline in more than one factor and are "
                     "left out of the one-at-a-time tables")
    if factors and not any(r[3] for r in rows):
        notes.append("no run has the baseline config; differences to the baseline are empty")
    assignment = pd.DataFrame(rows, columns=["index", "factor", "value", "is_baseline"]).set_index("index")
    return baseline, assignment, notes


def _status(statuses: pd.Series) -> str:
    """"completed" when all agree, else the counts, most common first: "completed 2, failed 1"."""
    counts = Counter(statuses.fillna("unknown"))
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{s} {n}" for s, n in counts.most_common())


def _row(factor: str, value: str, is_baseline: bool, runs: pd.DataFrame) -> dict:
    done = runs[(runs["status"] == "completed") & runs["val_acc"].notna()] if len(runs) else runs
    params = runs["params"].dropna() if "params" in runs else pd.Series(dtype=float)

    def mean(col):
        return done[col].astype(float).mean() if col in done and len(done) else float("nan")

    def std(col):
        return done[col].astype(float).std(ddof=1) if col in done and len(done) > 1 else float("nan")

    return {
        "factor": factor, "value": value, "baseline": is_baseline,
        "status": _status(runs["status"]) if len(runs) else "not run",
        "runs": len(runs), "n": len(done),
        "params": int(params.iloc[0]) if len(params) else None,
        "val_acc_mean": mean("val_acc"), "val_acc_std": std("val_acc"),
        "test_acc_mean": mean("test_acc"), "test_acc_std": std("test_acc"),
        "epochs": mean("epochs"), "train_seconds": mean("train_seconds"),
    }


def _table(df: pd.DataFrame, factor: str, baseline_value: str, assignment: pd.DataFrame,
           planned: list[str]) -> pd.DataFrame:
    base_idx = assignment.index[assignment["is_baseline"]]
    mine = assignment[assignment["factor"] == factor]
    groups: dict[str, list] = {baseline_value: list(base_idx)}
    for idx, value in mine["value"].items():
        # A variant set to the baseline's own value is the baseline config: same row.
        groups.setdefault(value, []).append(idx)
    for value in planned:  # planned by the sweeper but no folder: a "not run" row
        groups.setdefault(value, [])
    rows = [_row(factor, v, v == baseline_value, df.loc[idx]) for v, idx in groups.items()]
    table = pd.DataFrame(rows, columns=[c for c in TABLE_COLUMNS if c != "delta_val_acc"])
    base_mean = table.loc[table["baseline"], "val_acc_mean"].iloc[0]
    table.insert(TABLE_COLUMNS.index("delta_val_acc"), "delta_val_acc", table["val_acc_mean"] - base_mean)
    table["params"] = table["params"].astype("Int64")  # nullable: over-budget rows keep ints
    order = sorted(range(len(table)), key=lambda i: sort_key(table.at[i, "value"]))
    return table.iloc[order].reset_index(drop=True)


def ablation_tables(df: pd.DataFrame, baseline: dict[str, str] | list[str] | None = None,
                    planned: list[tuple[str, str]] | None = None) -> Ablation | None:
    """Build the one-at-a-time tables of the runs in `df` (from `collect`).

    Args:
        df: the collected runs.
        baseline: for inferred factors, the baseline values, as {"model.C": "32"} or as
            overrides ["model.C=32", "optimizer=adam"]; other factors take their most common
            value. Ignored when the ablation sweeper recorded its baseline.
        planned: (factor, value) pairs the sweeper planned (`collect.read_ablation_plans`);
            those without a run get a "not run" row.

    Returns:
        The Ablation, or None when the runs are Optuna trials (no baseline to vary from) or
        nothing varies.

    Example:
        >>> abl = ablation_tables(collect("outputs/sweeps/x"), ["model.C=32"])  # doctest: +SKIP
        >>> abl.tables["model.C"][["value", "val_acc_mean", "delta_val_acc"]]
    """
    if df.empty:
        return None
    if _recorded(df):
        base, assignment, notes = _assign_recorded(df)
        mode = "recorded"
    else:
        if df["trial"].map(lambda v: not _missing(v)).any():
            log.info("runs are Optuna trials: no one-at-a-time tables")
            return None
        base, assignment, notes = _assign_inferred(df, _parse_baseline(baseline))
        mode = "inferred"
    if mode == "recorded":  # a planned factor none of whose variants has a folder yet
        base_rows = df.loc[assignment.index[assignment["is_baseline"]]]
        for factor, _ in planned or []:
            if factor not in base:
                found = [config_value(row, factor) for _, row in base_rows.iterrows()]
                base[factor] = next((v for v in found if v is not None), "baseline")
    if not base:
        return None
    plans = {f: [canon(v) for g, v in planned or [] if g == f] for f in base}
    tables = {f: _table(df, f, v, assignment, plans[f]) for f, v in base.items()}
    return Ablation(mode, base, assignment, tables, notes)


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
