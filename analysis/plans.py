"""What a sweep was held to, beyond its runs' rows: the ablation sweepers' plans
(`ablation_plan.yaml`) and the parameter budget the runs recorded."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from budgetsweep.contract import ContractError
from budgetsweep.contract.layouts import read_ablation_plan
from budgetsweep.contract.values import canon

from .collect import lookup

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """What the ablation sweepers planned (`ablation_plan.yaml` of each folder): the (factor,
    canonical value) of every variant, and the number of jobs (variants x repeats)."""

    variants: list[tuple[str, str]]
    n_jobs: int


def read_ablation_plans(paths: Iterable[str | Path]) -> Plan:
    """The plans in `paths`, merged. A variant whose job never wrote a folder (a sweep stopped
    early) still gets its table row, with status "not run", instead of vanishing."""
    plan = Plan([], 0)
    for root in map(Path, paths):
        try:
            record = read_ablation_plan(root)
        except ContractError as e:
            log.warning(f"{e}; planned variants not checked")
            continue
        if record is not None:
            plan.variants += [(v.factor, canon(v.value)) for v in record.variants if v.factor]
            plan.n_jobs += record.n_jobs
    return plan


def recorded_budget(df: pd.DataFrame) -> int | None:
    """The parameter budget the runs were held to (metrics' max_params, else the config's)."""
    recorded = df["max_params"] if "max_params" in df else pd.Series(dtype=float)
    if recorded.isna().all():
        recorded = df["config"].map(lambda c: lookup(c, "budget.max_params"))
    recorded = pd.to_numeric(recorded, errors="coerce").dropna()
    return int(recorded.max()) if len(recorded) else None
