"""Run folders -> one pandas DataFrame, one row per run.

A run folder is any directory holding `metrics.json` or `.hydra/config.yaml` (the run
contract in README.md). `collect` walks the given folders recursively, so a sweep folder,
a folder of single runs (`outputs/runs/`) and one run folder all work, and several folders
may be merged.

Columns:
  run_dir, sweep_dir, job     where the run lives (job: run_dir relative to sweep_dir)
  status                      metrics.json's status, or `corrupt` (unreadable metrics.json)
                              or `incomplete` (no metrics.json: running, killed or crashed)
  <metrics keys>              every key of metrics.json as written (val_acc, params, ...)
  factor, value, baseline,    the ablation coordinates (metrics.json, else the config's
  repeat                      `sweep.*` so a run with a corrupt metrics.json keeps its place)
  cfg.<dotted.key>            the composed config, flattened (lists as "[1, 2, 2]")
  choice.<group>              Hydra's config-group choices (`.hydra/hydra.yaml`), e.g.
                              choice.optimizer = "adam": how group factors are told apart
  overrides                   the job's overrides (list of str)
  has_history                 history.csv exists and was readable
  label                       a short name: the overrides not shared by every run

Files that are missing, partial or corrupt cost one warning line each (logger "analysis",
and `df.attrs["warnings"]`); they never stop the collection.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import yaml

from analysis.values import canon

log = logging.getLogger("analysis")

METRICS = "metrics.json"
HISTORY = "history.csv"
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
# Ablation coordinates, and their config twins set by the ablation sweeper.
SWEEP_FIELDS = ["factor", "value", "baseline", "repeat", "trial", "study"]


class AnalysisError(Exception):
    """Bad input the user can fix (a missing path, no runs); the CLI prints it as one line."""


def find_run_dirs(root: Path) -> list[Path]:
    """Every folder under `root` (itself included) that holds a run, sorted naturally.

    Our own output folder `analysis/` and Hydra's `.hydra/` are skipped.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Prune in place so os.walk does not descend into them.
        dirnames[:] = [d for d in dirnames if d not in {"analysis", ".hydra", "__pycache__"}]
        here = Path(dirpath)
        if METRICS in filenames or (here / ".hydra" / "config.yaml").is_file():
            found.append(here)
    return sorted(found, key=_natural_key)


def _natural_key(path: Path) -> list:
    # Hydra names sweep jobs 0, 1, ..., 10: sort 2 before 10.
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]


def newest_sweep(roots: Iterable[str | Path] = ("outputs/sweeps", "outputs/optuna")) -> Path:
    """The most recently modified folder under `roots`: the default for `python -m analysis`.

    outputs/sweeps/ holds Hydra multiruns (grid, ablation); outputs/optuna/<study>/ is where
    our Optuna sweeper keeps a study and its trials.
    """
    roots = [Path(r) for r in roots]
    subdirs = [p for r in roots if r.is_dir() for p in r.iterdir() if p.is_dir()]
    if not subdirs:
        raise AnalysisError(f"no sweep folders under {' or '.join(f'{r}/' for r in roots)}; pass a SWEEP_DIR")
    return max(subdirs, key=lambda p: p.stat().st_mtime)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"a.b.c": value}; lists become canonical strings so cells stay hashable."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    out[prefix[:-1]] = canon(node) if isinstance(node, (list, tuple)) else node
    return out


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": 1} -> {"a": {"b": 1}}: the inverse of `flatten` for dict nodes."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


class _Warnings:
    """Collects one line per problem and logs it at once, so CLI and notebook both see it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, where: Path, message: str) -> None:
        line = f"{where}: {message}"
        self.lines.append(line)
        log.warning(line)


def _read_yaml(path: Path, warn: _Warnings) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        warn(path, f"unreadable YAML ({type(e).__name__}); ignored")
        return None


def _read_metrics(run: Path, warn: _Warnings) -> dict[str, Any]:
    path = run / METRICS
    if not path.is_file():
        warn(path, "missing (run unfinished or crashed); shown with status 'incomplete'")
        return {"status": "incomplete", "error": "no metrics.json (unfinished or crashed)"}
    try:
        metrics = json.loads(path.read_text())
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError, UnicodeDecodeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        warn(path, f"corrupt ({reason}); shown with status 'corrupt'")
        return {"status": "corrupt", "error": f"metrics.json unreadable ({reason})"}
    if "status" not in metrics:
        warn(path, "has no 'status'; shown with status 'corrupt'")
        metrics["status"] = "corrupt"
    return metrics


def read_history(run_dir: str | Path, warn: _Warnings | None = None) -> pd.DataFrame | None:
    """history.csv of one run as a DataFrame, or None when missing or unreadable."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return None
    try:
        # on_bad_lines="skip": a row cut short by a crash loses that row, not the file.
        hist = pd.read_csv(path, on_bad_lines="skip")
    except (ValueError, OSError, pd.errors.ParserError) as e:
        if warn:
            warn(path, f"unreadable ({type(e).__name__}); learning curve skipped")
        return None
    if "epoch" not in hist.columns or "val_acc" not in hist.columns:
        if warn:
            warn(path, "lacks the epoch/val_acc columns; learning curve skipped")
        return None
    hist = hist.apply(pd.to_numeric, errors="coerce").dropna(subset=["epoch"])
    return hist.sort_values("epoch").reset_index(drop=True)


def _read_run(run: Path, sweep_dir: Path, warn: _Warnings) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_dir": str(run),
        "sweep_dir": str(sweep_dir),
        "job": str(run.relative_to(sweep_dir)) if run != sweep_dir else ".",
    }
    metrics = _read_metrics(run, warn)
    row.update(metrics)

    hydra_dir = run / ".hydra"
    config = _read_yaml(hydra_dir / "config.yaml", warn)
    if config is None and not (hydra_dir / "config.yaml").is_file():
        warn(hydra_dir / "config.yaml", "missing; config columns left empty")
    if isinstance(config, dict):
        row.update({f"cfg.{k}": v for k, v in flatten(config).items()})

    overrides = _read_yaml(hydra_dir / "overrides.yaml", warn)
    if not isinstance(overrides, list):
        overrides = metrics.get("overrides") if isinstance(metrics.get("overrides"), list) else []
    row["overrides"] = [str(o) for o in overrides]

    hydra_cfg = _read_yaml(hydra_dir / "hydra.yaml", warn)
    choices = (((hydra_cfg or {}).get("hydra") or {}).get("runtime") or {}).get("choices") or {}
    for group, choice in choices.items():
        if not str(group).startswith("hydra/"):  # Hydra's own plugins are not our factors
            row[f"choice.{group}"] = choice

    # A run whose metrics.json is lost still knows its ablation coordinates from the config.
    for name in SWEEP_FIELDS:
        if row.get(name) is None and row.get(f"cfg.sweep.{name}") is not None:
            row[name] = row[f"cfg.sweep.{name}"]

    history_ok = read_history(run, warn) is not None
    # Only a completed run promises a learning curve; others may stop before epoch 1.
    if not (run / HISTORY).is_file() and row["status"] == "completed":
        warn(run / HISTORY, "missing; no learning curve for this run")
    row["has_history"] = history_ok
    return row


def _labels(df: pd.DataFrame) -> pd.Series:
    """A short name per run for tables and legends.

    Ablation jobs: "baseline" or "factor=value". Others: their overrides minus those every
    run shares and the sweepers' bookkeeping; the job folder when nothing is left. When
    seeds differ, " seed=N" tells repeats apart.
    """
    def own(overrides: list[str]) -> list[str]:
        return [o for o in overrides if not o.lstrip("+~").startswith(("sweep.", "hydra.", "seed="))]

    lists = df["overrides"].map(own)
    shared = set.intersection(*(set(o) for o in lists)) if len(lists) else set()
    labels = []
    for (_, row), ovs in zip(df.iterrows(), lists):
        if row.get("baseline") is True:
            label = "baseline"
        elif isinstance(row.get("factor"), str):
            label = f"{row['factor']}={row.get('value')}"
        else:
            label = " ".join(o for o in ovs if o not in shared) or row["job"]
        labels.append(label)
    seeds = df["cfg.seed"] if "cfg.seed" in df else df.get("seed")
    if seeds is not None and seeds.dropna().nunique() > 1:
        labels = [lab if pd.isna(s) else f"{lab} seed={int(s)}" for lab, s in zip(labels, seeds)]
    return pd.Series(labels, index=df.index)


def collect(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read every run under `paths` into one DataFrame (columns: see the module docstring).

    Args:
        paths: a sweep folder, a folder of runs, one run folder, or a list of these.

    Raises:
        AnalysisError: a path does not exist or holds no run.

    Example:
        >>> df = collect("outputs/sweeps/2025-01-01_12-00-00")  # doctest: +SKIP
        >>> df[df.status == "completed"].sort_values("val_acc")[["label", "params", "val_acc"]]
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    warn = _Warnings()
    rows = []
    for root in map(Path, paths):
        if not root.exists():
            raise AnalysisError(f"{root}: no such folder")
        if not root.is_dir():
            raise AnalysisError(f"{root}: not a folder (pass a sweep or run folder)")
        runs = find_run_dirs(root)
        if not runs:
            raise AnalysisError(f"{root}: no runs found (no metrics.json or .hydra/config.yaml)")
        rows += [_read_run(run, root, warn) for run in runs]

    df = pd.DataFrame(rows)
    for name in SWEEP_FIELDS:
        if name not in df.columns:
            df[name] = None
    df["label"] = _labels(df)
    df.attrs["warnings"] = warn.lines
    return df


def read_ablation_plans(paths: Iterable[str | Path]) -> tuple[list[tuple[str, str]], int]:
    """What the ablation sweeper planned (`ablation_plan.yaml` in each folder): the (factor,
    value) of every variant, and the number of jobs (variants x repeats).

    A variant whose job never wrote a folder (a sweep stopped early) still gets its table
    row, with status "not run", instead of vanishing; missing repeats are counted.
    """
    planned, n_jobs = [], 0
    for root in map(Path, paths):
        plan = root / "ablation_plan.yaml"
        if not plan.is_file():
            continue
        try:
            record = yaml.safe_load(plan.read_text()) or {}
            planned += [(str(v["factor"]), str(v["value"])) for v in record.get("variants") or []
                        if v.get("factor")]
            n_jobs += int(record.get("n_jobs") or 0)
        except (yaml.YAMLError, OSError, AttributeError, KeyError, TypeError) as e:
            log.warning(f"{plan}: unreadable ({type(e).__name__}); planned variants not checked")
    return planned, n_jobs


def recorded_budget(df: pd.DataFrame) -> int | None:
    """The parameter budget the runs were held to (metrics' max_params, else the config's)."""
    for column in ("max_params", "cfg.budget.max_params"):
        if column in df and df[column].notna().any():
            return int(df[column].dropna().max())
    return None
