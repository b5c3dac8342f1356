"""One-factor-at-a-time planning as pure functions: no config loading, no launching.

`parse_factors` reads a sweep's overrides (`hydra.sweeper.params` first, then the command
line; a later entry for the same key replaces an earlier one) into factors and fixed
overrides. `plan_ablation` turns (baseline values, factors) into the jobs: the baseline, then
each value that differs from its baseline, one factor at a time, every variant `repeats`
times with seed = baseline seed + repeat. `format_plan` words the plan for the log;
`plan_name` names it (the default folder), the same name for the same plan.

Which entries are factors:
- every entry of `hydra.sweeper.params`, even a single value (`stem_kernel: 2` = "try 2");
- a command-line sweep (`model.C=32,64`, `choice(64)`, `range(2,5)`, `optimizer=glob(*)`);
- a plain command-line override (`epochs=2`) is fixed: it changes the baseline and every job.

Hydra's override grammar is used throughout: values are compared as parsed values (64 equals
64.0, `[1,1,1]` is a list) and written back with Hydra's own formatter.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from hydra.core.override_parser.types import QuotedString, Transformer

from budgetsweep.contract.layouts import AblationPlanRecord, PlannedVariant
from budgetsweep.contract.values import canon, quote, values_equal

from .errors import SweeperError

if TYPE_CHECKING:
    from hydra.core.override_parser.overrides_parser import OverridesParser


class AblationError(SweeperError, ValueError):
    """Bad ablation input, or an ablation that cannot go on: one line, as every SweeperError."""


@dataclass(frozen=True)
class Factor:
    """One swept key and its candidate values, in the order given."""

    name: str  # the config key or group, as recorded: `model.C`, `optimizer`
    key: str  # the override's key as written, prefix included: `model.C`, `+extra`
    values: tuple[Any, ...]  # parsed, plain Python (int, float, str, bool, None, list, dict)
    texts: tuple[str, ...]  # the same values in override grammar, as they go after `=`

    @property
    def adds(self) -> bool:
        """`+key=` / `++key=`: the key may be absent from the baseline config."""
        return self.key.startswith("+")


@dataclass(frozen=True)
class Job:
    overrides: tuple[str, ...]
    factor: str | None  # None: the baseline
    value: str | None  # the value as recorded in `sweep.value`
    repeat: int
    seed: int | None  # None: the config's own seed is left alone (one repeat)


@dataclass(frozen=True)
class Plan:
    jobs: tuple[Job, ...]  # repeat-major: all variants of repeat 0, then of repeat 1, ...
    factors: tuple[Factor, ...]
    baseline: Mapping[str, Any]  # factor name -> its baseline value (absent: not in the config)
    runs: Mapping[str, tuple[str, ...]]  # factor name -> texts of the values run
    skipped: Mapping[str, tuple[str, ...]]  # factor name -> texts equal to the baseline
    repeats: int

    @property
    def variants(self) -> tuple[Job, ...]:
        """The jobs of repeat 0: the baseline and each variant once."""
        return tuple(j for j in self.jobs if j.repeat == 0)


def _plain(x: Any) -> Any:
    """A parsed override element as plain Python (QuotedString -> str, recursively)."""
    if isinstance(x, QuotedString):
        return x.text
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {_plain(k): _plain(v) for k, v in x.items()}
    return x


def _param_text(value: Any) -> str:
    """A `hydra.sweeper.params` value (a string, or a YAML scalar/list) as override text."""
    if isinstance(value, str):
        return value
    return Transformer.str(value)


def parse_factors(
    params: Mapping[str, Any] | None,
    arguments: Sequence[str],
    parser: OverridesParser | None = None,
) -> tuple[list[Factor], dict[str, str]]:
    """Split a sweep's overrides into factors and fixed overrides (name -> override line).

    Args:
        params: `hydra.sweeper.params` as plain Python: key -> override value text
            (`"32,64,68"`, `"'[1,1,1],[2,2,2]'"`) or a YAML scalar. Every entry is a factor.
        arguments: the command-line task overrides. Sweeps are factors, the rest is fixed.
        parser: Hydra's parser; pass one made with the config loader to expand `glob(...)`.

    Example:
        >>> factors, fixed = parse_factors({"stem_kernel": 2}, ["model.C=32,64", "epochs=2"])
        >>> [(f.name, f.texts) for f in factors], fixed
        ([('stem_kernel', ('2',)), ('model.C', ('32', '64'))], {'epochs': 'epochs=2'})
    """
    if parser is None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
    lines = [(f"{k}={_param_text(v)}", True) for k, v in (params or {}).items()]
    lines += [(line, False) for line in arguments]
    entries: dict[str, Factor | str] = {}
    for line, from_params in lines:
        (override,) = parser.parse_overrides([line])
        key = override.get_key_element()
        name = key.lstrip("+~")
        if override.is_hydra_override():
            raise AblationError(f"ablation: cannot vary Hydra's own config ({line!r})")
        entries.pop(name, None)  # a later entry replaces an earlier one, and moves last
        if not from_params and not override.is_sweep_override():
            entries[name] = line
            continue
        if override.is_delete():
            raise AblationError(f"ablation: a factor cannot delete a key ({line!r})")
        if override.is_sweep_override() and not override.is_discrete_sweep():
            raise AblationError(
                f"ablation: {line!r} is not a list of values; use a,b,c, choice(...), range(...) or glob(...)"
            )
        if override.is_sweep_override():
            # one pass: a shuffled choice(...) must give the same order to values and texts
            elements = list(override.sweep_iterator(transformer=Transformer.identity))
            values = tuple(_plain(e) for e in elements)
            texts = tuple(Transformer.str(e) for e in elements)
        else:
            values, texts = (override.value(),), (override.get_value_element_as_str(),)
        entries[name] = Factor(name=name, key=key, values=values, texts=texts)
    factors = [e for e in entries.values() if isinstance(e, Factor)]
    fixed = {n: e for n, e in entries.items() if isinstance(e, str)}
    return factors, fixed


def _record(prefix: str, factor: str | None, value: str | None, repeat: int) -> list[str]:
    return [
        f"{prefix}factor={'null' if factor is None else quote(factor)}",
        f"{prefix}value={'null' if value is None else quote(value)}",
        f"{prefix}baseline={'true' if factor is None else 'false'}",
        f"{prefix}repeat={repeat}",
    ]


def plan_ablation(
    baseline: Mapping[str, Any],
    factors: Sequence[Factor],
    fixed: Mapping[str, str] | None = None,
    repeats: int = 1,
    seed: Any = None,
    seed_key: str | None = "seed",
    record_prefix: str | None = "sweep.",
) -> Plan:
    """The jobs of a one-factor-at-a-time sweep.

    Args:
        baseline: factor name -> its value in the composed config (a group's choice for a
            config group). A factor missing here is an error unless its key starts with `+`.
        factors: from `parse_factors`; values equal to the baseline (or repeated) are skipped.
        fixed: name -> override line applied to every job (the command line's plain overrides).
        repeats: every variant, the baseline included, runs this many times.
        seed: the config's seed; with repeats > 1 job r gets `seed_key=seed + r` (a factor on
            `seed_key` itself gives its value + r). `seed_key` None: repeats are not seeded.
        record_prefix: where the coordinates go (`sweep.factor=...` etc.); None: not recorded.

    Example:
        >>> from budgetsweep.sweeper.ablation_plan import Factor, plan_ablation
        >>> f = Factor("model.C", "model.C", (32, 64), ("32", "64"))
        >>> [j.overrides for j in plan_ablation({"model.C": 64}, [f], record_prefix=None).jobs]
        [(), ('model.C=32',)]
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise AblationError(f"ablation: hydra.sweeper.repeats must be an int >= 1, got {repeats!r}")
    if repeats > 1 and seed_key is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise AblationError(
            f"ablation: hydra.sweeper.repeats={repeats} needs an int `{seed_key}` in the config, got {seed!r}"
        )
    variants: list[_Variant] = [_Variant(None, None, None, seed)]
    runs: dict[str, tuple[str, ...]] = {}
    skipped: dict[str, tuple[str, ...]] = {}
    for f in factors:
        kept, runs[f.name], skipped[f.name] = _factor_variants(f, baseline, seed, seed_key)
        variants += kept
    seeded = repeats > 1 or any(f.name == seed_key for f in factors)
    jobs = _expand(variants, dict(fixed or {}), repeats, seed_key if seeded else None, record_prefix)
    return Plan(jobs=jobs, factors=tuple(factors), baseline=dict(baseline), runs=runs, skipped=skipped, repeats=repeats)


@dataclass(frozen=True)
class _Variant:
    factor: str | None  # None: the baseline
    line: str | None  # the override that makes it, as typed (`model.C=32`)
    value: str | None  # canonical text, recorded in `sweep.value`
    seed: Any  # the seed its repeat 0 runs with


def _factor_variants(
    f: Factor, baseline: Mapping[str, Any], seed: Any, seed_key: str | None
) -> tuple[list[_Variant], tuple[str, ...], tuple[str, ...]]:
    """One factor's variants: each value that differs from the baseline and from the values
    before it. Returns (variants, texts run, texts skipped)."""
    if f.name not in baseline and not f.adds:
        raise AblationError(
            f"ablation: factor {f.name!r} is not a key or config group of the composed config "
            f"(use +{f.name}=... to add a key)"
        )
    kept: list[_Variant] = []
    values: list[Any] = []
    ran: list[str] = []
    skip: list[str] = []
    for value, text in zip(f.values, f.texts):
        same_as_base = f.name in baseline and values_equal(baseline[f.name], value)
        if same_as_base or any(values_equal(v, value) for v in values):
            skip.append(text)
            continue
        if f.name == seed_key and (isinstance(value, bool) or not isinstance(value, int)):
            raise AblationError(f"ablation: {seed_key} values must be ints, got {text!r}")
        values.append(value)
        ran.append(text)
        kept.append(_Variant(f.name, f"{f.key}={text}", canon(value), value if f.name == seed_key else seed))
    return kept, tuple(ran), tuple(skip)


def _expand(
    variants: Sequence[_Variant],
    fixed: Mapping[str, str],
    repeats: int,
    seed_key: str | None,
    record_prefix: str | None,
) -> tuple[Job, ...]:
    """Every variant x every repeat, repeat-major. With `seed_key`, repeat r of a variant runs
    with its seed + r (the command line's own seed override is replaced)."""
    jobs = []
    for r in range(repeats):
        for v in variants:
            overrides = [line for name, line in fixed.items() if name != seed_key]
            if v.line is not None and v.factor != seed_key:
                overrides.append(v.line)
            if record_prefix is not None:
                overrides += _record(record_prefix, v.factor, v.value, r)
            job_seed = None
            if seed_key is not None and v.seed is not None:
                job_seed = v.seed + r
                overrides.append(f"{seed_key}={job_seed}")
            jobs.append(Job(tuple(overrides), v.factor, v.value, r, job_seed))
    return tuple(jobs)


def format_plan(plan: Plan, notes: Mapping[int, str] | None = None) -> list[str]:
    """The plan as log lines. `notes`: index into `plan.variants` -> a remark (size, budget)."""
    n_var = len(plan.variants)
    lines = [
        f"Ablation: {len(plan.jobs)} jobs = (1 baseline + {n_var - 1} variants) x {plan.repeats} "
        f"repeat{'s' if plan.repeats != 1 else ''}, one factor at a time"
    ]
    width = max([len(f.name) for f in plan.factors] + [8])
    for f in plan.factors:
        base = canon(plan.baseline[f.name]) if f.name in plan.baseline else "(absent)"
        line = f"  {f.name:<{width}}  baseline {base}; runs {', '.join(plan.runs[f.name]) or 'nothing'}"
        if plan.skipped[f.name]:
            line += f"; skips {', '.join(plan.skipped[f.name])} (= baseline or repeated)"
        lines.append(line)
    if plan.repeats > 1 and plan.jobs[0].seed is not None:
        lines.append(f"  seeds: {plan.jobs[0].seed}..{plan.jobs[0].seed + plan.repeats - 1} (seed + repeat)")
    for i, note in sorted((notes or {}).items()):
        job = plan.variants[i]
        what = "baseline" if job.factor is None else f"{job.factor}={job.value}"
        lines.append(f"  {what}: {note}")
    return lines


def plan_name(plan: Plan, prefix: str | None = None) -> str:
    """`<prefix or "ablation">-<8 hex digits>` of what `plan_changes` compares (the variants, each
    with its overrides, fixed ones included, and the repeats): the same command names the same
    folder, so a rerun resumes there; a changed plan gets a new one. Sizing is left out.

        >>> f = Factor("model.C", "model.C", (32, 64), ("32", "64"))
        >>> p = plan_ablation({"model.C": 64}, [f], record_prefix=None)
        >>> plan_name(p) == plan_name(plan_ablation({"model.C": 64}, [f], record_prefix=None))
        True
        >>> plan_name(p, "ablation_quick").startswith("ablation_quick-")
        True
    """
    shape = {"repeats": plan.repeats, "variants": [[j.factor, j.value, list(j.overrides)] for j in plan.variants]}
    digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:8]
    return f"{prefix or 'ablation'}-{digest}"


def plan_changes(old: AblationPlanRecord, new: AblationPlanRecord) -> list[str]:
    """How the plan recorded in a sweep folder differs from this run's (what it would mix into
    that folder); [] when both run the same jobs. Sizing notes do not count."""

    def name(v: PlannedVariant) -> str:
        return "the baseline" if v.factor is None else f"{v.factor}={v.value}"

    before = {name(v): v.overrides for v in old.variants}
    now = {name(v): v.overrides for v in new.variants}
    changes = []
    if old.repeats != new.repeats:
        changes.append(f"repeats {old.repeats} -> {new.repeats}")
    if gone := [k for k in before if k not in now]:
        changes.append(f"no longer planned: {', '.join(gone)}")
    if added := [k for k in now if k not in before]:
        changes.append(f"new: {', '.join(added)}")
    for key in (k for k in now if k in before and before[k] != now[k]):
        was = [o for o in before[key] if o not in now[key]]
        changes.append(
            f"{key} with {' '.join(o for o in now[key] if o not in before[key]) or 'fewer overrides'}"
            f" (was {' '.join(was) or 'fewer overrides'})"
        )
        break  # one shows the change; a fixed override changes them all
    return changes
