"""Run folders -> one pandas DataFrame, one row per run.

A run folder is any directory holding `metrics.json` or `.hydra/config.yaml` (the run
contract, `budgetsweep.contract.run`). `collect` walks the given folders recursively, so a sweep folder,
a folder of single runs (`outputs/runs/`) and one run folder all work, and several folders
may be merged.

Columns:
  run_dir, sweep_dir, job     where the run lives (job: run_dir relative to sweep_dir)
  status                      metrics.json's status, or `corrupt` (unreadable metrics.json, or
                              a value no run can have: an accuracy outside [0, 1], inf, a
                              negative count) or `incomplete` (no metrics.json: running,
                              killed or crashed)
  <metrics keys>              every key of metrics.json as written (val_acc, params, ...); for
                              an app's run, the keys of the sweeper's record (sweep_record.json:
                              objective_name, directions, intermediate, ...) and each of its
                              named `metrics` as a column of its own
  config                      the composed config (`.hydra/config.yaml`) as a nested dict,
                              {} when there is none; `config_value` reads a dotted key of it
  overrides                   the job's overrides (list of str)
  choice.<group>              Hydra's config-group choices (`.hydra/hydra.yaml`), e.g.
                              choice.optimizer = "adam": how group factors are told apart
  trial, study, factor,       the sweep coordinates (contract.SWEEP_FIELDS): metrics.json's,
  value, baseline, repeat     else the config's `sweep.*`, so a run with a corrupt
                              metrics.json keeps its place
  job_name                    the app's Hydra job name (its script's name: run, train, ...)
  has_history                 history.csv exists and was readable
  test_epoch, weights         schema 2 as written; a schema 1 run (test_acc of the last epoch's
                              weights, none kept) gets its last epoch and None, so both read alike
  searched                    what the sweep varied for this run: {key: value} of the overrides
                              not every run shares
  label                       a short name: "trial 12", "model.C=32", or the searched values
                              (4 significant digits)

Files that are missing, partial or corrupt cost one warning line each (logger "analysis",
and `df.attrs["warnings"]`); they never stop the collection.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from budgetsweep.contract import (
    HISTORY_COLUMNS,
    HISTORY_FILE,
    METRICS_FILE,
    STATUSES,
    SWEEP_FIELDS,
    ContractError,
    first_line,
    is_missing,
    load_metrics,
    record_path,
)
from budgetsweep.contract.sweep import folder_order
from budgetsweep.contract.values import canon, parse_override, short_value

log = logging.getLogger(__name__)

# Statuses analysis adds for runs without a readable metrics.json, shown after the contract's.
CORRUPT, INCOMPLETE = "corrupt", "incomplete"
STATUS_ORDER = (*STATUSES, CORRUPT, INCOMPLETE)


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
        if METRICS_FILE in filenames or (here / ".hydra" / "config.yaml").is_file():
            found.append(here)
    return sorted(found, key=_natural_key)  # the order best_run breaks its last ties by


def _natural_key(path: Path) -> list:
    return [folder_order(part) for part in path.parts]


def newest_sweep(roots: Iterable[str | Path] = ("outputs/sweeps", "outputs/optuna", "outputs/ablation")) -> Path:
    """The most recently modified folder under `roots`: the default for `budgetsweep analyze`.

    outputs/sweeps/ holds Hydra multiruns (a grid); outputs/ablation/<name>/ the ablation
    sweeper's sweeps; outputs/optuna/<study>/ is where
    our Optuna sweeper keeps a study and its trials.
    """
    roots = [Path(r) for r in roots]
    subdirs = [p for r in roots if r.is_dir() for p in r.iterdir() if p.is_dir()]
    if not subdirs:
        raise AnalysisError(f"no sweep folders under {' or '.join(f'{r}/' for r in roots)}; pass a SWEEP_DIR")
    return max(subdirs, key=lambda p: p.stat().st_mtime)


def check_folders(paths: Iterable[str | Path]) -> list[Path]:
    """The paths as Paths, each folder once; AnalysisError for one that is not an existing folder.

    A folder given twice, or inside another one given, is dropped with a warning: its runs
    would otherwise be counted twice."""
    kept: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise AnalysisError(f"{p}: no such folder")
        if not p.is_dir():
            raise AnalysisError(f"{p}: not a folder (pass a sweep or run folder)")
        kept.append(p)
    unique = []
    for i, p in enumerate(kept):
        here = p.resolve()
        outer = next((q for q in kept if here != q.resolve() and here.is_relative_to(q.resolve())), None)
        if outer is not None:
            log.warning(f"{p}: inside {outer}, also given; read once")
        elif any(here == q.resolve() for q in kept[:i]):
            log.warning(f"{p}: given twice; read once")
        else:
            unique.append(p)
    return unique


# --- one run's config, as nested data ----------------------------------------------------


def lookup(config: Any, key: str) -> Any:
    """The leaf at dotted `key` of a nested config ("model.C"), None when absent or a group."""
    node = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return None if isinstance(node, Mapping) else node


def leaves(config: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf of a nested config, in order (lists are leaves)."""
    if not isinstance(config, Mapping):
        return
    for key, value in config.items():
        if isinstance(value, Mapping):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_value(row: pd.Series, key: str) -> str | None:
    """A run's canonical value of `key`: its config, else its group choice, else its override."""
    value = lookup(row.get("config"), key)
    if is_missing(value):
        value = row.get(f"choice.{key}")
    if not is_missing(value):
        return canon(value)
    for text in row.get("overrides") or []:
        parsed = parse_override(text)
        if parsed and parsed[0] == key:
            return canon(parsed[1])
    return None


# --- reading one run ---------------------------------------------------------------------


class _Warnings:
    """Collects one line per problem and logs it at once, so CLI and notebook both see it."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        log.warning(line)


def _read_yaml(path: Path, warn: _Warnings) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as e:
        warn(f"{path}: unreadable YAML ({type(e).__name__}); ignored")
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return _is_number(v) and float(v).is_integer()


def _is_count(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _is_fraction(v: Any) -> bool:
    return _is_number(v) and 0.0 <= v <= 1.0


def _is_size(v: Any) -> bool:
    return _is_number(v) and v >= 0 and v < 1e300


# The metrics.json values analysis computes with, by type (docs/run-contract.md); null is
# always allowed. A value of another type makes the run `corrupt` with one warning naming the
# key, not a crash in a table. Keys not listed are carried as they are.
METRICS_TYPES: dict[str, tuple[Any, str]] = {
    **dict.fromkeys(("objective", "final_val_loss", "test_loss"), (_is_number, "a finite number")),
    **dict.fromkeys(("val_acc", "final_val_acc", "test_acc"), (_is_fraction, "an accuracy in [0, 1]")),
    **dict.fromkeys(("train_seconds", "images_per_second"), (_is_size, "a number >= 0")),
    **dict.fromkeys(
        ("schema_version", "best_epoch", "params", "flops", "max_params", "epochs", "epochs_planned", "test_epoch"),
        (_is_count, "an int >= 0"),
    ),
    **dict.fromkeys(("seed", "trial", "repeat"), (_is_int, "an int")),
    **dict.fromkeys(("metrics", "directions", "intermediate"), (lambda v: isinstance(v, dict), "a mapping")),
    "objective_name": (lambda v: isinstance(v, str), "a string"),
    "weights": (lambda v: isinstance(v, str), "a string"),
    "tags": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of strings"),
    **dict.fromkeys(
        ("device", "error", "study", "factor", "torch_version"), (lambda v: isinstance(v, str), "a string")
    ),
    "value": (lambda v: isinstance(v, (str, int, float, bool)), "a string"),
    "baseline": (lambda v: isinstance(v, bool), "true or false"),
    "overrides": (lambda v: isinstance(v, list) and all(isinstance(o, str) for o in v), "a list of strings"),
}


def wrong_type(metrics: dict[str, Any]) -> str | None:
    """Why a metrics.json's values do not follow the contract's types, or None when they do."""
    if metrics.get("status") not in STATUSES:
        return f"'status' is {metrics.get('status')!r}, not one of {', '.join(STATUSES)}"
    for key, value in metrics.items():
        ok, expected = METRICS_TYPES.get(key, (None, ""))
        if ok is not None and value is not None and not ok(value):
            return f"{key!r} is {value!r}, not {expected}"
    return None


def _read_metrics(run: Path, warn: _Warnings) -> dict[str, Any]:
    """The run's record (metrics.json, or the sweeper's sweep_record.json), its named metrics as
    keys of their own; or a stand-in whose status says why there is none (the contract's reason)."""
    path = record_path(run)
    try:
        metrics = load_metrics(run)
        if problem := wrong_type(metrics):
            raise ContractError(f"{path}: {problem}")
    except ContractError as e:
        if not path.exists():
            warn(f"{e} (run unfinished or crashed); shown with status '{INCOMPLETE}'")
            return {"status": INCOMPLETE, "error": f"no {METRICS_FILE} (unfinished or crashed)"}
        reason = first_line(e).removeprefix(f"{path}: ")
        warn(f"{e}; shown with status '{CORRUPT}'")
        return {"status": CORRUPT, "error": f"{path.name} {reason}"}
    named = metrics.get("metrics")
    if isinstance(named, dict):  # an app's numbers by name: columns, where they clash with nothing
        metrics.update({k: v for k, v in named.items() if k not in metrics or metrics[k] is None})
    return metrics


def read_history(run_dir: str | Path, warn: _Warnings | None = None) -> pd.DataFrame | None:
    """history.csv of one run as a DataFrame, or None when missing or unreadable."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return None
    try:
        # on_bad_lines="skip": a row cut short by a crash loses that row, not the file.
        hist = pd.read_csv(path, on_bad_lines="skip")
    except (ValueError, OSError, pd.errors.ParserError) as e:
        if warn:
            warn(f"{path}: unreadable ({type(e).__name__}); learning curve skipped")
        return None
    needed = {HISTORY_COLUMNS[0], "val_acc"}
    if not needed <= set(hist.columns):
        if warn:
            warn(f"{path}: lacks the epoch/val_acc columns; learning curve skipped")
        return None
    hist = hist.apply(pd.to_numeric, errors="coerce").dropna(subset=["epoch"])
    return hist.sort_values("epoch").reset_index(drop=True)


def _read_config(hydra_dir: Path, warn: _Warnings) -> dict[str, Any]:
    if not (hydra_dir / "config.yaml").is_file():
        warn(f"{hydra_dir / 'config.yaml'}: missing; config columns left empty")
    config = _read_yaml(hydra_dir / "config.yaml", warn)
    return config if isinstance(config, dict) else {}


def _read_choices(hydra_dir: Path, warn: _Warnings) -> dict[str, Any]:
    """The config-group choices (`choice.<group>`) and the app's job name (`job_name`)."""
    hydra_cfg = (_read_yaml(hydra_dir / "hydra.yaml", warn) or {}).get("hydra") or {}
    choices = (hydra_cfg.get("runtime") or {}).get("choices") or {}
    # Hydra's own plugins are not our factors.
    found = {f"choice.{g}": c for g, c in choices.items() if not str(g).startswith("hydra/")}
    return {**found, "job_name": (hydra_cfg.get("job") or {}).get("name")}


def _read_run(run: Path, sweep_dir: Path, warn: _Warnings) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_dir": str(run),
        "sweep_dir": str(sweep_dir),
        "job": str(run.relative_to(sweep_dir)) if run != sweep_dir else ".",
    }
    metrics = _read_metrics(run, warn)
    row.update(metrics)
    if metrics.get("schema_version") == 1:  # its test split was measured on the last epoch's weights
        row.update(test_epoch=metrics.get("epochs") if metrics.get("test_acc") is not None else None, weights=None)
    hydra_dir = run / ".hydra"
    row["config"] = config = _read_config(hydra_dir, warn)
    overrides = _read_yaml(hydra_dir / "overrides.yaml", warn)
    if not isinstance(overrides, list):
        overrides = metrics.get("overrides") if isinstance(metrics.get("overrides"), list) else []
    row["overrides"] = [str(o) for o in overrides]
    row.update(_read_choices(hydra_dir, warn))

    # A run whose metrics.json is lost still knows its sweep coordinates from the config.
    for name in SWEEP_FIELDS:
        if is_missing(row.get(name)):
            row[name] = lookup(config, f"sweep.{name}")

    row["has_history"] = read_history(run, warn) is not None
    # Only a completed run of run.py promises a learning curve (others may stop before epoch 1;
    # an app's record has none to promise).
    ours = "source" not in metrics
    if ours and not (run / HISTORY_FILE).is_file() and row["status"] == "completed":
        warn(f"{run / HISTORY_FILE}: missing; no learning curve for this run")
    return row


def _own(overrides: list[str]) -> list[str]:
    return [o for o in overrides if not o.lstrip("+~").startswith(("sweep.", "hydra.", "seed="))]


def searched(df: pd.DataFrame) -> pd.Series:
    """Per run, what the sweep varied: {key: value as typed} of its overrides that not every run
    shares (the sweepers' bookkeeping and the seed left out)."""
    lists = df["overrides"].map(_own)
    shared = set.intersection(*(set(o) for o in lists)) if len(lists) else set()
    out = []
    for overrides in lists:
        pairs = [parse_override(o) for o in overrides if o not in shared]
        out.append({p[0]: p[1] for p in pairs if p})
    return pd.Series(out, index=df.index, dtype=object)


def _labels(df: pd.DataFrame) -> pd.Series:
    """A short name per run for tables and legends.

    Optuna trials: "trial 12" (the searched values are columns of their own). Ablation jobs:
    "baseline" or "factor=value". Others (a grid's cells): the overrides not every run shares,
    values to 4 significant digits; the job folder when nothing is left. When seeds differ,
    " seed=N" tells repeats apart.
    """
    labels = []
    for (_, row), own in zip(df.iterrows(), df["searched"], strict=False):
        if not is_missing(row.get("trial")):
            label = f"trial {int(row['trial'])}"
        elif row.get("baseline") is True:
            label = "baseline"
        elif isinstance(row.get("factor"), str):
            label = f"{row['factor']}={short_value(row.get('value'))}"
        else:
            label = " ".join(f"{k}={short_value(v)}" for k, v in own.items()) or row["job"]
        labels.append(label)
    seeds = df["config"].map(lambda c: lookup(c, "seed"))
    if seeds.isna().all() and "seed" in df:
        seeds = df["seed"]
    if seeds.dropna().nunique() > 1:
        labels = [lab if is_missing(s) else f"{lab} seed={int(s)}" for lab, s in zip(labels, seeds, strict=False)]
    return pd.Series(labels, index=df.index)


def collect(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read every run under `paths` into one DataFrame (columns: see the module docstring).

    Args:
        paths: a sweep folder, a folder of runs, one run folder, or a list of these.

    Raises:
        AnalysisError: a path does not exist or holds no run.

    Example:
        >>> df = collect("outputs/sweeps/2025-01-01_12-00-00")  # doctest: +SKIP
        >>> df[df.status == "completed"].sort_values("val_acc")[["label", "params", "val_acc"]]  # doctest: +SKIP
    """
    warn = _Warnings()
    rows = []
    for root in check_folders([paths] if isinstance(paths, (str, Path)) else paths):
        runs = find_run_dirs(root)
        if not runs:
            raise AnalysisError(f"{root}: no runs found (no {METRICS_FILE} or .hydra/config.yaml)")
        rows += [_read_run(run, root, warn) for run in runs]

    df = pd.DataFrame(rows)
    for name in (*SWEEP_FIELDS, "test_epoch", "weights"):
        if name not in df.columns:
            df[name] = None
    df["searched"] = searched(df)
    df["label"] = _labels(df)
    df.attrs["warnings"] = warn.lines
    return df
