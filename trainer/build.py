"""What one run trains with, built from its config: the device, the model in its memory format
and precision, the optimizer (from its `_target_` node) and the learning-rate schedule.

A setting that cannot work raises TrainConfigError naming its key, so `train` records the run
as invalid with one line instead of a traceback.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from budgetsweep import models
from budgetsweep.contract import first_line
from budgetsweep.contract.sweep import JOBS_ENV  # when set, threads=auto divides the cores by it

from .cores import activations_per_image, gpu_for_slot, live_count, trials_per_gpu
from .schema import Amp, ChannelsLast, Scheduler, TrainConfigError

log = logging.getLogger(__name__)
# The `_target_`s an optimizer config may name (Hydra's execution whitelist: the config cannot
# make the trainer call anything else). An optimizer from another package: add its prefix here.
OPTIMIZER_TARGETS = ("torch.optim.*",)
# compile=auto on a CPU compiles when a run plans more training steps than this: the first
# epoch's extra compile time (21.5 s for the 80k model, cold kernel cache) against the per-step
# gain (7 ms a step of 128 images); measured on a quiet 2-core machine by
# benchmarks/compile_break_even.py (RESULTS.md). Cold, not warm (224 steps): the trials of a
# search have other shapes, so most of their kernels are not in the cache yet.
CPU_COMPILE_BREAK_EVEN_STEPS = 3000


def pick_device(name: str, slot: int | None = None, per_gpu: int | Callable[[], int] = 1) -> torch.device:
    """The device of `device`: cpu, cuda:N as given; auto is cuda when there is one. A job on
    `cuda` (or auto) with a GPU `slot` from the registry (`trainer.cores`) and several GPUs
    visible takes the GPU of its slot, `per_gpu` slots to a GPU (a number, or a function asked
    only then)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainConfigError(f"device: {name!r} asked for but CUDA is not available here (use device=cpu or auto)")
    if name == "cuda" and slot is not None and torch.cuda.device_count() > 1:
        per_gpu = per_gpu() if callable(per_gpu) else per_gpu
        return torch.device("cuda", gpu_for_slot(slot, torch.cuda.device_count(), per_gpu))
    try:
        return torch.device(name)
    except RuntimeError:
        raise TrainConfigError(f"device: {name!r} is not a device (auto, cpu, cuda, cuda:N)") from None


def wants_gpu_slot(name: str) -> bool:
    """Whether a job with this `device` setting trains on a GPU that the registry picks."""
    return name == "cuda" or (name == "auto" and torch.cuda.is_available())


def auto_trials_per_gpu(cfg: DictConfig) -> int:
    """`trials_per_gpu` of `cfg`: as set, else how many copies of this model and batch fit in
    the memory of the smallest visible GPU, no more than the jobs at once need to fill every GPU
    (`trainer.cores.trials_per_gpu`); 1 for a model that cannot be sized (its own error is
    reported by the budget check)."""
    if cfg.trials_per_gpu is not None:
        return cfg.trials_per_gpu
    try:
        params = models.check_budget(cfg.model).params
        activations = activations_per_image(cfg.model)
    except Exception:  # noqa: BLE001 - any model error: models.check_budget reports it next
        return 1
    if params is None:
        return 1
    gpus = torch.cuda.device_count()
    memory = min(torch.cuda.get_device_properties(i).total_memory for i in range(gpus))
    jobs = jobs_on_this_machine(available_cores(), registered=live_count())
    return trials_per_gpu(params, activations, cfg.batch_size, memory, jobs, gpus)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device.type}:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    return str(device)


def available_cores() -> int:
    """The CPUs this process may run on (its affinity mask, which taskset and cgroups narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def threads_per_job(cores: int, jobs: int) -> int:
    """The cores shared evenly by `jobs` jobs running at once: never more threads than cores
    in total (threads spinning on a busy core slow every job several-fold), at least one each."""
    return max(1, cores // max(1, jobs))


def launcher_jobs(hydra_cfg: Any, cores: int) -> int:
    """Jobs a Hydra launcher runs at once: joblib's `n_jobs` (-1 = one per core, -2 = all but
    one, as joblib counts), bounded by the batch the sweeper hands it (`n_jobs` of the Optuna
    sweeper, `max_batch_size` of the others); 1 for the basic launcher, which runs jobs in turn."""
    n_jobs = hydra_cfg.get("launcher", {}).get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs == 0:
        return 1
    at_once = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
    sweeper = hydra_cfg.get("sweeper", {})
    batch = sweeper.get("n_jobs") or sweeper.get("max_batch_size")
    return min(at_once, batch) if isinstance(batch, int) and batch > 0 else at_once


def jobs_on_this_machine(cores: int, env: Mapping[str, str] = os.environ, registered: int = 0) -> int:
    """BUDGETSWEEP_JOBS_PER_MACHINE when set; else the larger of what the running Hydra job's
    launcher runs at once and the `registered` training jobs on this machine (`trainer.cores`:
    runs started independently, which no launcher knows of)."""
    if env.get(JOBS_ENV):
        try:
            jobs = int(env[JOBS_ENV])
        except ValueError:
            jobs = 0
        if jobs < 1:
            raise TrainConfigError(f"threads: ${JOBS_ENV} must be a positive int, got {env[JOBS_ENV]!r}")
        return jobs
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return max(1, registered)
    return max(launcher_jobs(HydraConfig.get(), cores), registered)


def resolve_threads(setting: int | str | None) -> int | None:
    """The torch thread count of `threads`: an int as given, `auto` the cores divided among the
    jobs that run at once on this machine (`jobs_on_this_machine`), null torch's own default (None)."""
    if setting != "auto":
        return setting  # type: ignore[return-value]
    return auto_threads()[0]


def auto_threads() -> tuple[int, int, int]:
    """threads=auto now: (threads, cores, jobs sharing them)."""
    n_cores = available_cores()
    jobs = jobs_on_this_machine(n_cores, registered=live_count())
    return threads_per_job(n_cores, jobs), n_cores, jobs


def make_optimizer(optimizer_cfg: DictConfig, params) -> torch.optim.Optimizer:
    """`instantiate(cfg.optimizer)(params)`: the class under OPTIMIZER_TARGETS named by
    `_target_`, with `_partial_: true`; its other keys are its arguments."""
    target = optimizer_cfg.get("_target_")
    if not isinstance(target, str) or not target.startswith(tuple(p.rstrip("*") for p in OPTIMIZER_TARGETS)):
        raise TrainConfigError(
            f"optimizer._target_: expected a class under {', '.join(OPTIMIZER_TARGETS)}, got {target!r}"
        )
    try:  # _convert_: plain lists (betas), which the checkpoint's weights_only load accepts
        opt = hydra.utils.instantiate(optimizer_cfg, _convert_="all", _execution_whitelist_=OPTIMIZER_TARGETS)(params)
    except (InstantiationException, TypeError, ValueError) as e:  # bad target, unknown argument, bad value
        raise TrainConfigError(f"optimizer: {first_line(e)}") from None
    if not isinstance(opt, torch.optim.Optimizer):
        raise TrainConfigError(f"optimizer: _target_ {optimizer_cfg.get('_target_')!r} is not a torch.optim.Optimizer")
    return opt


def check_optimizer(optimizer_cfg: DictConfig) -> None:
    """Build the optimizer over one stand-in tensor: a bad one is invalid before any data loads."""
    make_optimizer(optimizer_cfg, [torch.zeros(1, requires_grad=True)])


def make_scheduler(cfg: DictConfig, opt: torch.optim.Optimizer, total_steps: int):
    """Stepped once per batch; see `schema.Scheduler`."""
    if cfg.scheduler == Scheduler.cosine:
        warm = int(cfg.warmup_epochs * total_steps / cfg.epochs)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if cfg.scheduler == Scheduler.onecycle:
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.optimizer.lr, total_steps=max(total_steps, 1))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def channels_last_is_safe(model: torch.nn.Module, device: torch.device) -> bool:
    """False where PyTorch's CPU kernels break on this model in channels_last.

    Seen with torch 2.14.1 (x86_64, oneDNN): the backward pass of a strided convolution with
    2 to 7 input channels in channels_last corrupts memory (segfault, `free(): invalid next
    size`, or a hang). Our ResNet's 1x1 stride-2 shortcut hits it when C < 8."""
    if device.type != "cpu":
        return True
    return not any(
        isinstance(m, torch.nn.Conv2d) and m.stride != (1, 1) and 2 <= m.in_channels < 8 for m in model.modules()
    )


@dataclass
class Setup:
    """The model and how it runs on `device`; `step_model` is the one training steps call."""

    device: torch.device
    model: torch.nn.Module
    step_model: torch.nn.Module  # torch.compile(model) with compile=true, else model itself
    memory_format: torch.memory_format
    bf16: bool

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)


def should_compile(setting: bool | str, device: torch.device, planned_steps: int) -> bool:
    """`compile`: true/false as given; auto on CUDA, and on a CPU for runs long enough to win
    back the compile time (more than CPU_COMPILE_BREAK_EVEN_STEPS training steps)."""
    if setting != "auto":
        return bool(setting)
    return device.type == "cuda" or planned_steps > CPU_COMPILE_BREAK_EVEN_STEPS


def compile_cache_dir() -> Path:
    """Where inductor keeps compiled kernels: $TORCHINDUCTOR_CACHE_DIR when set, else the user's
    cache (~/.cache/budgetsweep/torchinductor), shared by every trial and sweep of this user on
    this machine and kept across reboots (torch's default is under /tmp)."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "budgetsweep" / "torchinductor"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)  # read by inductor at its first compile
    return path


def build_model(cfg: DictConfig, device: torch.device, planned_steps: int = 0) -> Setup:
    """The seeded model on `device`, in channels_last when asked and safe, compiled when asked
    (or, with compile=auto, when `planned_steps` make it pay)."""
    torch.manual_seed(cfg.seed)
    model = models.create_model(cfg.model)
    channels_last = cfg.channels_last != ChannelsLast.off  # auto: measured faster on this CPU (+4..33%) and GPUs
    if channels_last and not channels_last_is_safe(model, device):
        log.warning("channels_last off: a strided conv with under 8 input channels crashes PyTorch's CPU kernels")
        channels_last = False
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    bf16 = cfg.amp == Amp.bf16 or (cfg.amp == Amp.auto and device.type == "cuda")
    if bf16 and device.type == "cpu":
        log.warning("amp=bf16 on a CPU: without native bf16 this is ~15x slower than float32")
    model = model.to(device=device, memory_format=memory_format)
    step_model = model
    if should_compile(cfg.compile, device, planned_steps):
        log.info("torch.compile (kernel cache: %s)", compile_cache_dir())
        step_model = torch.compile(model)
    return Setup(device, model, step_model, memory_format, bf16)
