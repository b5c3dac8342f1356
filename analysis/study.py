"""Optuna study summaries: trials table, best feasible trial (`budgetsweep.contract.sweep.best_run`,
ties to the lowest trial number, as `optimization_results.yaml` names it), counts, importances.

Where the study is: `SWEEP_DIR/study.json` (`budgetsweep.contract.layouts.read_study`), written by our
Optuna sweeper; if absent, every study in the `*.db` SQLite files of SWEEP_DIR.

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

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from budgetsweep.contract import ContractError, first_line
from budgetsweep.contract.layouts import read_study
from budgetsweep.contract.storage import JOURNAL, locate, mask, optuna_storage, scrub, split_password, sqlite_url
from budgetsweep.contract.sweep import best_run, ranked_runs

from .pareto import ParetoFront, pareto_front

log = logging.getLogger(__name__)

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
    pareto: ParetoFront | None = None  # several objectives: the front and its knee choices
    objective: str = "value"  # the objective's name (the study's metric name), for one direction


def find_studies(sweep_dir: str | Path) -> list[tuple[str, str]]:
    """(storage URL, study name) pairs recorded in or stored under `sweep_dir`.

    The URL is the one to connect with (a relative SQLite path found in `sweep_dir`, the
    PostgreSQL driver chosen: `budgetsweep.contract.storage.connect_url`) with its password masked:
    `summarize` puts the password back, and nothing shown or written ever holds it.
    """
    sweep_dir = Path(sweep_dir)
    try:
        record = read_study(sweep_dir)
    except ContractError as e:
        record = None
        log.warning(f"{scrub(str(e))}; looking for *.db instead")
    if record is not None:
        return [(mask(locate(record.storage, sweep_dir)), record.study_name)]
    found = []
    dbs = sorted(sweep_dir.glob("*.db")) + sorted(sweep_dir.glob("*.journal"))
    if dbs:
        import optuna  # ~1 s to import: only when the sweep holds a storage
    for db in dbs:
        url = sqlite_url(db) if db.suffix == ".db" else f"{JOURNAL}{db.resolve()}"
        try:
            found += [(url, name) for name in optuna.study.get_all_study_names(storage=optuna_storage(url))]
        except Exception as e:  # a non-Optuna or corrupt file: SQLAlchemy/sqlite3 errors vary
            log.warning(f"{db}: not a readable Optuna storage ({type(e).__name__}); skipped")
    return found


def hide_password(text: str, storage: str) -> str:
    """`text` with the password of `storage` (given in it, or $BUDGETSWEEP_STORAGE_PASSWORD) masked."""
    return scrub(scrub(text), split_password(storage)[1])


def _kind(trial) -> str:
    from optuna.trial import TrialState

    if any(v > 0 for v in trial.constraints.values()):
        return "infeasible"
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}.get(
        trial.state, "other"
    )


def _status(trial, kind: str) -> str:
    """What became of a trial, in words: completed, pruned at step k, over budget, invalid, failed."""
    status = trial.user_attrs.get("status")
    if kind == "pruned" and trial.intermediate_values:
        return f"pruned at step {max(trial.intermediate_values)}"
    if isinstance(status, str) and status:
        return status.replace("_", " ")
    return {"complete": "completed", "infeasible": "over budget"}.get(kind, kind)


def trials_table(study) -> pd.DataFrame:
    """One row per trial, params flattened to params_<name>; `status` in words and its `reason`."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "kind": (kind := _kind(t)),
                "status": _status(t, kind),
                "reason": t.user_attrs.get("error") if isinstance(t.user_attrs.get("error"), str) else None,
                "value": t.value if t.values and len(t.values) == 1 else None,
                "feasible": all(v <= 0 for v in t.constraints.values()),
                "constraints": ", ".join(f"{k}={v:g}" for k, v in t.constraints.items()),
                "duration_s": duration,
                **{f"params_{k}": v for k, v in t.params.items()},
                # What our sweeper notes per trial (status, params = its size, error), if anything.
                **{f"user_{k}": v for k, v in t.user_attrs.items() if isinstance(v, (int, float, str, bool))},
            }
        )
    return pd.DataFrame(rows)


def ranked_trials(table: pd.DataFrame, direction: str) -> pd.DataFrame:
    """The feasible complete trials of a `trials_table`, best first: the contract's rule
    (`budgetsweep.contract.sweep.best_run`, ties to the lowest trial number), as the sweeper's
    `optimization_results.yaml` names the best."""
    rows = table.to_dict("records")
    position = {id(row): i for i, row in enumerate(rows)}
    return table.iloc[[position[id(row)] for row in ranked_runs(rows, direction, **_RULE)]]


def best_trial_row(table: pd.DataFrame, direction: str) -> dict | None:
    """The best feasible complete trial of a `trials_table` (a row as a dict), None when none."""
    return best_run(table.to_dict("records"), direction, **_RULE)


# A trials_table row competes when it counts as complete (feasible, COMPLETE); its number is its trial.
_RULE = dict(value=lambda r: r["value"], feasible=lambda r: r["kind"] == "complete", trial=lambda r: r["number"])


def summarize(storage: str, study_name: str, study_dir: str | Path | None = None) -> StudySummary:
    """Load one study and summarize it (counts, best feasible trial, importances; with several
    objectives the Pareto front instead, its run folders under `study_dir` when given).

    `storage` may hold its password or the mask (then $BUDGETSWEEP_STORAGE_PASSWORD has it);
    the summary keeps the masked URL only.
    """
    import optuna

    study = optuna.load_study(study_name=study_name, storage=optuna_storage(locate(storage, study_dir)))
    storage = mask(storage)
    table = trials_table(study)
    counts = {k: int((table["kind"] == k).sum()) if len(table) else 0 for k in COUNT_KEYS}
    notes = []
    if len(study.directions) > 1:
        notes.append("multi-objective study: no single best trial or importances; its Pareto front instead")
        front = pareto_front(study, study_dir)
        return StudySummary(study_name, storage, "multi", table, counts, None, None, study, notes, front)

    direction = study.direction.name.lower()
    best = None
    row = best_trial_row(table, direction)
    if row is not None:
        trial = study.trials[int(row["number"])]
        best = {"number": trial.number, "value": trial.value, "params": dict(trial.params)}

    importances = None
    try:
        # Optuna's default evaluator (PED-ANOVA in Optuna 5) over the completed trials.
        importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as e:
        notes.append(f"no parameter importances: {first_line(e)}")
    names = study.metric_names
    objective = names[0] if names and isinstance(names[0], str) else "value"
    summary = StudySummary(study_name, storage, direction, table, counts, best, importances, study, notes)
    summary.objective = objective
    return summary
