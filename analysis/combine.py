"""Combine the best: the study's second step after the one-at-a-time ablations.

Take each factor's best value and train them together. Sizing is instant
(`models.check_budget`, on the meta device), so when that combination is over the parameter
budget we search instead, by this rule:

1. Candidates (`rank_options`): for each factor, its `top_k` values by their mean objective
   (run.py's validation accuracy, or the app's own objective, in its direction) among the
   values with completed runs, plus the baseline value (keeping the baseline is always an
   option). Values that never completed (over budget, invalid, ...) have no value to rank and
   are not candidates.
2. Score of a combination: the predicted gain, the sum of the chosen values' improvements over
   the baseline (`delta_val_acc`, its sign turned for an objective minimised). This is the
   premise of one-at-a-time ablation: effects add.
3. Size every combination (`combinations`: the baseline run's model config with each chosen
   variant's model changes applied in factor order); drop those over the budget (parameters,
   and FLOPs when the runs were held to `budget.max_flops`) or invalid.
4. Pick (`choose`) the highest score; ties go to fewer parameters, then to fewer changes.

The all-best combination has the highest possible score, so when it fits, it is the pick.
"""

from __future__ import annotations

import itertools
import logging
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from budgetsweep.contract import is_missing
from budgetsweep.contract.values import canon, parse_override

from .ablation import NOT_FACTOR_PREFIXES, Ablation
from .best import Score
from .plans import recorded_budget

log = logging.getLogger(__name__)

MAX_COMBINATIONS = 20_000  # sizing costs ~1-20 ms each: keep the search under a few minutes
FITS = "fits"  # models.check_budget's statuses: "fits" | "over_budget" | "invalid"
NOT_SIZED = "not sized"  # no model config recorded: nothing to size

# (model config, max_params[, max_flops]) -> models.Sizing; `models.check_budget` unless a test
# injects one (max_flops is passed only when there is a FLOPs budget).
CheckBudget = Callable[..., Any]


@dataclass(frozen=True)
class Option:
    """One value a factor may take in a combination."""

    factor: str
    value: str  # canonical
    gain: float  # its improvement over the baseline (delta, in the objective's direction); 0 for the baseline
    model_change: dict[str, Any]  # the model keys its run changed against the baseline run
    override: str | None  # how to type it; None for the baseline's value (no change)


@dataclass
class Combination:
    """One candidate configuration: the baseline plus `changes`."""

    changes: dict[str, str]  # factor -> chosen value (baseline values left out)
    gain: float  # predicted: sum of the chosen values' gains
    params: int | None  # None: not sized or invalid
    status: str  # "fits", "over_budget", "invalid" (models.check_budget) or "not sized"
    overrides: list[str] = field(default_factory=list)  # for the app's command line
    error: str | None = None  # why it is over budget or invalid
    flops: int | None = None  # forward FLOPs of one image; None: not sized or invalid
    app: str = "run.py"  # the app's script (its Hydra job name + .py)

    @property
    def command(self) -> str:
        return f"python {self.app} " + " ".join(shlex.quote(o) for o in self.overrides)


@dataclass
class CombineResult:
    """What `combine_best` found. `chosen` is None when no candidate fits the budget."""

    baseline_value: float  # the baseline's mean objective
    budget: int | None
    best_each: Combination  # each factor's best value together
    chosen: Combination | None
    searched: int  # combinations sized
    top_k: int
    notes: list[str] = field(default_factory=list)
    max_flops: int | None = None  # the FLOPs budget, when the runs had one
    score: Score = Score("val_acc", "val_acc", "maximize")

    def predicted(self, combination: Combination) -> float:
        """The objective the combination is predicted to reach (effects add)."""
        sign = 1.0 if self.score.direction == "maximize" else -1.0
        return self.baseline_value + sign * combination.gain

    @property
    def fallback(self) -> bool:
        return self.chosen is not None and self.chosen.changes != self.best_each.changes


def _model(row: pd.Series) -> dict[str, Any]:
    config = row.get("config")
    return dict(config.get("model") or {}) if isinstance(config, dict) else {}


def _changed(base: dict, other: dict) -> dict:
    return {k: v for k, v in other.items() if canon(base.get(k)) != canon(v)}


def _key(override: str) -> str:
    parsed = parse_override(override)
    return parsed[0] if parsed else override.split("=")[0]


def _override_text(row: pd.Series, factor: str, value: str, recorded: bool) -> str:
    """How the user would type the change: the run's own override when it has one."""
    if recorded and not is_missing(row.get("value")):
        return f"{factor}={row['value']}"
    for text in row.get("overrides") or []:
        if _key(text) == factor:
            return text.lstrip("+")
    return f"{factor}={value}"


def _base_overrides(row: pd.Series) -> list[str]:
    # The sweepers' bookkeeping and the repeat's seed are not part of the config to train.
    return [o for o in row.get("overrides") or [] if not _key(o).startswith(NOT_FACTOR_PREFIXES) and _key(o) != "seed"]


def _apply(overrides: list[str], change: str) -> list[str]:
    return [o for o in overrides if _key(o) != _key(change)] + [change]


def rank_options(df: pd.DataFrame, ablation: Ablation, base_model: dict, top_k: int) -> dict[str, list[Option]]:
    """Per factor: its `top_k` completed variants by mean objective (in its direction), best first."""
    assignment, recorded = ablation.assignment, ablation.mode == "recorded"
    name, sign = ablation.score.name, (1.0 if ablation.score.direction == "maximize" else -1.0)
    ranked: dict[str, list[Option]] = {}
    for factor, table in ablation.tables.items():
        rows = table[(table["n"] > 0) & ~table["baseline"]]
        rows = rows.sort_values(f"{name}_mean", ascending=sign < 0, kind="stable")
        ranked[factor] = []
        for _, trow in rows.head(top_k).iterrows():
            mine = assignment[(assignment["factor"] == factor) & (assignment["value"] == trow["value"])]
            run = df.loc[mine.index[0]]
            ranked[factor].append(
                Option(
                    factor,
                    trow["value"],
                    sign * float(trow[f"delta_{name}"]),
                    _changed(base_model, _model(run)),
                    _override_text(run, factor, trow["value"], recorded),
                )
            )
    return ranked


def search_width(ranked: dict[str, list[Option]], top_k: int) -> int:
    """The largest k <= top_k whose search stays under MAX_COMBINATIONS (at least 1)."""

    def size(k: int) -> int:
        n = 1
        for options in ranked.values():
            n *= min(len(options), k) + 1  # + the baseline value
        return n

    k = top_k
    while k > 1 and size(k) > MAX_COMBINATIONS:
        k -= 1
    return k


def pools(ablation: Ablation, ranked: dict[str, list[Option]], k: int) -> list[list[Option]]:
    """Per factor: the baseline value (no change) and the top k variants, best first. The
    stable sort keeps the baseline ahead of a variant with the same gain: fewer changes."""
    return [
        sorted([Option(f, ablation.baseline[f], 0.0, {}, None)] + options[:k], key=lambda o: -o.gain)
        for f, options in ranked.items()
    ]


class _Sizer:
    """`check_budget` with one answer per distinct model config (canonical text as the key)."""

    def __init__(self, check: CheckBudget, budget: int | None, max_flops: int | None = None) -> None:
        self.check, self.budget, self.max_flops, self.seen = check, budget, max_flops, {}

    def __call__(self, model: dict) -> tuple[int | None, str, str | None, int | None]:
        if not model or "name" not in model:  # no model node, or one not of our registry (an app's _target_)
            return None, NOT_SIZED, None, None
        key = canon(model)
        if key not in self.seen:
            flops_budget = () if self.max_flops is None else (self.max_flops,)
            sizing = self.check(model, self.budget, *flops_budget)
            self.seen[key] = (sizing.params, sizing.status, sizing.error, getattr(sizing, "flops", None))
        return self.seen[key]


def recorded_flops_budget(df: pd.DataFrame) -> int | None:
    """The FLOPs budget the runs were held to (metrics' max_flops, else the config's); None: none."""
    recorded = df["max_flops"] if "max_flops" in df else pd.Series(dtype=float)
    if recorded.isna().all() and "config" in df:
        recorded = df["config"].map(lambda c: (c.get("budget") or {}).get("max_flops") if isinstance(c, dict) else None)
    recorded = pd.to_numeric(recorded, errors="coerce").dropna()
    return int(recorded.max()) if len(recorded) else None


def build(
    base_model: dict, base_overrides: list[str], choice: Iterable[Option], size: _Sizer, app: str = "run.py"
) -> Combination:
    """The combination of the baseline with `choice` (one option per factor), sized."""
    model, overrides, changes, gain = dict(base_model), list(base_overrides), {}, 0.0
    for option in choice:
        if option.override is None:  # the baseline value: no change
            continue
        changes[option.factor] = option.value
        gain += option.gain
        model.update(option.model_change)
        overrides = _apply(overrides, option.override)
    params, status, error, flops = size(model)
    return Combination(changes, gain, params, status, overrides, error, flops, app)


def combinations(option_pools: list[list[Option]]) -> Iterator[tuple[Option, ...]]:
    """Every choice of one option per factor."""
    return itertools.product(*option_pools)


def choose(combos: Iterable[Combination]) -> Combination | None:
    """The highest predicted gain that fits; ties to fewer parameters, then fewer changes."""
    fitting = [c for c in combos if c.status == FITS]
    return min(fitting, key=lambda c: (-c.gain, c.params, len(c.changes)), default=None)


def combine_best(
    df: pd.DataFrame,
    ablation: Ablation,
    budget: int | None = None,
    top_k: int = 3,
    check_budget: CheckBudget | None = None,
    max_flops: int | None = None,
) -> CombineResult | None:
    """Pick the configuration to train next from one-at-a-time results (rule: module docstring).

    Args:
        df: the collected runs; ablation: their `ablation_tables`.
        budget: max trainable parameters; default: the runs' recorded `max_params`.
        top_k: values per factor to search when the all-best combination is over budget.
        check_budget: (model config, max_params[, max_flops]) -> models.Sizing; default `models.check_budget`.
        max_flops: max forward FLOPs of one image; default: the runs' recorded `max_flops` (none: no limit).

    Returns:
        None when there is no completed baseline to compare against.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    base_runs = df.loc[ablation.assignment.index[ablation.assignment["is_baseline"]]]
    column = ablation.score.column
    values = pd.to_numeric(base_runs[column], errors="coerce") if column in base_runs else None
    done = base_runs[(base_runs["status"] == "completed") & values.notna()] if values is not None else base_runs[:0]
    if done.empty:
        log.warning("no completed baseline run: nothing to combine")
        return None
    if check_budget is None:
        from budgetsweep.models import check_budget  # sizes only: analysis never builds weights or trains
    budget = budget if budget is not None else recorded_budget(df)
    max_flops = max_flops if max_flops is not None else recorded_flops_budget(df)
    base_model, base_overrides = _model(done.iloc[0]), _base_overrides(done.iloc[0])
    baseline_value = float(done[column].astype(float).mean())
    job = done.iloc[0].get("job_name")
    app = f"{job}.py" if isinstance(job, str) and job else "run.py"

    ranked = rank_options(df, ablation, base_model, top_k)
    k = search_width(ranked, top_k)
    notes = (
        []
        if k == top_k
        else [(f"top_k lowered from {top_k} to {k} to keep the search under {MAX_COMBINATIONS} combinations")]
    )
    option_pools = pools(ablation, ranked, k)
    size = _Sizer(check_budget, budget, max_flops)
    best_each = build(base_model, base_overrides, [pool[0] for pool in option_pools], size, app)
    if best_each.status in (FITS, NOT_SIZED):
        return CombineResult(baseline_value, budget, best_each, best_each, 1, k, notes, max_flops, ablation.score)

    combos = [build(base_model, base_overrides, choice, size, app) for choice in combinations(option_pools)]
    chosen = choose(combos)
    if chosen is None:
        notes.append("no searched combination fits the budget (not even the baseline's)")
    return CombineResult(baseline_value, budget, best_each, chosen, len(combos), k, notes, max_flops, ablation.score)
