"""The end of an ablation sweep in the log: how its runs ended, what each factor's best value
gained over the baseline, the best run, and the command that makes the tables.

Read back from the job folders (`contract.read_metrics`), so run.py's runs (metrics.json) and
another app's (the sweeper's sweep_record.json) are summarised by one rule, with the runs an
earlier, interrupted sweep finished. Only completed runs count towards a mean; a gain is
positive when the value beats the baseline in the objective's direction; the best run is the
one `contract.sweep.best_run` picks, the rule analysis applies to the same folder.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from budgetsweep.contract.sweep import finite_number

from .ablation_record import Objective
from .sweep_summary import analyze_line, best_line, read_runs, status_line


def summary_lines(sweep_dir: Path, objective: Objective, factors: Sequence[str] = ()) -> list[str]:
    """The summary of the runs in `sweep_dir`'s job folders; `factors`: the plan's, in its order."""
    runs = read_runs(sweep_dir)
    records = [record for _, record in runs]
    lines = [status_line("Ablation", records)]
    lines += factor_lines(records, objective, factors)
    best = best_line(runs, objective.name, objective.direction, _name)
    lines += [best] if best else []
    lines.append(analyze_line(sweep_dir))
    return lines


def factor_lines(records: Sequence[dict], objective: Objective, factors: Sequence[str] = ()) -> list[str]:
    """Per factor: its best value's mean over repeats and its gain over the baseline's mean.

    >>> runs = [{"status": "completed", "factor": None, "value": None, "objective": 1.0},
    ...         {"status": "completed", "factor": "x", "value": "2", "objective": 0.25},
    ...         {"status": "completed", "factor": "x", "value": "3", "objective": 4.0}]
    >>> factor_lines(runs, Objective("loss", "minimize"))
    ['Ablation: loss (minimize), mean over repeats of completed runs; baseline 1', '  x: best x=2: 0.25, gain +0.75']
    """
    means = _means(records)
    base = means.get((None, None))
    names = list(dict.fromkeys([*factors, *(r.get("factor") for r in records if r.get("factor") is not None)]))
    if not names:
        return []
    sign = 1.0 if objective.direction == "maximize" else -1.0
    head = f"Ablation: {objective.name} ({objective.direction}), mean over repeats of completed runs; baseline "
    lines = [head + (f"{base:.4g}" if base is not None else "has no completed run")]
    for name in names:
        tried = {value: mean for (factor, value), mean in means.items() if factor == name}
        if not tried:
            lines.append(f"  {name}: no completed run")
            continue
        value, mean = max(tried.items(), key=lambda item: sign * item[1])
        gain = "" if base is None else f", gain {sign * (mean - base):+.4g}"
        lines.append(f"  {name}: best {name}={value}: {mean:.4g}{gain}")
    return lines


def _means(records: Sequence[dict]) -> dict[tuple[Any, Any], float]:
    """(factor, value) -> the mean objective of its completed runs; (None, None): the baseline."""
    values: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    for record in records:
        number = finite_number(record.get("objective"))
        if record.get("status") == "completed" and number is not None:
            key = (None, None) if record.get("factor") is None else (record["factor"], record.get("value"))
            values[key].append(number)
    return {key: sum(v) / len(v) for key, v in values.items()}


def _name(record: dict) -> str:
    what = "the baseline" if record.get("factor") is None else f"{record['factor']}={record.get('value')}"
    return f"{what}, repeat {record.get('repeat')}"
