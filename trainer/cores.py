"""The training processes on this machine: a registry that lets runs which know nothing of each
other share the cores and the GPUs.

Each `train` registers itself with one small JSON file in the registry folder (REGISTRY_ENV,
else $XDG_RUNTIME_DIR/budgetsweep/jobs, else <tmp>/budgetsweep-<uid>/jobs) and removes it when
it ends (a `with` block, and atexit as a second net). A file outlives its process only when the
process is killed (SIGKILL, a crash): an entry counts only while its pid runs and, where /proc
gives it, with the start time recorded, so a pid reused by an unrelated process is not counted;
such entries are deleted by the next registration.

What the entries decide:
- threads=auto: the cores divided among the live entries (`trainer.build.resolve_threads`),
  re-checked after each epoch, so two runs started by hand on one machine take half each, and
  the one left takes them all back;
- the GPU of a job that trains on `cuda` with several GPUs visible: its slot (the lowest slot no
  live entry holds) picks the GPU, `gpu_for_slot`.

Registering, choosing a slot and deleting dead entries happen under an exclusive lock on the
folder's `.lock` (fcntl; without fcntl, as on Windows, two jobs registering at the same instant
may share a slot). Nothing here fails a run: a folder that cannot be used leaves the job
unregistered and counted as alone.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from budgetsweep.lockfile import locked

log = logging.getLogger(__name__)

REGISTRY_ENV = "BUDGETSWEEP_REGISTRY"  # the registry folder; runs that should not see each other set their own
_LOCK = ".lock"
_sequence = itertools.count()  # entries of one process: a process may train several configs at once
_mine: set[Path] = set()  # entries this process wrote and has not removed yet (for atexit)


@dataclass(frozen=True)
class Entry:
    """One training job: its process, the start time that tells the process from a later one
    with the same pid, the `threads` setting it asked for, its GPU slot (None: no GPU slot)."""

    pid: int
    started: int | None  # clock ticks after boot (/proc/<pid>/stat field 22); None without /proc
    threads: Any
    slot: int | None
    registered: float  # time.time() at registration, for a person reading the folder


def registry_dir(env: Mapping[str, str] = os.environ) -> Path:
    """REGISTRY_ENV when set; else the user's runtime folder (cleared at logout and reboot),
    else a folder of this user's under the temporary directory."""
    if env.get(REGISTRY_ENV):
        return Path(env[REGISTRY_ENV])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "budgetsweep" / "jobs"
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"budgetsweep-{user}" / "jobs"


def process_start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks after boot (field 22 of /proc/<pid>/stat); None where
    there is no /proc (macOS) or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name (field 2) is in parentheses and may hold spaces: split after its last ')'.
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def is_alive(entry: Entry) -> bool:
    """Whether the process that wrote `entry` still runs (and not another one given its pid)."""
    if os.name == "nt":  # os.kill there terminates the process instead of probing it: trust the entry
        return True
    try:
        os.kill(entry.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds the pid now: not one of ours
        return False
    return entry.started is None or process_start_time(entry.pid) in (None, entry.started)


def read_entries(folder: Path) -> dict[Path, Entry]:
    """Every entry in `folder`, live or not; a file that cannot be read as one is left out."""
    entries = {}
    for path in folder.glob("*.json"):
        try:
            entries[path] = Entry(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):  # being written, removed meanwhile, or foreign
            continue
    return entries


def live_entries(folder: Path | None = None) -> list[Entry]:
    """The entries of running processes; the entries of processes gone are deleted."""
    folder = folder or registry_dir()
    if not folder.is_dir():
        return []
    with _locked(folder):
        return list(_live(folder).values())


def live_count(folder: Path | None = None) -> int:
    """The training jobs running on this machine now, this one included when registered."""
    try:
        return len(live_entries(folder))
    except OSError:
        return 0


def lowest_free_slot(taken: set[int]) -> int:
    """The smallest slot >= 0 not in `taken`: a job ending frees its slot for the next one."""
    return next(s for s in itertools.count() if s not in taken)


def gpu_for_slot(slot: int, device_count: int, trials_per_gpu: int = 1) -> int:
    """The GPU index (among the visible ones) of the job in `slot`: slots 0..t-1 share GPU 0,
    t..2t-1 GPU 1, and so on, round the visible GPUs again when there are more slots."""
    if device_count < 1:
        raise ValueError(f"device_count must be >= 1, got {device_count}")
    return (slot // max(1, trials_per_gpu)) % device_count


# trials_per_gpu=null: how many copies of one trial fit in a GPU's memory, estimated.
CUDA_CONTEXT_BYTES = 512 * 2**20  # each process's own CUDA context and kernels, before any tensor
STATE_COPIES = 4  # float32 weights, their gradients, and two optimizer states (Adam's moments)
ACTIVATION_COPIES = 2  # the activations kept for backward, and their gradients while it runs
MEMORY_FRACTION = 0.8  # of the GPU's total memory: room for the allocator's caching and fragments
MAX_TRIALS_PER_GPU = 4  # more processes than this on one GPU only take turns


def trial_bytes(params: int, activations_per_image: int, batch_size: int) -> int:
    """The GPU memory one trial needs, estimated: its CUDA context, float32 weights, gradients
    and optimizer state, and the activations of one batch (4 bytes each) with their gradients."""
    return CUDA_CONTEXT_BYTES + 4 * (STATE_COPIES * params + ACTIVATION_COPIES * activations_per_image * batch_size)


def trials_per_gpu(
    params: int, activations_per_image: int, batch_size: int, gpu_memory: int, jobs: int | None = None, gpus: int = 1
) -> int:
    """How many trials of this size share one GPU of `gpu_memory` bytes: MEMORY_FRACTION of it
    divided by `trial_bytes`, at most MAX_TRIALS_PER_GPU, and no more than `jobs` running at once
    need over `gpus` GPUs (so fewer jobs than GPUs get one each); at least 1."""
    fit = int(MEMORY_FRACTION * gpu_memory) // trial_bytes(params, activations_per_image, batch_size)
    spread = -(-jobs // max(1, gpus)) if jobs else MAX_TRIALS_PER_GPU
    return max(1, min(MAX_TRIALS_PER_GPU, fit, spread))


def activations_per_image(model_cfg: Any) -> int:
    """The numbers one image's forward pass leaves in the outputs of the model's leaf modules
    (convolutions, norms, activations, ...): what backward keeps, roughly. A meta-device
    forward: shapes only, no memory."""
    import torch

    from budgetsweep import models

    cfg = models.resolve_model_config(model_cfg)
    with torch.device("meta"):
        model = models.create_model(cfg)
    total = 0

    def count(module, inputs, output) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        model(torch.empty(1, cfg.in_channels, cfg.image_size, cfg.image_size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total


def register(threads: Any = None, gpu: bool = False, folder: Path | None = None) -> tuple[Path, Entry] | None:
    """Write this job's entry (with the lowest free GPU slot when `gpu`); (its file, the entry),
    or None when the registry folder cannot be used (the job then runs as if alone)."""
    folder = folder or registry_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _locked(folder):
            live = _live(folder)
            slot = lowest_free_slot({e.slot for e in live.values() if e.slot is not None}) if gpu else None
            pid = os.getpid()
            entry = Entry(pid, process_start_time(pid), threads, slot, round(time.time(), 3))
            path = folder / f"{pid}-{next(_sequence)}.json"
            _write_atomic(path, json.dumps(asdict(entry)))
    except OSError as e:
        log.warning("not registered with the other training jobs here (%s): threads=auto counts this one only", e)
        return None
    _mine.add(path)
    return path, entry


def unregister(path: Path) -> None:
    _mine.discard(path)
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def registered(threads: Any = None, gpu: bool = False, folder: Path | None = None) -> Iterator[Entry | None]:
    """This job's entry for the duration of the block (None when not registered)."""
    made = register(threads, gpu, folder)
    try:
        yield made[1] if made else None
    finally:
        if made:
            unregister(made[0])


def _live(folder: Path) -> dict[Path, Entry]:
    """The live entries of `folder` (call under its lock): the others are deleted."""
    live = {}
    for path, entry in read_entries(folder).items():
        if is_alive(entry):
            live[path] = entry
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return live


LOCK_WAIT = 2.0  # seconds: the lock is held for milliseconds, unless its holder is paused (Ctrl-Z, SIGSTOP)


def _locked(folder: Path) -> contextlib.AbstractContextManager:
    """The folder's lock, waited for LOCK_WAIT at most: a job paused while holding it must not stall
    every other job on the machine; past the wait the caller goes on without it (entries are
    written atomically; the lock only keeps two jobs registering at once off the same slot)."""
    return locked(folder / _LOCK, wait=LOCK_WAIT)


def _write_atomic(path: Path, text: str) -> None:
    """Readers see the whole entry or none: written aside, then renamed into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@atexit.register
def _remove_mine() -> None:
    """A process that exits inside a job (sys.exit in a callback) still leaves no entry behind."""
    for path in list(_mine):
        unregister(path)
