"""The sweep-level files beside the run folders: what each sweeper writes, what analysis reads.

    <study dir>/study.json           Optuna sweeper: where the study is (storage URL, password
                                     masked), its name, direction(s), the
                                     objectives' names and n_trials
    <sweep dir>/ablation_plan.yaml   ablation sweeper: the baseline, each factor's values run
                                     and skipped, every planned variant, the number of jobs

One writer and one reader per file, here, so the layout is defined once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .messages import first_line
from .run import ContractError, write_atomic

STUDY_FILE = "study.json"
ABLATION_PLAN_FILE = "ablation_plan.yaml"
OPTIMIZATION_RESULTS_FILE = "optimization_results.yaml"  # the standard plugin's name for its summary


@dataclass
class StudyRecord:
    storage: str  # the URL, password masked (budgetsweep.contract.storage)
    study_name: str
    direction: Any  # "maximize" / "minimize", or a list of them
    n_trials: int
    sweeper: str = "optuna"
    objectives: list[str] | None = None  # the objectives' names, one per direction (None: not recorded)


def write_study(study_dir: str | Path, record: StudyRecord) -> None:
    write_atomic(Path(study_dir) / STUDY_FILE, (json.dumps(asdict(record), indent=2) + "\n").encode())


def read_study(study_dir: str | Path) -> StudyRecord | None:
    """The folder's study.json, None when there is none; ContractError when it is unreadable."""
    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
        return StudyRecord(
            storage=str(info["storage"]),
            study_name=str(info["study_name"]),
            direction=info.get("direction", "maximize"),
            n_trials=int(info.get("n_trials", 0)),
            sweeper=str(info.get("sweeper", "optuna")),
            objectives=[str(n) for n in info["objectives"]] if isinstance(info.get("objectives"), list) else None,
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ContractError(f"{path}: unreadable ({type(e).__name__}: {first_line(e)})") from None


@dataclass
class PlannedVariant:
    factor: str | None  # None: the baseline
    value: str | None  # canonical text (budgetsweep.contract.values.canon)
    overrides: list[str] = field(default_factory=list)
    note: str | None = None  # sizing remark: params, over budget, invalid


@dataclass
class AblationPlanRecord:
    repeats: int
    factors: dict[str, dict[str, Any]]  # name -> {baseline, runs: [text], skipped: [text]}
    variants: list[PlannedVariant]
    n_jobs: int


def write_ablation_plan(sweep_dir: str | Path, record: AblationPlanRecord) -> None:
    import yaml

    text = yaml.safe_dump(asdict(record), sort_keys=False)
    write_atomic(Path(sweep_dir) / ABLATION_PLAN_FILE, text.encode())


def read_ablation_plan(sweep_dir: str | Path) -> AblationPlanRecord | None:
    """The folder's ablation_plan.yaml, None when there is none; ContractError when unreadable."""
    import yaml

    path = Path(sweep_dir) / ABLATION_PLAN_FILE
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        variants = [
            PlannedVariant(
                factor=None if v.get("factor") is None else str(v["factor"]),
                value=None if v.get("value") is None else str(v["value"]),
                overrides=[str(o) for o in v.get("overrides") or []],
                note=v.get("note"),
            )
            for v in raw.get("variants") or []
        ]
        return AblationPlanRecord(
            repeats=int(raw.get("repeats") or 1),
            factors=dict(raw.get("factors") or {}),
            variants=variants,
            n_jobs=int(raw.get("n_jobs") or 0),
        )
    except (yaml.YAMLError, OSError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise ContractError(f"{path}: unreadable ({type(e).__name__}: {first_line(e)})") from None
