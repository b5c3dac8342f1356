"""`hydra/sweeper=ablation`: one factor at a time from a baseline, not the cartesian product.

    python run.py -m hydra/sweeper=ablation model.C=32,64,68 optimizer=adam,sgd
    python any_app.py -m hydra/sweeper=ablation lr=0.01,0.1     # any Hydra app: registered below

runs the baseline (the composed config, without the sweep overrides) once, plus each listed
value that differs from the baseline, one factor at a time: 1 + 3 - 1 jobs here when the
baseline is C=68 with adam. `hydra.sweeper.params` takes the same syntax for presets;
`hydra.sweeper.repeats=R` runs every variant with seeds seed..seed+R-1 (`seed_key`; an app
without that key gets unseeded repeats). Each job's coordinates go to its Hydra job config as
environment variables (BUDGETSWEEP_FACTOR, _VALUE, _BASELINE, _REPEAT) and, when the app's
config has the `record` node (run.py's `sweep`), into it as `sweep.factor/value/baseline/repeat`,
which run.py's trainer copies into metrics.json. Variants are sized under the budget before
launch (`budgetsweep.sweeper.sizing`, the Optuna sweeper's sizing). Jobs go to whatever launcher is
configured, `max_batch_size` at a time.

Hydra imports this module at every start (pyproject entry point): it imports Hydra only.
The planning is pure (`budgetsweep.sweeper.ablation_plan`); torch is loaded only to size the variants.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from budgetsweep.contract import ContractError, first_line, read_metrics
from budgetsweep.contract.layouts import AblationPlanRecord, PlannedVariant, read_ablation_plan, write_ablation_plan
from budgetsweep.contract.values import quote

from .ablation_plan import AblationError, Job, Plan, format_plan, parse_factors, plan_ablation, plan_changes
from .sizing import WAYS_OUT, BudgetConf, Sizer, Unsizable

log = logging.getLogger(__name__)

_ABSENT = object()
RECORDED = ("factor", "value", "baseline", "repeat")
ENV = {"factor": "BUDGETSWEEP_FACTOR", "value": "BUDGETSWEEP_VALUE", "baseline": "BUDGETSWEEP_BASELINE"}
REPEAT_ENV = "BUDGETSWEEP_REPEAT"


@dataclass
class AblationSweeperConf:
    """`hydra/sweeper=ablation`, registered for any app (no YAML file needed)."""

    _target_: str = "budgetsweep.sweeper.ablation_sweeper.AblationSweeper"
    params: Optional[Dict[str, Any]] = None  # key: "v1,v2,..." (override syntax); every entry is a factor
    repeats: int = 1  # runs of every variant; seed = seed + repeat
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at once; null = all
    seed_key: Optional[str] = "seed"  # the config key that holds the seed; absent or null: repeats unseeded
    record: Optional[str] = "sweep"  # node that receives factor/value/baseline/repeat, when the config has it
    size: bool = True  # size each variant under the budget before launch and log it
    max_failure_rate: float = 0.0  # after the sweep, fail if more than this fraction of jobs raised
    budget: BudgetConf = field(default_factory=BudgetConf)


ConfigStore.instance().store(group="hydra/sweeper", name="ablation", node=AblationSweeperConf, provider="budgetsweep")


class AblationSweeper(Sweeper):
    """One-factor-at-a-time sweeper.

    Args:
        params: key -> values in override syntax (`"32,64,68"`), each entry a factor.
        repeats: runs of every variant, with seed = config seed + repeat (0-based).
        max_batch_size: jobs handed to the launcher at once; None = all.
        seed_key: the config key that holds the seed; None, or a key the config lacks: repeats
            run without a seed override.
        record: the config node that receives factor/value/baseline/repeat when the config has
            it; None = none. The job's environment gets them in any case.
        size: size each variant before launch (`budgetsweep.sweeper.sizing`) and log the ones over the
            budget or invalid (they are launched anyway: run.py's job records them).
        max_failure_rate: after all jobs ran, fail the sweep if more than this fraction of
            jobs raised (a job that records over_budget/invalid and returns is not a failure).
        budget: `max_params`, `model_key`, `size_fn`, as for the Optuna sweeper (budgetsweep.sweeper.sizing).
    """

    def __init__(
        self,
        params: DictConfig | dict[str, Any] | None = None,
        repeats: int = 1,
        max_batch_size: int | None = None,
        seed_key: str | None = "seed",
        record: str | None = "sweep",
        size: bool = True,
        max_failure_rate: float = 0.0,
        budget: Any = None,
    ) -> None:
        super().__init__()
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise AblationError(f"ablation: hydra.sweeper.repeats must be an int >= 1, got {repeats!r}")
        if max_batch_size is not None and (not isinstance(max_batch_size, int) or max_batch_size < 1):
            raise AblationError(
                f"ablation: hydra.sweeper.max_batch_size must be null or an int >= 1, got {max_batch_size!r}"
            )
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise AblationError(f"ablation: hydra.sweeper.max_failure_rate must be in [0, 1], got {max_failure_rate!r}")
        if isinstance(params, DictConfig):
            params = OmegaConf.to_container(params, resolve=False)  # type: ignore[assignment]
        self.params: dict[str, Any] = dict(params or {})
        self.repeats = repeats
        self.max_batch_size = max_batch_size
        self.seed_key = seed_key
        self.record = record
        self.size = size
        self.max_failure_rate = float(max_failure_rate)
        try:
            self.sizer = Sizer.from_settings(budget)
        except Exception as e:  # SweeperError: one line, with the ablation's prefix
            raise AblationError(f"ablation: {e}") from None
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    # -- planning -----------------------------------------------------------------------------

    def _baseline(self, names: Sequence[str]) -> dict[str, Any]:
        """Each factor's value in the composed config; a config group's runtime choice."""
        assert self.config is not None
        choices = self.config.hydra.runtime.choices
        baseline = {}
        for name in names:
            if name in choices:
                baseline[name] = choices[name]
                continue
            value = OmegaConf.select(self.config, name, default=_ABSENT)
            if value is _ABSENT:
                continue
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
            baseline[name] = value
        return baseline

    def _record_prefix(self) -> str | None:
        """`sweep.` when the app's config has the record node with its keys, `++sweep.` when it has
        the node without them, None (not recorded in the config) when it has no such node."""
        assert self.config is not None
        node = OmegaConf.select(self.config, self.record, default=None) if self.record else None
        if not OmegaConf.is_dict(node):
            return None
        return f"{self.record}." if all(k in node for k in RECORDED) else f"++{self.record}."

    def _seed_key(self) -> str | None:
        """The seed key when the config has it; None: repeats run unseeded (said once)."""
        assert self.config is not None
        if self.seed_key and OmegaConf.select(self.config, self.seed_key, default=_ABSENT) is not _ABSENT:
            return self.seed_key
        if self.repeats > 1:
            log.info(
                "Ablation: the config has no seed key (hydra.sweeper.seed_key=%s): repeats run unseeded", self.seed_key
            )
        return None

    def plan(self, arguments: list[str]) -> Plan:
        assert self.config is not None and self.hydra_context is not None
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        factors, fixed = parse_factors(self.params, arguments, parser)
        if not factors:
            log.warning("Ablation: no factors given (e.g. model.C=32,64): running the baseline only")
        seed_key = self._seed_key()
        return plan_ablation(
            baseline=self._baseline([f.name for f in factors]),
            factors=factors,
            fixed=fixed,
            repeats=self.repeats,
            seed=OmegaConf.select(self.config, seed_key, default=None) if seed_key else None,
            seed_key=seed_key,
            record_prefix=self._record_prefix(),
        )

    def _compose_and_size(self, plan: Plan, recorded: bool) -> tuple[dict[int, str], set[int]]:
        """Compose every variant (a bad one fails here, before any job runs) and size it.
        Returns the plan's notes and the variants not to launch: over the budget or invalid, in
        an app that does not record such runs itself (`recorded`: run.py's record node)."""
        assert self.config is not None and self.hydra_context is not None
        notes: dict[int, str] = {}
        infeasible: set[int] = set()
        sizing = self.size
        if sizing:
            log.info("Ablation: %s", self.sizer.describe(self.config))
        for i, job in enumerate(plan.variants):
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job.overrides))
            except Exception as e:
                what = "the baseline" if job.factor is None else f"variant {job.factor}={job.value}"
                raise AblationError(f"ablation: {what} does not compose: {' '.join(str(e).split())}") from e
            if not sizing:
                continue
            try:
                note, fits = _size_note(self.sizer, cfg, recorded)
            except Unsizable as e:  # said once; the jobs still run and may check themselves
                log.warning("Ablation: variants not sized: %s; %s", e, WAYS_OUT)
                sizing = False
                continue
            if note is not None:
                notes[i] = note
            if not fits:
                infeasible.add(i)
        return notes, (set() if recorded else infeasible)

    # -- sweeping ---------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        plan = self.plan(arguments)
        recorded = self._record_prefix() is not None
        notes, skip = self._compose_and_size(plan, recorded)
        for line in format_plan(plan, notes):
            log.info(line)

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        skipped = {(plan.variants[i].factor, plan.variants[i].value) for i in skip}
        jobs = [[*j.overrides, *_job_env(j)] for j in plan.jobs if (j.factor, j.value) not in skipped]
        record = _plan_record(plan, notes, len(jobs))
        done = _finished_before(sweep_dir, record, jobs)
        write_ablation_plan(sweep_dir, record)
        if not jobs:
            raise AblationError("ablation: every variant is over the budget or invalid; nothing to run")
        todo = [k for k in range(len(jobs)) if k not in done]
        if done:
            log.info(
                "Ablation: resuming in %s: %d of %d jobs finished before (kept, not run again), %d to run",
                sweep_dir,
                len(done),
                len(jobs),
                len(todo),
            )
        returns: list[Sequence[JobReturn]] = []
        failed: list[tuple[int, JobReturn, str]] = []
        for batch in _batches(todo, self.max_batch_size or len(jobs)):
            results = self.launcher.launch([jobs[k] for k in batch], initial_job_idx=batch[0])
            for k, r in zip(batch, results):
                if r.status == JobStatus.FAILED:
                    try:
                        _ = r.return_value  # re-raises the job's exception
                        reason = "failed"
                    except Exception as e:  # the job's own exception, re-raised by JobReturn
                        reason = f"{type(e).__name__}: {first_line(e)}"
                    failed.append((k, r, reason))
            returns.append(results)

        if failed:
            num, r, reason = failed[0]
            shown = " ".join(o for o in r.overrides or [] if not _is_hydra(o))
            summary = f"{len(failed)} of {len(todo)} jobs raised (first: job {num} {shown}: {reason})"
            if len(failed) / len(todo) > self.max_failure_rate:
                raise AblationError(f"ablation: {' '.join(summary.split())}")
            log.warning(summary)
        return returns


def _is_hydra(override: str) -> bool:
    return override.lstrip("+~").startswith("hydra.")


def _batches(numbers: list[int], size: int) -> list[list[int]]:
    """Job numbers in launches of at most `size`, each of consecutive numbers: a launcher numbers
    its jobs from `initial_job_idx` on, and job k must run in its own folder (`hydra.job.num`)."""
    batches: list[list[int]] = []
    for k in numbers:
        if batches and len(batches[-1]) < size and batches[-1][-1] == k - 1:
            batches[-1].append(k)
        else:
            batches.append([k])
    return batches


def _finished_before(sweep_dir: Path, record: AblationPlanRecord, jobs: list[list[str]]) -> set[int]:
    """The jobs an earlier run of this plan in `sweep_dir` finished: a run folder with the job's
    overrides and a metrics.json of any status but `failed` (a failed job runs again, resuming
    from its checkpoint, as does one that never wrote metrics.json). A folder that holds another
    plan, or runs without a plan, is refused: analysis would mix the two sweeps' runs."""
    try:
        previous = read_ablation_plan(sweep_dir)
    except ContractError as e:
        raise AblationError(f"ablation: {e}") from None
    runs = [p for p in sweep_dir.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    if previous is None:
        if runs:
            raise AblationError(
                f"ablation: {sweep_dir} holds runs of another sweep ({runs[0].name}/ and others, no "
                f"ablation_plan.yaml): set hydra.sweep.dir to a new folder, or move those away"
            )
        return set()
    if changes := plan_changes(previous, record):
        raise AblationError(
            f"ablation: {sweep_dir} holds an ablation with another plan ({'; '.join(changes)}); its runs would "
            f"mix with this one's in analysis: set hydra.sweep.dir to a new folder, or move that one away"
        )
    finished = {}
    for run in runs:
        metrics = read_metrics(run)
        if metrics is not None and metrics.get("status") != "failed":
            overrides = OmegaConf.load(run / ".hydra" / "overrides.yaml")
            finished[tuple(str(o) for o in overrides)] = run
    return {k for k, job in enumerate(jobs) if tuple(o for o in job if not _is_hydra(o)) in finished}


def _job_env(job: Job) -> list[str]:
    """The job's coordinates in its Hydra job config (environment variables while it runs)."""
    values = {"factor": job.factor, "value": job.value, "baseline": "true" if job.factor is None else "false"}
    return [
        *(f"++hydra.job.env_set.{ENV[k]}={quote(v)}" for k, v in values.items() if v is not None),
        f"++hydra.job.env_set.{REPEAT_ENV}={quote(str(job.repeat))}",
    ]


def _size_note(sizer: Sizer, cfg: DictConfig, recorded: bool) -> tuple[str | None, bool]:
    """What the plan log says of one variant's size, and whether it fits. An app that records
    its runs (run.py) still gets infeasible variants, which it records untrained; any other
    app does not. (None, True) without a budget."""
    sizing = sizer.size(cfg)
    if sizing is None:
        return None, True
    max_params, _ = sizer.budget(cfg)
    outcome = "recorded, not trained" if recorded else "not run"
    if sizing.status == "invalid":
        return f"invalid ({sizing.error}): {outcome}", False
    if sizing.status == "over_budget":
        what = "recorded as over_budget, not trained" if recorded else "not run"
        return f"{sizing.params:,} params > budget {max_params:,}: {what}", False
    return f"{sizing.params:,} params", True


def _plan_record(plan: Plan, notes: dict[int, str], n_jobs: int) -> AblationPlanRecord:
    """ablation_plan.yaml: what was run and what was skipped as equal to the baseline."""
    factors = {
        f.name: {
            "baseline": plan.baseline.get(f.name),
            "runs": list(plan.runs[f.name]),
            "skipped": list(plan.skipped[f.name]),
        }
        for f in plan.factors
    }
    variants = [PlannedVariant(j.factor, j.value, list(j.overrides), notes.get(i)) for i, j in enumerate(plan.variants)]
    return AblationPlanRecord(repeats=plan.repeats, factors=factors, variants=variants, n_jobs=n_jobs)
