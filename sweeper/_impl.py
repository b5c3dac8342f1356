"""The budget-aware Optuna study loop behind `sweeper.optuna.BudgetOptunaSweeper`.

Reuses the plugin's `OptunaSweeperImpl` for its setup (launcher), directions, the grid sampler
and `_configure_trials` (a trial -> its overrides, custom search space included); replaces its
batch loop:

    ask -> overrides -> compose the trial's config -> size it (models.count_params)
        over budget / invalid -> tell PRUNED with constraint values > 0 (Optuna 5
            `Trial.set_constraint`), not launched, not counted in n_trials
        feasible -> take a slot (below) -> launch in <study dir>/<trial number>/
    a job returns -> read its metrics.json -> tell COMPLETE / PRUNED / FAIL

`n_trials` is the number of trained trials the *study* should have (feasible ones, whatever
their end), so that rerunning a command continues it and several workers sharing one storage
stop together at exactly n_trials. A feasible trial owns a slot when fewer than n_trials
feasible trials have a smaller number (trial numbers are given out by the storage, so every
worker agrees); a feasible trial past the quota (two workers asked for the last slot at once)
is put back in the queue (WAITING) untrained, where a longer run later picks it up.

Interruption: the sweeper records a heartbeat for each trial it runs. A RUNNING trial whose
heartbeat is older than `heartbeat.grace_period` was left by a process that died; any worker
(or the rerun) puts it back in the queue and runs it again with the same number and folder,
where the trainer resumes from its checkpoint. Ctrl-C puts this process's trials back at once.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import math
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from optuna.trial import FrozenTrial, TrialState

from . import storage as storages
from .errors import SweeperError
from .report import build_pruner
from .space import SearchSpace, default_study_name, params_to_overrides, parse_space

log = logging.getLogger("sweeper.optuna")

SLOT = "budgetsweep:slot"  # system attr: True = counts in n_trials, False = infeasible / surplus
LAUNCHED = "budgetsweep:launched"  # system attr: a job was started in the trial's folder
FAILED_STATUSES = ("failed", "diverged", "invalid", "over_budget")
SAMPLER_WHITELIST = ("hydra_plugins.hydra_optuna_sweeper.*", "optuna.samplers.*")


def _q(text: Any) -> str:
    return QuotedString(text=str(text), quote=Quote.single).with_quotes()


def _first_line(e: BaseException | str) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class BudgetOptunaSweeperImpl(OptunaSweeperImpl):
    """The plugin's implementation with our settings checked (one-line errors), the secret taken
    out of the storage URL, the study's folder and name decided, and our loop (`_Loop`)."""

    @classmethod
    def from_settings(
        cls,
        sampler: Any,
        direction: Any,
        storage: Any | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        custom_search_space: str | None,
        params: DictConfig | None,
        pruner: Any = None,
        dir: str | None = None,
        max_suggestions: int | None = None,
        heartbeat: Any = None,
    ) -> "BudgetOptunaSweeperImpl":
        def positive_int(key: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SweeperError(f"hydra.sweeper.{key}: expected a positive int, got {value!r}")

        positive_int("n_trials", n_trials)
        positive_int("n_jobs", n_jobs)
        positive_int("max_suggestions", max_suggestions, allow_none=True)
        heartbeat = heartbeat or {"interval": 10, "grace_period": 30}
        positive_int("heartbeat.interval", heartbeat["interval"])
        positive_int("heartbeat.grace_period", heartbeat["grace_period"])
        if isinstance(max_failure_rate, bool) or not isinstance(max_failure_rate, (int, float)) \
                or not 0.0 <= max_failure_rate <= 1.0:
            raise SweeperError(f"hydra.sweeper.max_failure_rate: expected a number in [0, 1], got {max_failure_rate!r}")
        if storage is not None and not isinstance(storage, str):
            raise SweeperError("hydra.sweeper.storage: expected a database URL (sqlite:///... or postgresql://...)")
        directions = direction if OmegaConf.is_list(direction) or isinstance(direction, list) else [direction]
        names = [getattr(d, "name", d) for d in directions]
        if len(names) != 1 or names[0] not in ("minimize", "maximize"):
            raise SweeperError(
                f"hydra.sweeper.direction: expected minimize or maximize (one objective), got {direction!r}")
        try:
            sampler = instantiate(sampler, _execution_whitelist_=SAMPLER_WHITELIST)
        except Exception as e:
            raise SweeperError(f"hydra.sweeper.sampler: {_first_line(e)}") from None
        self = cls.__new__(cls)
        try:
            OptunaSweeperImpl.__init__(self, sampler, names[0], storage, study_name, n_trials, n_jobs,
                                       float(max_failure_rate), custom_search_space, params)
        except Exception as e:  # custom_search_space that cannot be imported
            raise SweeperError(f"hydra.sweeper.custom_search_space: {_first_line(e)}") from None
        self.pruner_cfg = pruner
        self.pruner = build_pruner(pruner)
        self.dir = dir
        self.max_suggestions = max_suggestions or 20 * n_trials
        self.heartbeat_interval = int(heartbeat["interval"])
        self.grace_period = int(heartbeat["grace_period"])
        self.secret: str | None = None
        return self

    # ----------------------------------------------------------------------------------- setup
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        if self.storage:
            masked, self.secret = storages.split_password(self.storage)
            if self.secret:  # keep it for whoever connects (this process, its jobs), out of every config
                os.environ[storages.PASSWORD_ENV] = self.secret
                self.storage = masked
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.overrides.hydra = [storages.scrub(o, self.secret) for o in config.hydra.overrides.hydra]
        launcher_cfg = config.hydra.launcher
        sequential = isinstance(self.launcher, BasicLauncher) or launcher_cfg.get("n_jobs", None) == 1
        self.parallel = 1 if sequential else self.n_jobs
        if sequential and self.n_jobs > 1:
            log.warning("hydra.sweeper.n_jobs=%d: this launcher runs one job at a time in this process; "
                        "use hydra/launcher=joblib to run trials in parallel", self.n_jobs)

    # ------------------------------------------------------------------------------- the sweep
    def sweep(self, arguments: list[str]) -> None:
        space = parse_space(params_to_overrides(self.params) + list(arguments))
        if not space.distributions and self.custom_search_space_extender is None:
            raise SweeperError("hydra.sweeper.params: the search space is empty (every key has one value)")
        self._setup_grid_sampler(space)
        choices = self.config.hydra.runtime.choices
        self.study_name = self.study_name or default_study_name(space, choices.get("experiment"))
        cwd = Path(self.config.hydra.runtime.cwd)
        self.study_dir = (cwd / (self.dir or Path("outputs") / "optuna" / self.study_name)).resolve()
        self.study_dir.mkdir(parents=True, exist_ok=True)
        url = self.storage or storages.sqlite_url(self.study_dir / "study.db")
        self.storage = storages.mask(url)
        # Jobs are composed from the primary config's hydra overrides (Hydra requires their
        # `hydra.sweeper` to equal this one's): pin the resolved values there, so each job's
        # .hydra/hydra.yaml records the study it belongs to, with the password masked.
        self._pin("hydra.sweeper.storage", self.storage)
        self._pin("hydra.sweeper.study_name", self.study_name)
        self._pin("hydra.sweep.dir", str(self.study_dir))  # also where launchers create their folder
        study = self._open_study(url)
        self._write_study_json(study)
        self.space = space
        _Loop(self, study).run()

    def _pin(self, key: str, value: str) -> None:
        hydra = self.config.hydra
        with read_write(hydra), open_dict(hydra):
            OmegaConf.update(self.config, key, value, merge=False, force_add=True)
            kept = [o for o in hydra.overrides.hydra if o.split("=", 1)[0].lstrip("+~") != key]
            hydra.overrides.hydra = [*kept, f"{key}={_q(value)}"]

    def _setup_grid_sampler(self, space: SearchSpace) -> None:
        import functools

        if isinstance(self.sampler, functools.partial) and self.sampler.func == optuna.samplers.GridSampler:
            grid = {}
            for key, dist in space.distributions.items():
                try:
                    grid[key] = self._to_grid_sampler_choices(dist)
                except (ValueError, AssertionError):
                    raise SweeperError(f"hydra.sweeper.sampler=grid: {key} is continuous ({dist}); give it "
                                       f"choice(...) or range(...), or fix it (hydra.sweeper.params=null "
                                       f"drops the default space)") from None
            self.sampler = self.sampler(grid)
            size = math.prod(len(v) for v in grid.values())
            if size < self.n_trials:
                log.info("grid sampler: n_trials %d -> %d, the size of the grid", self.n_trials, size)
                self.n_trials = size

    def _open_study(self, url: str) -> optuna.Study:
        for attempt in range(5):
            try:
                self.rdb = storages.make_storage(url, self.heartbeat_interval, self.grace_period)
                return optuna.create_study(study_name=self.study_name, storage=self.rdb, sampler=self.sampler,
                                           pruner=self.pruner, direction=self.direction, load_if_exists=True)
            except Exception as e:
                msg = storages.scrub(_first_line(e), self.secret)
                # workers starting together on an empty database race to create Optuna's tables
                if attempt < 4 and any(x in msg for x in ("duplicate key", "already exists", "database is locked")):
                    time.sleep(0.5 + attempt)
                    continue
                raise SweeperError(
                    f"hydra.sweeper.storage: cannot open study {self.study_name!r} in {self.storage}: {msg}") from None
        raise AssertionError("unreachable")

    def _write_study_json(self, study: optuna.Study) -> None:
        info = {"storage": self.storage, "study_name": study.study_name, "direction": self.direction,
                "n_trials": self.n_trials, "sweeper": "optuna"}
        tmp = self.study_dir / f".study.json.{os.getpid()}"
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, self.study_dir / "study.json")

    def job_overrides(self, trial: optuna.Trial) -> list[str]:
        """The overrides of one trial's job: its parameters, then where it runs and what it is."""
        space = self.space
        try:
            (overrides,) = self._configure_trials([trial], space.distributions, space.fixed, space.deletions)
        except (ValueError, TypeError) as e:  # fixed and searched keys overlap; a bad custom space
            raise SweeperError(f"hydra.sweeper: {_first_line(e)}") from None
        return [
            *overrides,
            f"sweep.trial={trial.number}",
            f"sweep.study={_q(self.study_name)}",
            f"hydra.sweep.subdir={trial.number}",
        ]


class _Loop:
    """One run of the study loop (state of this process)."""

    def __init__(self, sweeper: BudgetOptunaSweeperImpl, study: optuna.Study) -> None:
        self.sw = sweeper
        self.study = study
        self.storage = sweeper.rdb
        self.n_trials = sweeper.n_trials
        self.in_flight: dict[cf.Future, tuple[optuna.Trial, float]] = {}
        self.beating: set[int] = set()
        self.lock = threading.Lock()
        self.stop_beating = threading.Event()
        self.suggested = 0
        self.infeasible: Counter = Counter()
        self.trained: Counter = Counter()
        self.failures: list[tuple[int, str, str]] = []
        self.stopping: str | None = None
        self.pool = cf.ThreadPoolExecutor(max_workers=sweeper.parallel) if sweeper.parallel > 1 else None

    # --------------------------------------------------------------------------------- main
    def run(self) -> None:
        sw = self.sw
        trials = self.study.get_trials(deepcopy=False)
        slots = [t for t in trials if t.system_attrs.get(SLOT) is True]
        done = sum(t.state.is_finished() for t in slots)
        log.info("Study %r in %s, folder %s", self.study.study_name, sw.storage, sw.study_dir)
        log.info("%d of n_trials=%d trained trials done%s; sampler %s, pruner %s, %d job(s) at a time",
                 done, self.n_trials, f", {len(slots) - done} unfinished" if len(slots) > done else "",
                 type(sw.sampler).__name__, type(sw.pruner).__name__, sw.parallel)
        beat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        beat.start()
        try:
            self._loop()
        except BaseException:
            self._requeue_own()  # Ctrl-C, SystemExit, an error: our trials go back to the queue now
            raise
        finally:
            self.stop_beating.set()
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)
        self._report()

    def _loop(self) -> None:
        while True:
            self._reclaim_stale()
            while len(self.in_flight) < self.sw.parallel and self.stopping is None:
                if not self._start_one():
                    break
            if self.in_flight:
                done, _ = cf.wait(list(self.in_flight), timeout=1.0, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    self._finish(future)
                continue
            if self.stopping is not None:
                return
            unfinished = [t for t in self._trials() if t.system_attrs.get(SLOT) is True and not t.state.is_finished()]
            if not unfinished:
                return
            # others' trials still running (another worker), or a dead process's not yet stale
            time.sleep(min(1.0, self.sw.heartbeat_interval))

    def _trials(self, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=states)

    def _n_slots(self) -> int:
        return sum(1 for t in self._trials() if t.system_attrs.get(SLOT) is True)

    # ------------------------------------------------------------------------- start a trial
    def _start_one(self) -> bool:
        """Start the next trial: a queued one of the study (interrupted earlier), else a new
        suggestion while the study has fewer than n_trials slots. False: nothing to start."""
        trial = self._claim_queued()
        if trial is None:
            if self._n_slots() >= self.n_trials:
                return False
            if self.suggested >= self.sw.max_suggestions:
                self._stop_suggestions()
                return False
            trial = self.study.ask()
            self.suggested += 1
            self._beat_for(trial)
        if self.storage.get_trial_system_attrs(trial._trial_id).get(SLOT) is True:  # requeued: owns its slot
            return self._launch(trial, self.sw.job_overrides(trial))
        overrides = self.sw.job_overrides(trial)
        feasible = self._size(trial, overrides)
        if not feasible:
            return True
        rank = self._rank(trial)
        if rank >= self.n_trials:  # another worker took the last slot first
            self.storage.set_trial_system_attr(trial._trial_id, SLOT, False)
            self.storage.set_trial_state_values(trial._trial_id, TrialState.WAITING)
            self._forget(trial)
            log.info("trial %d: n_trials=%d already reached by other workers; left queued, untrained",
                     trial.number, self.n_trials)
            return False
        self.storage.set_trial_system_attr(trial._trial_id, SLOT, True)
        return self._launch(trial, overrides)

    def _claim_queued(self) -> optuna.Trial | None:
        for t in self._trials(states=(TrialState.WAITING,)):
            if t.system_attrs.get(SLOT) is not True:
                continue
            try:  # atomic WAITING -> RUNNING: only one worker gets it
                if not self.storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            trial = optuna.Trial(self.study, t._trial_id)
            self._beat_for(trial)
            return trial
        return None

    def _size(self, trial: optuna.Trial, overrides: list[str]) -> bool:
        """Compose the trial's config and count its parameters. Over budget or invalid: tell
        Optuna now (PRUNED, constraint > 0) and return False."""
        sw = self.sw
        try:
            cfg = sw.hydra_context.config_loader.load_sweep_config(sw.config, list(overrides))
        except Exception as e:  # a key or a type the config does not accept: the space is wrong
            self._tell_fail_quietly(trial, "invalid")
            shown = " ".join(o for o in overrides if not o.startswith(("hydra.", "sweep.")))
            raise SweeperError(
                f"trial {trial.number}: cannot compose the config for {shown}: {_first_line(e)}") from None
        import models  # torch: loaded once, here, not at Hydra's start

        max_params = int(OmegaConf.select(cfg, "budget.max_params"))
        try:
            n_params = models.count_params(cfg.model)
        except Exception as e:  # models.ConfigError, or a family that cannot build this config
            self._tell_infeasible(trial, "invalid", None, max_params, _first_line(e))
            return False
        trial.set_user_attr("params", n_params)
        trial.set_user_attr("max_params", max_params)
        if n_params > max_params:
            self._tell_infeasible(trial, "over_budget", n_params, max_params,
                                  f"{n_params:,} parameters > budget.max_params={max_params:,}")
            return False
        trial.set_constraint("params", n_params / max_params - 1.0)
        trial.set_constraint("valid", 0.0)
        return True

    def _tell_infeasible(self, trial: optuna.Trial, status: str, n_params: int | None, max_params: int | None,
                         error: str) -> None:
        # Constraint values > 0 make the trial infeasible: samplers that handle constraints (TPE,
        # NSGA-II, GP) learn the boundary; best_trial never picks it. PRUNED, not COMPLETE: it has
        # no objective value, and samplers without constraints skip pruned trials.
        over = n_params / max_params - 1.0 if n_params is not None and max_params else 0.0
        trial.set_constraint("params", over)
        trial.set_constraint("valid", 1.0 if status == "invalid" else 0.0)
        trial.set_user_attr("status", status)
        trial.set_user_attr("error", error)
        self.storage.set_trial_system_attr(trial._trial_id, SLOT, False)
        self._tell(trial, None, TrialState.PRUNED)
        self._forget(trial)
        self.infeasible[status] += 1
        log.info("trial %d: %s, not trained: %s", trial.number, status, error)

    def _rank(self, trial: optuna.Trial) -> int:
        """Feasible trials numbered before this one; waits (briefly) for older trials whose
        feasibility another worker is still deciding."""
        deadline = time.monotonic() + self.sw.grace_period
        while True:
            older = [t for t in self._trials() if t.number < trial.number]
            pending = [t for t in older if t.state == TrialState.RUNNING and SLOT not in t.system_attrs]
            if not pending or time.monotonic() > deadline:
                return sum(1 for t in older if t.system_attrs.get(SLOT) is True)
            time.sleep(0.1)

    def _launch(self, trial: optuna.Trial, overrides: list[str]) -> bool:
        run_dir = self.sw.study_dir / str(trial.number)
        attrs = self.storage.get_trial_system_attrs(trial._trial_id)
        if (run_dir / "metrics.json").exists():
            if attrs.get(LAUNCHED):  # it finished, but its sweeper died before telling Optuna
                log.info("trial %d: finished before the interruption; reading %s", trial.number, run_dir)
                future: cf.Future = cf.Future()
                future.set_result(None)
                self.in_flight[future] = (trial, time.monotonic())
                return True
            self._tell_fail_quietly(trial, "folder taken")
            raise SweeperError(
                f"{run_dir} already holds a finished run that is not trial {trial.number} of study "
                f"{self.study.study_name!r} (was the study's storage deleted?): move that folder away or set "
                f"hydra.sweeper.study_name / hydra.sweeper.dir")
        resumed = attrs.get(LAUNCHED, False)
        self.storage.set_trial_system_attr(trial._trial_id, LAUNCHED, True)
        trial.set_user_attr("run_dir", str(trial.number))
        n_params = trial.user_attrs.get("params")
        log.info("trial %d: %s%s: %s", trial.number, "resuming in its folder" if resumed else "launching",
                 f" ({n_params:,} params)" if n_params else "",
                 " ".join(f"{k}={v}" for k, v in trial.params.items()))
        t0 = time.monotonic()
        if self.pool is None:  # the basic launcher: run it here, in this thread
            future = cf.Future()
            try:
                future.set_result(self.sw.launcher.launch([overrides], initial_job_idx=trial.number)[0])
            except Exception as e:
                future.set_exception(e)
        else:
            future = self.pool.submit(self._launch_one, overrides, trial.number)
        self.in_flight[future] = (trial, t0)
        return True

    def _launch_one(self, overrides: list[str], number: int) -> JobReturn:
        return self.sw.launcher.launch([overrides], initial_job_idx=number)[0]

    # ------------------------------------------------------------------------- finish a trial
    def _finish(self, future: cf.Future) -> None:
        trial, t0 = self.in_flight.pop(future)
        run_dir = self.sw.study_dir / str(trial.number)
        try:
            ret = future.result()
            error = None
        except Exception as e:  # the launcher itself failed (a killed worker process, ...)
            ret, error = None, f"{type(e).__name__}: {_first_line(e)}"
        metrics = self._read_metrics(run_dir)
        status, value = self._outcome(ret, metrics, error)
        if status == "completed" and value is None:
            got = metrics.get("objective") if metrics else getattr(ret, "_return_value", None)
            status, error = "failed", f"no objective value: {got!r}"
        if metrics:
            error = metrics.get("error") or error
        if status != "completed" and error is None and ret is not None and ret.status == JobStatus.FAILED:
            error = f"{type(ret._return_value).__name__}: {_first_line(ret._return_value)}"
        trial.set_user_attr("status", status)
        if error:
            trial.set_user_attr("error", storages.scrub(error, self.sw.secret))
        state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(status, TrialState.FAIL)
        self._tell(trial, value if status == "completed" else None, state)
        self._forget(trial)
        self.trained[status] += 1
        took = time.monotonic() - t0
        if status == "completed":
            log.info("trial %d: completed, %s=%.4f (%.0f s)", trial.number, self._objective_name(), value, took)
        elif status == "pruned":
            epochs = metrics.get("epochs") if metrics else "?"
            log.info("trial %d: pruned after %s epoch(s) (%.0f s)", trial.number, epochs, took)
        else:
            self.failures.append((trial.number, status, error or "-"))
            log.warning("trial %d: %s: %s (see %s)", trial.number, status, error or "-", run_dir)
            allowed = self.sw.max_failure_rate * self.n_trials
            if len(self.failures) > allowed and self.stopping is None:
                self.stopping = (
                    f"{len(self.failures)} trials failed in this run, more than max_failure_rate="
                    f"{self.sw.max_failure_rate} x n_trials={self.n_trials} allows")

    def _tell(self, trial: optuna.Trial, value: float | None, state: TrialState) -> None:
        try:
            self.study.tell(trial, value, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("trial %d was already finished by another process", trial.number)
        except RuntimeError as e:  # GridSampler calls study.stop() once the grid is used up
            if "Study.stop" not in str(e):
                raise

    @staticmethod
    def _read_metrics(run_dir: Path) -> dict | None:
        try:
            return json.loads((run_dir / "metrics.json").read_text())
        except (OSError, ValueError):
            return None

    def _outcome(self, ret: JobReturn | None, metrics: dict | None, error: str | None) -> tuple[str, float | None]:
        """(status, objective value) of a finished job: its metrics.json, else what Hydra returned."""
        if metrics and metrics.get("status"):
            status = metrics["status"]
            value = metrics.get("objective")
            if value is None and ret is not None and ret.status == JobStatus.COMPLETED:
                value = ret._return_value
        elif ret is None:
            return "failed", None
        elif ret.status == JobStatus.COMPLETED:
            status, value = "completed", ret._return_value
        else:
            return "failed", None
        if status != "completed":
            return status, None
        try:
            value = float(value)
        except (TypeError, ValueError):
            return status, None
        return status, (value if math.isfinite(value) else None)

    def _objective_name(self) -> str:
        return str(OmegaConf.select(self.sw.config, "objective", default="objective"))

    def _tell_fail_quietly(self, trial: optuna.Trial, why: str) -> None:
        trial.set_user_attr("status", why)
        self.storage.set_trial_system_attr(trial._trial_id, SLOT, False)
        self._tell(trial, None, TrialState.FAIL)
        self._forget(trial)

    # ------------------------------------------------------------------- heartbeats and resume
    def _beat_for(self, trial: optuna.Trial) -> None:
        self.storage.record_heartbeat(trial._trial_id)
        with self.lock:
            self.beating.add(trial._trial_id)

    def _forget(self, trial: optuna.Trial) -> None:
        with self.lock:
            self.beating.discard(trial._trial_id)

    def _beat(self) -> None:
        while not self.stop_beating.wait(self.sw.heartbeat_interval):
            with self.lock:
                ids = list(self.beating)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as e:  # a storage hiccup: the next beat may pass
                    log.debug("heartbeat of trial id %d failed: %s", trial_id, e)

    def _reclaim_stale(self) -> None:
        """RUNNING trials with no heartbeat for grace_period: their process died. Trained ones go
        back to the queue (same number, same folder, resumed from the checkpoint); ones that
        died before being sized are failed."""
        with self.lock:
            ours = set(self.beating)
        for trial_id in self.storage._get_stale_trial_ids(self.study._study_id):
            if trial_id in ours:
                continue
            attrs = self.storage.get_trial_system_attrs(trial_id)
            number = self.storage.get_trial_number_from_id(trial_id)
            try:
                if attrs.get(SLOT) is True:
                    self.storage.set_trial_state_values(trial_id, TrialState.WAITING)
                    log.info("trial %d: its process stopped (no heartbeat for %d s); queued to run again in %s",
                             number, self.sw.grace_period, self.sw.study_dir / str(number))
                else:
                    self.storage.set_trial_system_attr(trial_id, SLOT, False)
                    self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass

    def _requeue_own(self) -> None:
        with self.lock:
            ids = list(self.beating)
        for trial_id in ids:
            try:
                if self.storage.get_trial_system_attrs(trial_id).get(SLOT) is True:
                    self.storage.set_trial_state_values(trial_id, TrialState.WAITING)
                else:
                    self.storage.set_trial_system_attr(trial_id, SLOT, False)
                    self.storage.set_trial_state_values(trial_id, TrialState.FAIL)
            except Exception:  # best effort on the way out; the heartbeat covers the rest
                pass

    # ------------------------------------------------------------------------------- the end
    def _stop_suggestions(self) -> None:
        trained = sum(self.trained.values()) + len(self.in_flight)
        self.stopping = (
            f"stopped after {self.suggested} suggestions (hydra.sweeper.max_suggestions={self.sw.max_suggestions}): "
            f"{sum(self.infeasible.values())} were over budget.max_params or invalid "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(self.infeasible.items())) or '-'}), {trained} trained; "
            f"the search space is mostly infeasible: narrow hydra.sweeper.params or raise budget.max_params")

    def _report(self) -> None:
        sw, study = self.sw, self.study
        trials = self._trials()
        slots = [t for t in trials if t.system_attrs.get(SLOT) is True]
        states = Counter(t.user_attrs.get("status", t.state.name.lower()) for t in slots if t.state.is_finished())
        n_infeasible = sum(1 for t in trials if t.system_attrs.get(SLOT) is False and t.state == TrialState.PRUNED)
        log.info("Study %r: %d trained trials (%s), %d infeasible suggestions never trained",
                 study.study_name, len(slots), ", ".join(f"{k} {v}" for k, v in sorted(states.items())), n_infeasible)
        completed = [t for t in slots if t.state == TrialState.COMPLETE]
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "n_trained": len(slots),
                                   "statuses": dict(states), "n_infeasible": n_infeasible}
        if completed:
            best = study.best_trial
            results.update(best_trial=best.number, best_value=best.value, best_params=best.params,
                           best_run_dir=str(sw.study_dir / str(best.number)))
            log.info("Best: trial %d, %s=%.4f, %s", best.number, self._objective_name(), best.value,
                     " ".join(f"{k}={v}" for k, v in best.params.items()))
        OmegaConf.save(OmegaConf.create(results), sw.study_dir / "optimization_results.yaml")
        if self.stopping is not None:
            raise SweeperError(f"Optuna sweep {study.study_name!r}: {self.stopping}. {self._failure_hint()}")
        if not completed:
            raise SweeperError(f"Optuna sweep {study.study_name!r}: no trial completed. {self._failure_hint()}")

    def _failure_hint(self) -> str:
        if not self.failures:
            return f"Folder: {self.sw.study_dir}"
        kinds = Counter(status for _, status, _ in self.failures)
        number, status, error = self.failures[0]
        return (f"Failures in this run: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}; "
                f"first: trial {number} {status}: {error} (see {self.sw.study_dir / str(number)}/run.log)")
