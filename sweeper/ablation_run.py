"""The ablation sweep: its settings checked, the plan (`ablation_plan`) over the composed config,
each variant composed and sized before any job runs, its folder, resume there, launching, each
job's record and the summary at the end.

What holds: every variant composes before the first job starts (a bad one is one line, not a
half-run sweep); a variant over the budget is launched only in an app that records such runs
itself (the record node, run.py's `sweep`), never trained elsewhere; the sweep's folder is
`hydra.sweeper.dir`, else a `hydra.sweep.dir` given on the command line, else
`outputs/ablation/<name>` with a name fixed by the plan (`plan_name`), so the same command finds
the same folder; a folder holds one plan (`ablation_plan.yaml`): a rerun with the same plan skips
the jobs that finished, another plan is refused, so analysis never mixes two sweeps; job k runs
in folder k (`hydra.sweep.subdir`); every job that ends leaves a record there, its app's
metrics.json or the sweeper's sweep_record.json (`ablation_record`), which resume and analysis read;
Ctrl-C stops the jobs still running and ends the sweep with one line (AblationError: exit status 1).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from budgetsweep.contract import ContractError, first_line, read_metrics
from budgetsweep.contract.layouts import AblationPlanRecord, PlannedVariant, read_ablation_plan, write_ablation_plan
from budgetsweep.contract.sweep import ABLATION_ENV, DIRECTIONS, REPEAT_ENV
from budgetsweep.contract.values import quote

from ._compat import is_basic_launcher, job_error, kill_joblib_workers, ray_started_once
from .ablation_plan import (
    AblationError,
    Job,
    Plan,
    format_plan,
    parse_factors,
    plan_ablation,
    plan_changes,
    plan_name,
)
from .ablation_record import forget_record, is_hydra, job_record, objective_of, record_job
from .ablation_summary import summary_lines
from .config import AblationSweeperConf, with_defaults
from .sizing import WAYS_OUT, Sizer, Unsizable

log = logging.getLogger(__name__)

_ABSENT = object()
RECORDED = ("factor", "value", "baseline", "repeat")


@dataclass
class AblationSettings:
    """`hydra.sweeper.*` of the ablation (`config.AblationSweeperConf`), checked."""

    params: dict[str, Any]  # key -> values in override syntax ("32,64,68"), each entry a factor
    repeats: int
    max_batch_size: int | None
    seed_key: str | None
    record: str | None
    size: bool
    max_failure_rate: float
    sizer: Sizer
    objective: str | None = None  # None: the config's `objective`, else "objective" (ablation_record.objective_of)
    direction: str | None = None  # None: the objective's direction in the run contract, else minimize
    dir: str | None = None  # None: a command-line hydra.sweep.dir, else outputs/ablation/<name>
    name: str | None = None  # None: plan_name


def parse_settings(given: Mapping[str, Any]) -> AblationSettings:
    """The settings Hydra passes, over the schema's defaults, checked; AblationError names the bad one."""
    conf = with_defaults(AblationSweeperConf, given, AblationError, "ablation")
    repeats, max_batch_size, max_failure_rate = conf["repeats"], conf["max_batch_size"], conf["max_failure_rate"]
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise AblationError(f"ablation: hydra.sweeper.repeats must be an int >= 1, got {repeats!r}")
    if max_batch_size is not None and (not isinstance(max_batch_size, int) or max_batch_size < 1):
        raise AblationError(
            f"ablation: hydra.sweeper.max_batch_size must be null or an int >= 1, got {max_batch_size!r}"
        )
    if not 0.0 <= float(max_failure_rate) <= 1.0:
        raise AblationError(f"ablation: hydra.sweeper.max_failure_rate must be in [0, 1], got {max_failure_rate!r}")
    if conf["direction"] is not None and conf["direction"] not in DIRECTIONS:
        raise AblationError(
            f"ablation: hydra.sweeper.direction must be null, maximize or minimize, got {conf['direction']!r}"
        )
    for key in ("objective", "dir", "name"):
        if conf[key] is not None and (not isinstance(conf[key], str) or not conf[key].strip()):
            raise AblationError(f"ablation: hydra.sweeper.{key} must be null or a non-empty string, got {conf[key]!r}")
    if conf["name"] is not None and ("/" in conf["name"] or conf["name"] in (".", "..")):
        raise AblationError(f"ablation: hydra.sweeper.name must be a folder name (no /), got {conf['name']!r}")
    params = conf["params"]
    if OmegaConf.is_config(params):
        params = OmegaConf.to_container(params, resolve=False)
    try:
        sizer = Sizer.from_settings(conf["budget"])
    except Exception as e:  # SweeperError: one line, with the ablation's prefix
        raise AblationError(f"ablation: {e}") from None
    return AblationSettings(
        params=dict(params or {}),
        repeats=repeats,
        max_batch_size=max_batch_size,
        seed_key=conf["seed_key"],
        record=conf["record"],
        size=conf["size"],
        max_failure_rate=float(max_failure_rate),
        sizer=sizer,
        objective=conf["objective"],
        direction=conf["direction"],
        dir=conf["dir"],
        name=conf["name"],
    )


class AblationRun:
    """One ablation sweep over the composed primary config, through Hydra's launcher."""

    def __init__(self, settings: AblationSettings, hydra_context: Any, config: DictConfig, launcher: Any) -> None:
        """`launcher`: Hydra's launcher, or a function that makes it (called once the folder is pinned)."""
        self.settings, self.hydra_context, self.config, self.launcher = settings, hydra_context, config, launcher

    # -- planning -----------------------------------------------------------------------------

    def baseline(self, names: Sequence[str]) -> dict[str, Any]:
        """Each factor's value in the composed config; a config group's runtime choice."""
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

    def record_prefix(self) -> str | None:
        """`sweep.` when the app's config has the record node with its keys, `++sweep.` when it has
        the node without them, None (not recorded in the config) when it has no such node."""
        name = self.settings.record
        node = OmegaConf.select(self.config, name, default=None) if name else None
        if not isinstance(node, DictConfig):
            return None
        return f"{name}." if all(k in node for k in RECORDED) else f"++{name}."

    def seed_key(self) -> str | None:
        """The seed key when the config has it; None: repeats run unseeded (said once)."""
        key = self.settings.seed_key
        if key and OmegaConf.select(self.config, key, default=_ABSENT) is not _ABSENT:
            return key
        if self.settings.repeats > 1:
            log.info("Ablation: the config has no seed key (hydra.sweeper.seed_key=%s): repeats run unseeded", key)
        return None

    def plan(self, arguments: list[str]) -> Plan:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        factors, fixed = parse_factors(self.settings.params, arguments, parser)
        if not factors:
            log.warning("Ablation: no factors given (e.g. model.C=32,64): running the baseline only")
        seed_key = self.seed_key()
        return plan_ablation(
            baseline=self.baseline([f.name for f in factors]),
            factors=factors,
            fixed=fixed,
            repeats=self.settings.repeats,
            seed=OmegaConf.select(self.config, seed_key, default=None) if seed_key else None,
            seed_key=seed_key,
            record_prefix=self.record_prefix(),
        )

    def compose_and_size(self, plan: Plan, recorded: bool) -> tuple[dict[int, str], set[int], dict[int, dict]]:
        """Compose every variant (a bad one fails here, before any job runs) and size it.
        Returns the plan's notes, the variants not to launch (over the budget or invalid, in an
        app that does not record such runs itself; `recorded`: run.py's record node), and the
        sizes of those sized (params, flops, max_params, max_flops), for their jobs' records.
        Keyed by index into `plan.variants`."""
        notes: dict[int, str] = {}
        infeasible: set[int] = set()
        sizes: dict[int, dict | None] = {}
        sizing = self.settings.size
        if sizing:
            log.info("Ablation: %s", self.settings.sizer.describe(self.config))
        for i, job in enumerate(plan.variants):
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job.overrides))
            except Exception as e:
                what = "the baseline" if job.factor is None else f"variant {job.factor}={job.value}"
                raise AblationError(f"ablation: {what} does not compose: {' '.join(str(e).split())}") from e
            if not sizing:
                continue
            try:
                note, fits, sizes[i] = _size_note(self.settings.sizer, cfg, recorded)
            except Unsizable as e:  # said once; the jobs still run and may check themselves
                log.warning("Ablation: variants not sized: %s; %s", e, WAYS_OUT)
                sizing = False
                continue
            if note is not None:
                notes[i] = note
            if not fits:
                infeasible.add(i)
        return notes, (set() if recorded else infeasible), {i: size for i, size in sizes.items() if size}

    def sweep_dir(self, plan: Plan) -> Path:
        """The sweep's folder, absolute: hydra.sweeper.dir, else a hydra.sweep.dir the user gave on
        the command line (Hydra's habit), else outputs/ablation/<name>; relative to where the
        command ran. An app's own default hydra.sweep.dir (a new one each time) is not used: a
        rerun must find the folder of its plan."""
        given = [o for o in self.config.hydra.overrides.hydra if _key(o) == "hydra.sweep.dir"]
        user_dir = str(self.config.hydra.sweep.dir) if given else None
        folder = self.settings.dir or user_dir
        if self.settings.dir and user_dir and Path(self.settings.dir) != Path(user_dir):
            raise AblationError(
                f"ablation: hydra.sweep.dir={user_dir} and hydra.sweeper.dir={self.settings.dir} name two "
                f"folders for one sweep; give only one of them"
            )
        if folder is None:
            name = self.settings.name or plan_name(plan, self.config.hydra.runtime.choices.get("experiment"))
            folder = str(Path("outputs") / "ablation" / name)
        return (Path(self.config.hydra.runtime.cwd) / folder).resolve()

    # -- sweeping ---------------------------------------------------------------------------

    def run(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        plan = self.plan(arguments)
        recorded = self.record_prefix() is not None
        notes, skip, sizes = self.compose_and_size(plan, recorded)
        for line in format_plan(plan, notes):
            log.info(line)

        sweep_dir = self.sweep_dir(plan)
        _pin(self.config, "hydra.sweep.dir", str(sweep_dir))
        if not hasattr(self.launcher, "launch"):  # made now that the folder is pinned (AblationSweeper.make_launcher)
            self.launcher = self.launcher()
        ray_started_once(self.launcher)  # hydra-ray-launcher's own start fails on Hydra 1.4 (see there)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        skipped = {(plan.variants[i].factor, plan.variants[i].value) for i in skip}
        kept = [j for j in plan.jobs if (j.factor, j.value) not in skipped]
        # job k in folder k whatever the app's hydra.sweep.subdir says: resume and records find it there
        jobs = [[*j.overrides, *_job_env(j), f"hydra.sweep.subdir={k}"] for k, j in enumerate(kept)]
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
        objective = objective_of(self.settings.objective, self.settings.direction, self.config)
        variant = {(v.factor, v.value): i for i, v in enumerate(plan.variants)}
        # the basic launcher runs its jobs one after another here anyway: one per launch times each
        size = 1 if is_basic_launcher(self.launcher) else self.settings.max_batch_size or len(jobs)
        returns: list[Sequence[JobReturn]] = []
        failed: list[tuple[int, JobReturn, str]] = []
        try:
            for batch in _batches(todo, size):
                for k in batch:
                    forget_record(sweep_dir / str(k))
                started = time.monotonic()
                results = self.launcher.launch([jobs[k] for k in batch], initial_job_idx=batch[0])
                seconds = time.monotonic() - started if len(batch) == 1 else None  # a batch's time is no job's
                for k, r in zip(batch, results):
                    raised = r.status == JobStatus.FAILED
                    if raised:
                        e = job_error(r)
                        failed.append((k, r, f"{type(e).__name__}: {first_line(e)}" if e else "failed"))
                    job = kept[k]
                    size_of = sizes.get(variant[(job.factor, job.value)])
                    job_result = job_record(job, r, objective, size_of, seconds)
                    record_job(_job_dir(r, sweep_dir / str(k)), job_result, raised)
                returns.append(results)
        except KeyboardInterrupt:
            finished = len(done) + sum(len(r) for r in returns)
            raise AblationError(_interrupted(sweep_dir, finished, len(jobs))) from None

        for line in summary_lines(sweep_dir, objective, [f.name for f in plan.factors if plan.runs[f.name]]):
            log.info(line)
        if failed:
            num, r, reason = failed[0]
            shown = " ".join(o for o in r.overrides or [] if not is_hydra(o))
            summary = f"{len(failed)} of {len(todo)} jobs raised (first: job {num} {shown}: {reason})"
            if len(failed) / len(todo) > self.settings.max_failure_rate:
                raise AblationError(f"ablation: {' '.join(summary.split())}")
            log.warning(summary)
        return returns


def _interrupted(sweep_dir: Path, finished: int, n_jobs: int) -> str:
    """Ctrl-C: the jobs still running are stopped before the sweep ends (joblib's worker processes
    would otherwise keep the exit waiting for their jobs; submitit's and in-process jobs end with
    this process), and the one line that says how to resume."""
    with contextlib.suppress(ValueError):  # (main thread only)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
    kill_joblib_workers()
    here = Path.cwd()
    shown = sweep_dir.relative_to(here) if sweep_dir.is_relative_to(here) else sweep_dir
    return (
        f"ablation: interrupted in {shown}; {finished} of {n_jobs} jobs finished and are kept. "
        f"Rerun the same command to resume the others"
    )


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _pin(config: DictConfig, key: str, value: str) -> None:
    """Set `key` in the primary config (which the launcher reads) and in its hydra overrides (from
    which each job's config is composed), replacing any earlier override of it."""
    with read_write(config.hydra), open_dict(config.hydra):
        OmegaConf.update(config, key, value, merge=False, force_add=True)
        others = [o for o in config.hydra.overrides.hydra if _key(o) != key]
        config.hydra.overrides.hydra = [*others, f"{key}={quote(value)}"]


def _job_dir(ret: JobReturn, default: Path) -> Path:
    """The folder the job ran in, as its Hydra config says (`default` when the launcher returned none)."""
    hydra_cfg = getattr(ret, "hydra_cfg", None)
    output_dir = OmegaConf.select(hydra_cfg, "hydra.runtime.output_dir", default=None) if hydra_cfg else None
    return Path(output_dir) if output_dir else default


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
    return {k for k, job in enumerate(jobs) if tuple(o for o in job if not is_hydra(o)) in finished}


def _job_env(job: Job) -> list[str]:
    """The job's coordinates in its Hydra job config (environment variables while it runs)."""
    values = {"factor": job.factor, "value": job.value, "baseline": "true" if job.factor is None else "false"}
    return [
        *(f"++hydra.job.env_set.{ABLATION_ENV[k]}={quote(v)}" for k, v in values.items() if v is not None),
        f"++hydra.job.env_set.{REPEAT_ENV}={quote(str(job.repeat))}",
    ]


def _size_note(sizer: Sizer, cfg: DictConfig, recorded: bool) -> tuple[str | None, bool, dict | None]:
    """What the plan log says of one variant's size, whether it fits, and its size for the
    jobs' records. An app that records its runs (run.py) still gets infeasible variants, which
    it records untrained; any other app does not. (None, True, None) without a budget."""
    sizing = sizer.size(cfg)
    if sizing is None:
        return None, True, None
    (max_params, _), (max_flops, _) = sizer.budget(cfg), sizer.flops_budget(cfg)
    size = {"params": sizing.params, "flops": sizing.flops, "max_params": max_params, "max_flops": max_flops}
    outcome = "recorded, not trained" if recorded else "not run"
    if sizing.status == "invalid":
        return f"invalid ({sizing.error}): {outcome}", False, size
    if sizing.status == "over_budget":
        what = "recorded as over_budget, not trained" if recorded else "not run"
        return f"{sizing.params:,} params > budget {max_params:,}: {what}", False, size
    return f"{sizing.params:,} params", True, size


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
