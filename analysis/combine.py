"""Combine the best: the study's second step after the one-at-a-time ablations.

Take each factor's best value and train them together. Sizes are instant
(`models.count_params` on the meta device), so when that combination is over the parameter
budget we search instead, by this rule:

1. Candidates: for each factor, its `top_k` values by mean validation accuracy among the
   values with completed runs, plus the baseline value (keeping the baseline is always an
   option). Values that never completed (over budget, invalid, ...) have no accuracy to rank
   and are not candidates.
2. Score of a combination: the predicted gain, the sum of the chosen values' differences to
   the baseline (`delta_val_acc`). This is the premise of one-at-a-time ablation: effects add.
3. Size every combination (the model config = the baseline's, with each chosen variant's
   model changes applied in factor order); drop those over the budget or that cannot build.
4. Pick the highest score; ties go to fewer parameters, then to fewer changes.

The all-best combination has the highest possible score, so when it fits, it is the pick.
"""
from __future__ import annotations

import itertools
import logging
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from analysis.ablation import Ablation
from analysis.collect import recorded_budget, unflatten
from analysis.values import parse_override, parse_value

log = logging.getLogger("analysis")

MAX_COMBINATIONS = 20_000  # sizing costs ~1-20 ms each: keep the search under a few minutes


@dataclass
class Combination:
    """One candidate configuration: the baseline plus `changes`."""

    changes: dict[str, str]  # factor -> chosen value (baseline values left out)
    gain: float  # predicted: sum of the chosen values' delta_val_acc
    params: int | None  # None: not sized (no models package, or a non-model family)
    status: str  # "fits", "over_budget", "invalid: <reason>", "not sized"
    overrides: list[str] = field(default_factory=list)  # for `python run.py`

    @property
    def command(self) -> str:
        return "python run.py " + " ".join(shlex.quote(o) for o in self.overrides)


@dataclass
class CombineResult:
    """What `combine_best` found. `chosen` is None when no candidate fits the budget."""

    baseline_val_acc: float
    budget: int | None
    best_each: Combination  # each factor's best value together
    chosen: Combination | None
    searched: int  # combinations sized
    top_k: int
    notes: list[str] = field(default_factory=list)

    @property
    def fallback(self) -> bool:
        return self.chosen is not None and self.chosen.changes != self.best_each.changes


def _model_dict(row: pd.Series) -> dict[str, Any]:
    # .item(): DataFrame cells are numpy scalars; model configs want plain int/float.
    flat = {k[len("cfg.model."):]: v.item() if hasattr(v, "item") else v for k, v in row.items()
            if k.startswith("cfg.model.") and not _missing(v)}
    # collect() stored lists as "[1, 2, 2]"; count_params wants them back as lists.
    return unflatten({k: parse_value(v) if isinstance(v, str) and v.startswith("[") else v
                      for k, v in flat.items()})


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _dict_diff(base: dict, other: dict) -> dict:
    return {k: v for k, v in other.items() if base.get(k) != v}


def _override_text(row: pd.Series, factor: str, value: str, recorded: bool) -> str:
    """How the user would type the change: the run's own override when it has one."""
    if recorded and not _missing(row.get("value")):
        return f"{factor}={row['value']}"
    for text in row.get("overrides") or []:
        parsed = parse_override(text)
        if parsed and parsed[0] == factor:
            return text.lstrip("+")
    return f"{factor}={value}"


def _base_overrides(row: pd.Series) -> list[str]:
    keep = []
    for text in row.get("overrides") or []:
        parsed = parse_override(text)
        key = parsed[0] if parsed else ""
        # The sweepers' bookkeeping and the repeat's seed are not part of the config to train.
        if not key.startswith(("sweep.", "hydra.", "hydra/")) and key != "seed":
            keep.append(text)
    return keep


def _apply(overrides: list[str], change: str) -> list[str]:
    key = parse_override(change)[0] if parse_override(change) else change.split("=")[0]
    kept = [o for o in overrides if (parse_override(o) or ("",))[0] != key]
    return kept + [change]


def _default_counter() -> Callable[[dict], int] | None:
    try:
        import models  # sizes only: analysis never builds weights or trains
    except ImportError as e:
        log.warning(f"models not importable ({e}); the combined config is not sized")
        return None
    return models.count_params


def combine_best(df: pd.DataFrame, ablation: Ablation, budget: int | None = None, top_k: int = 3,
                 count_params: Callable[[dict], int] | None = None) -> CombineResult | None:
    """Pick the configuration to train next from one-at-a-time results (rule: module docstring).

    Args:
        df: the collected runs; ablation: their `ablation_tables`.
        budget: max trainable parameters; default: the runs' recorded `max_params`.
        top_k: values per factor to search when the all-best combination is over budget.
        count_params: model config -> parameters; default `models.count_params`.

    Returns:
        None when there is no completed baseline to compare against.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    assignment = ablation.assignment
    base_idx = assignment.index[assignment["is_baseline"]]
    base_runs = df.loc[base_idx]
    done = base_runs[(base_runs["status"] == "completed") & base_runs["val_acc"].notna()]
    if done.empty:
        log.warning("no completed baseline run: nothing to combine")
        return None
    base_row = done.iloc[0]
    base_model = _model_dict(base_row)
    base_overrides = _base_overrides(base_row)
    budget = budget if budget is not None else recorded_budget(df)
    count = count_params or _default_counter()
    recorded = ablation.mode == "recorded"
    notes = []

    # Per factor: its ranked variants [(value, delta, model change, override text)], best first.
    ranked: dict[str, list[tuple[str, float, dict, str | None]]] = {}
    for factor, table in ablation.tables.items():
        rows = table[(table["n"] > 0) & ~table["baseline"]].sort_values("val_acc_mean", ascending=False)
        ranked[factor] = []
        for _, trow in rows.head(top_k).iterrows():
            mine = assignment[(assignment["factor"] == factor) & (assignment["value"] == trow["value"])]
            run = df.loc[mine.index[0]]
            ranked[factor].append((trow["value"], float(trow["delta_val_acc"]),
                                   _dict_diff(base_model, _model_dict(run)),
                                   _override_text(run, factor, trow["value"], recorded)))

    k = top_k
    while k > 1 and _product_size(ranked, k) > MAX_COMBINATIONS:
        k -= 1
    if k < top_k:
        notes.append(f"top_k lowered from {top_k} to {k} to keep the search under "
                     f"{MAX_COMBINATIONS} combinations")
    factors = list(ranked)
    # Each pool: the baseline value (no change) then the top k variants, best first. The
    # stable sort keeps the baseline ahead of a variant with the same delta: fewer changes.
    pools = [sorted([(ablation.baseline[f], 0.0, {}, None)] + ranked[f][:k], key=lambda o: -o[1])
             for f in factors]

    sizes: dict[str, tuple[int | None, str]] = {}

    def size(model: dict) -> tuple[int | None, str]:
        key = repr(sorted(model.items()))
        if key not in sizes:
            if count is None or not model:
                sizes[key] = (None, "not sized")
            else:
                try:
                    sizes[key] = (int(count(model)), "")
                except Exception as e:  # models.ConfigError and whatever a bad combination raises
                    sizes[key] = (None, f"invalid: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return sizes[key]

    def make(choice: tuple) -> Combination:
        model = dict(base_model)
        overrides = list(base_overrides)
        changes, gain = {}, 0.0
        for factor, (value, delta, diff, text) in zip(factors, choice):
            if text is None:  # the baseline value: no change
                continue
            changes[factor] = value
            gain += delta
            model.update(diff)
            overrides = _apply(overrides, text)
        params, why = size(model)
        if why:
            status = why
        elif budget is not None and params > budget:
            status = "over_budget"
        else:
            status = "fits"
        return Combination(changes, gain, params, status, overrides)

    best_each = make(tuple(pool[0] for pool in pools))
    if best_each.status in ("fits", "not sized"):
        return CombineResult(float(done["val_acc"].astype(float).mean()), budget, best_each,
                             best_each, 1, k, notes)

    combos = [make(choice) for choice in itertools.product(*pools)]
    fitting = [c for c in combos if c.status == "fits"]
    fitting.sort(key=lambda c: (-c.gain, c.params, len(c.changes)))
    chosen = fitting[0] if fitting else None
    if chosen is None:
        notes.append("no searched combination fits the budget (not even the baseline's)")
    return CombineResult(float(done["val_acc"].astype(float).mean()), budget, best_each,
                         chosen, len(combos), k, notes)


def _product_size(ranked: dict[str, list], k: int) -> int:
    n = 1
    for variants in ranked.values():
        n *= min(len(variants), k) + 1  # + the baseline value
    return n


def describe(result: CombineResult, markdown: bool = False) -> str:
    """The combine step as text: plain for the terminal, bullets and a code block for Markdown."""
    def line(c: Combination) -> str:
        changes = " ".join(f"{f}={v}" for f, v in c.changes.items()) or "the baseline (no change)"
        changes = f"`{changes}`" if markdown else changes
        params = f"{c.params:,} params" if c.params is not None else "params unknown"
        predicted = 100 * (result.baseline_val_acc + c.gain)
        return f"{changes}: {params}, predicted val acc {predicted:.2f}% (baseline + summed gains)"

    budget = f"{result.budget:,}" if result.budget is not None else "none"
    lines = [f"Baseline val acc {100 * result.baseline_val_acc:.2f}%; budget {budget} params.",
             f"Each factor's best value together: {line(result.best_each)} "
             f"[{result.best_each.status.replace('_', ' ')}]."]
    if result.chosen is None:
        lines.append(f"No combination of the top {result.top_k} values per factor fits the budget "
                     f"({result.searched} sized).")
    elif result.fallback:
        lines.append(f"Over the budget, so searched {result.searched} combinations of each "
                     f"factor's top {result.top_k} values and the baseline's (rule: the highest "
                     f"summed gain that fits; ties to fewer params).")
        lines.append(f"Chosen: {line(result.chosen)}.")
    lines += result.notes
    if markdown:
        text = "\n".join(f"- {l}" for l in lines)
        if result.chosen is not None:
            text += f"\n\nTrain it with:\n\n```bash\n{result.chosen.command}\n```"
        return text
    if result.chosen is not None:
        lines.append(f"Train it with:\n    {result.chosen.command}")
    return "\n".join(lines)
