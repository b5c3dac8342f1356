"""Optuna study summaries: trials table, best feasible trial, counts, importances.

Where the study is: `SWEEP_DIR/study.json` ({"storage": URL, "study_name": NAME}), written by
our Optuna sweeper; if absent, every study in the `*.db` SQLite files of SWEEP_DIR.

Feasibility: our sweeper marks a config over the parameter budget with Optuna 5's
`trial.set_constraint(...)` (a positive value = violated), and tells Optuna PRUNED without
training it. Each trial is counted once:
  infeasible  any constraint > 0 (whatever its state)
  complete    state COMPLETE, feasible
  pruned      state PRUNED, feasible (stopped by the pruner)
  failed      state FAIL
  other       RUNNING / WAITING (a sweep still going, or killed)
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

log = logging.getLogger("analysis")

COUNT_KEYS = ["complete", "pruned", "infeasible", "failed", "other"]


@dataclass
class StudySummary:
    """One study. `study` is the live optuna.Study (for plots)."""

    name: str
    storage: str
    direction: str
    trials: pd.DataFrame  # number, state, value, feasible, constraints, duration_s, params_*
    counts: dict[str, int]
    best: dict | None  # the best feasible complete trial: number, value, params
    importances: dict[str, float] | None
    study: object = None
    notes: list[str] = field(default_factory=list)


def find_studies(sweep_dir: str | Path) -> list[tuple[str, str]]:
    """(storage URL, study name) pairs recorded in or stored under `sweep_dir`."""
    sweep_dir = Path(sweep_dir)
    record = sweep_dir / "study.json"
    if record.is_file():
        try:
            info = json.loads(record.read_text())
            return [(_storage_url(info["storage"], sweep_dir), str(info["study_name"]))]
        except (ValueError, KeyError, TypeError) as e:
            log.warning(f"{record}: unreadable ({type(e).__name__}: {e}); looking for *.db instead")
    found = []
    dbs = sorted(sweep_dir.glob("*.db"))
    if dbs:
        import optuna  # ~1 s to import: only when the sweep holds a storage
    for db in dbs:
        url = f"sqlite:///{db.resolve()}"
        try:
            found += [(url, name) for name in optuna.study.get_all_study_names(storage=url)]
        except Exception as e:  # a non-Optuna or corrupt file: SQLAlchemy/sqlite3 errors vary
            log.warning(f"{db}: not a readable Optuna storage ({type(e).__name__}); skipped")
    return found


PASSWORD_ENV = "BUDGETSWEEP_STORAGE_PASSWORD"  # where our sweeper keeps a masked password


def _storage_url(url: str, sweep_dir: Path) -> str:
    """The URL to connect with.

    A relative sqlite path was relative to where the sweep ran: try the sweep folder too. Our
    sweeper writes `postgresql://user:***@host/db` (password masked); the password comes back
    from $BUDGETSWEEP_STORAGE_PASSWORD, else libpq's PGPASSWORD / ~/.pgpass apply.
    """
    if ":***@" in url:
        from sqlalchemy.engine import make_url

        return make_url(url).set(password=os.environ.get(PASSWORD_ENV)).render_as_string(hide_password=False)
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        path = Path(url[len(prefix):])
        if not path.exists() and (sweep_dir / path.name).exists():
            return prefix + str((sweep_dir / path.name).resolve())
    return url


def _kind(trial) -> str:
    from optuna.trial import TrialState

    if any(v > 0 for v in trial.constraints.values()):
        return "infeasible"
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned",
            TrialState.FAIL: "failed"}.get(trial.state, "other")


def trials_table(study) -> pd.DataFrame:
    """One row per trial, params flattened to params_<name>."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({
            "number": t.number, "state": t.state.name, "kind": _kind(t),
            "value": t.value if t.values and len(t.values) == 1 else None,
            "feasible": all(v <= 0 for v in t.constraints.values()),
            "constraints": ", ".join(f"{k}={v:g}" for k, v in t.constraints.items()),
            "duration_s": duration,
            **{f"params_{k}": v for k, v in t.params.items()},
            # What our sweeper notes per trial (status, params = its size, error), if anything.
            **{f"user_{k}": v for k, v in t.user_attrs.items() if isinstance(v, (int, float, str, bool))},
        })
    return pd.DataFrame(rows)


def summarize(storage: str, study_name: str) -> StudySummary:
    """Load one study and summarize it (counts, best feasible trial, importances)."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    table = trials_table(study)
    counts = {k: int((table["kind"] == k).sum()) if len(table) else 0 for k in COUNT_KEYS}
    notes = []
    if len(study.directions) > 1:
        notes.append("multi-objective study: no single best trial or importances")
        return StudySummary(study_name, storage, "multi", table, counts, None, None, study, notes)

    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = None
    ok = table[table["kind"] == "complete"] if len(table) else table
    if len(ok):
        row = ok.loc[ok["value"].idxmax() if maximize else ok["value"].idxmin()]
        trial = study.trials[int(row["number"])]
        best = {"number": trial.number, "value": trial.value, "params": dict(trial.params)}

    importances = None
    try:
        # Optuna's default evaluator (PED-ANOVA in Optuna 5) over the completed trials.
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as e:
        notes.append(f"no parameter importances: {str(e).splitlines()[0]}")
    direction = "maximize" if maximize else "minimize"
    return StudySummary(study_name, storage, direction, table, counts, best, importances, study, notes)


def describe(summary: StudySummary) -> str:
    """The study in a few lines for the terminal and the report."""
    counts = ", ".join(f"{summary.counts[k]} {k}" for k in COUNT_KEYS if summary.counts[k] or k != "other")
    out = [f"Study {summary.name!r} ({summary.direction}): {len(summary.trials)} trials: {counts}."]
    if summary.best:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in summary.best["params"].items())
        out.append(f"Best feasible trial #{summary.best['number']}: value {summary.best['value']:.4f} ({params}).")
    else:
        out.append("No feasible completed trial.")
    if summary.importances:
        imp = ", ".join(f"{k} {v:.2f}" for k, v in summary.importances.items())
        out.append(f"Importances (Optuna default evaluator): {imp}.")
    return "\n".join(out + summary.notes)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
