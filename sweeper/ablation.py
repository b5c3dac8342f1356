"""`hydra/sweeper=ablation`: one factor at a time from a baseline, not the cartesian product.

    python run.py -m hydra/sweeper=ablation model.C=32,64,68 optimizer=adam,sgd

runs the baseline (the composed config, without the sweep overrides) once, plus each listed
value that differs from the baseline, one factor at a time: 1 + 3 - 1 jobs here when the
baseline is C=68 with adam. `hydra.sweeper.params` takes the same syntax for presets;
`hydra.sweeper.repeats=R` runs every variant with seeds seed..seed+R-1. Each job gets
`sweep.factor/value/baseline/repeat` overrides, which the trainer copies into metrics.json.
Jobs go to whatever launcher is configured, `max_batch_size` at a time.

Hydra imports this module at every start (pyproject entry point): it imports Hydra only.
The planning is pure (`sweeper._ablation_plan`); torch is loaded only to size the variants.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from contract import first_line
from contract.layouts import AblationPlanRecord, PlannedVariant, write_ablation_plan

from ._ablation_plan import AblationError, Plan, format_plan, parse_factors, plan_ablation

log = logging.getLogger(__name__)

_ABSENT = object()


class AblationSweeper(Sweeper):
    """One-factor-at-a-time sweeper.

    Args:
        params: key -> values in override syntax (`"32,64,68"`), each entry a factor.
        repeats: runs of every variant, with seed = config seed + repeat (0-based).
        max_batch_size: jobs handed to the launcher at once; None = all.
        seed_key: the config key that holds the seed.
        record: the config node that receives factor/value/baseline/repeat; None = none.
        size: size each variant with `models.count_params` before launch and log the ones
            over `budget.max_params` or invalid (they are launched anyway: the job records them).
        max_failure_rate: after all jobs ran, fail the sweep if more than this fraction of
            jobs raised (a job that records over_budget/invalid and returns is not a failure).
    """

    def __init__(
        self,
        params: DictConfig | dict[str, Any] | None = None,
        repeats: int = 1,
        max_batch_size: int | None = None,
        seed_key: str = "seed",
        record: str | None = "sweep",
        size: bool = True,
        max_failure_rate: float = 0.0,
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
        assert self.config is not None
        if not self.record:
            return None
        exists = OmegaConf.select(self.config, self.record, default=_ABSENT) is not _ABSENT
        return f"{self.record}." if exists else f"++{self.record}."

    def plan(self, arguments: list[str]) -> Plan:
        assert self.config is not None and self.hydra_context is not None
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        factors, fixed = parse_factors(self.params, arguments, parser)
        if not factors:
            log.warning("Ablation: no factors given (e.g. model.C=32,64): running the baseline only")
        return plan_ablation(
            baseline=self._baseline([f.name for f in factors]),
            factors=factors,
            fixed=fixed,
            repeats=self.repeats,
            seed=OmegaConf.select(self.config, self.seed_key, default=None),
            seed_key=self.seed_key,
            record_prefix=self._record_prefix(),
        )

    def _compose_and_size(self, plan: Plan) -> dict[int, str]:
        """Compose every variant (a bad one fails here, before any job runs) and size it."""
        assert self.config is not None and self.hydra_context is not None
        notes: dict[int, str] = {}
        for i, job in enumerate(plan.variants):
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job.overrides))
            except Exception as e:
                what = "the baseline" if job.factor is None else f"variant {job.factor}={job.value}"
                raise AblationError(f"ablation: {what} does not compose: {' '.join(str(e).split())}") from e
            max_params = OmegaConf.select(cfg, "budget.max_params", default=None)
            if self.size and "model" in cfg and max_params is not None:
                notes[i] = _size_note(cfg.model, max_params)
        return notes

    # -- sweeping ---------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.launcher is not None
        plan = self.plan(arguments)
        notes = self._compose_and_size(plan)
        for line in format_plan(plan, notes):
            log.info(line)

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        write_ablation_plan(sweep_dir, _plan_record(plan, notes))

        jobs = [list(j.overrides) for j in plan.jobs]
        size = self.max_batch_size or len(jobs)
        returns: list[Sequence[JobReturn]] = []
        failed: list[tuple[int, JobReturn, str]] = []
        for start in range(0, len(jobs), size):
            results = self.launcher.launch(jobs[start : start + size], initial_job_idx=start)
            for k, r in enumerate(results):
                if r.status == JobStatus.FAILED:
                    try:
                        _ = r.return_value  # re-raises the job's exception
                        reason = "failed"
                    except Exception as e:  # the job's own exception, re-raised by JobReturn
                        reason = f"{type(e).__name__}: {first_line(e)}"
                    failed.append((start + k, r, reason))
            returns.append(results)

        if failed:
            num, r, reason = failed[0]
            summary = (
                f"{len(failed)} of {len(jobs)} jobs raised (first: job {num} {' '.join(r.overrides or [])}: {reason})"
            )
            if len(failed) / len(jobs) > self.max_failure_rate:
                raise AblationError(f"ablation: {' '.join(summary.split())}")
            log.warning(summary)
        return returns


def _size_note(model_cfg: Any, max_params: int) -> str:
    """What the plan log says of one variant's size (the job records the verdict itself)."""
    from models import check_budget  # torch: only when sizing

    sizing = check_budget(model_cfg, max_params)
    if sizing.status == "invalid":
        return f"invalid ({sizing.error}): recorded, not trained"
    if sizing.status == "over_budget":
        return f"{sizing.params:,} params > budget {max_params:,}: recorded as over_budget, not trained"
    return f"{sizing.params:,} params"


def _plan_record(plan: Plan, notes: dict[int, str]) -> AblationPlanRecord:
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
    return AblationPlanRecord(repeats=plan.repeats, factors=factors, variants=variants, n_jobs=len(plan.jobs))
