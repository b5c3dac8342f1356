"""The registry of training jobs on this machine (`trainer.cores`): entries, liveness, the
threads=auto rule and the GPU a job takes, without CUDA; then real `run.py` processes started
together, each choosing its threads from the others."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from budgetsweep.trainer import cores
from budgetsweep.trainer.build import (
    JOBS_ENV,
    auto_trials_per_gpu,
    available_cores,
    jobs_on_this_machine,
    pick_device,
    resolve_threads,
    threads_per_job,
)

from helpers import RUN_PY, TINY_RUN, env

HAS_PROC = Path(f"/proc/{os.getpid()}/stat").is_file()


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    """A registry folder of this test's own: the jobs of other programs on the machine stay out."""
    folder = tmp_path / "jobs"
    monkeypatch.setenv(cores.REGISTRY_ENV, str(folder))
    monkeypatch.delenv(JOBS_ENV, raising=False)
    return folder


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_entry(folder: Path, pid: int, started: int | None, slot: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}-99.json"
    path.write_text(json.dumps(dict(pid=pid, started=started, threads="auto", slot=slot, registered=0.0)))
    return path


def test_the_registry_folder(tmp_path):
    assert cores.registry_dir({cores.REGISTRY_ENV: str(tmp_path)}) == tmp_path
    assert cores.registry_dir({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path("/run/user/7/budgetsweep/jobs")
    assert cores.registry_dir({}).name == "jobs" and cores.registry_dir({}).parent.name.startswith("budgetsweep-")


def test_a_job_is_counted_while_registered(registry):
    assert cores.live_count() == 0  # no folder yet
    with cores.registered("auto") as first:
        assert first.pid == os.getpid() and first.slot is None  # no GPU asked: no slot
        (path,) = registry.glob("*.json")
        assert json.loads(path.read_text())["threads"] == "auto"
        with cores.registered(2):  # a second job of the same process (threads of a sweeper) counts too
            assert cores.live_count() == 2
        assert cores.live_count() == 1
    assert cores.live_count() == 0 and not list(registry.glob("*.json"))


def test_a_dead_job_is_not_counted_and_its_entry_goes(registry):
    gone = write_entry(registry, dead_pid(), None)
    with cores.registered("auto"):
        assert cores.live_count() == 1
    assert not gone.exists()


@pytest.mark.skipif(not HAS_PROC, reason="process start times come from /proc (Linux)")
def test_a_reused_pid_is_not_taken_for_the_job_that_had_it(registry):
    # This process's pid with another start time: the job that wrote it ended, the pid was reused.
    started = cores.process_start_time(os.getpid())
    assert isinstance(started, int) and started > 0
    reused = write_entry(registry, os.getpid(), started - 1)
    assert cores.live_count() == 0 and not reused.exists()
    assert cores.is_alive(cores.Entry(os.getpid(), started, None, None, 0.0))


def test_an_unusable_folder_leaves_the_job_alone(tmp_path):
    (tmp_path / "file").write_text("")
    with cores.registered("auto", folder=tmp_path / "file" / "jobs") as job:
        assert job is None  # the run goes on, counted as alone


def test_an_entry_left_by_a_process_that_exits_is_removed(registry):
    # sys.exit inside the block: the `with` exit and atexit both remove it; SIGKILL leaves the
    # file, which the liveness check then ignores (test_a_dead_job_is_not_counted...).
    code = "import sys; from budgetsweep.trainer import cores\ncores.register('auto')\nsys.exit(0)\n"
    subprocess.run([sys.executable, "-c", code], env=env(), check=True)
    assert not list(registry.glob("*.json"))


def test_gpu_slots_are_the_lowest_free_ones(registry):
    assert cores.lowest_free_slot(set()) == 0 and cores.lowest_free_slot({0, 1, 3}) == 2
    write_entry(registry, dead_pid(), None, slot=0)  # a dead job's slot is free again
    with cores.registered(gpu=True) as a, cores.registered(gpu=True) as b:
        assert (a.slot, b.slot) == (0, 1)
        with cores.registered(gpu=False) as cpu:
            assert cpu.slot is None
    with cores.registered(gpu=True) as c:
        assert c.slot == 0


@pytest.mark.parametrize(
    "slot,gpus,per_gpu,gpu",
    [(0, 2, 1, 0), (1, 2, 1, 1), (2, 2, 1, 0), (3, 4, 1, 3), (3, 2, 4, 0), (4, 2, 4, 1), (8, 2, 4, 0), (5, 1, 1, 0)],
)
def test_the_gpu_of_a_slot(slot, gpus, per_gpu, gpu):
    assert cores.gpu_for_slot(slot, gpus, per_gpu) == gpu


def test_trials_per_gpu_from_the_model_and_memory():
    gib = 2**30
    assert cores.trials_per_gpu(80_000, 200_000, 128, 80 * gib) == cores.MAX_TRIALS_PER_GPU  # small: capped
    assert cores.trials_per_gpu(5_000_000, 2_000_000, 512, 80 * gib) == 4  # ~8.2 GiB apiece, 64 GiB usable: 7, capped
    assert cores.trials_per_gpu(5_000_000, 2_000_000, 512, 24 * gib) == 2
    assert cores.trials_per_gpu(5_000_000, 2_000_000, 512, 8 * gib) == 1  # not even one fits: one anyway
    assert cores.trials_per_gpu(80_000, 200_000, 128, 80 * gib, jobs=2, gpus=2) == 1  # one GPU each
    assert cores.trials_per_gpu(80_000, 200_000, 128, 80 * gib, jobs=5, gpus=2) == 3
    one = cores.trial_bytes(5_000_000, 2_000_000, 512)
    assert one == cores.CUDA_CONTEXT_BYTES + 4 * (4 * 5_000_000 + 2 * 2_000_000 * 512)


def test_activations_counted_on_the_meta_device():
    small = cores.activations_per_image({"name": "resnet", "N": 1, "B": 1, "C": 8})
    wide = cores.activations_per_image({"name": "resnet", "N": 1, "B": 1, "C": 16})
    assert small > 8 * 32 * 32  # at least the stem's output map
    assert 1.9 < wide / small < 2.1  # twice the channels: twice the maps (the logits aside)


def test_a_job_takes_the_gpu_of_its_slot(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda", slot=1) == torch.device("cuda", 1)
    assert pick_device("auto", slot=2) == torch.device("cuda", 0)
    assert pick_device("auto", slot=1, per_gpu=lambda: 2) == torch.device("cuda", 0)  # two to a GPU
    assert pick_device("cuda:0", slot=1) == torch.device("cuda", 0)  # the index given wins
    assert pick_device("cpu", slot=1) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda", slot=3) == torch.device("cuda")  # one GPU: nothing to choose


def test_trials_per_gpu_setting_wins_over_the_estimate(tiny_cfg, monkeypatch):
    class Props:
        total_memory = 80 * 2**30

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props)
    assert auto_trials_per_gpu(tiny_cfg(["trials_per_gpu=3"])) == 3
    monkeypatch.setenv(JOBS_ENV, "8")
    assert auto_trials_per_gpu(tiny_cfg()) == cores.MAX_TRIALS_PER_GPU  # a tiny model: capped
    monkeypatch.setenv(JOBS_ENV, "2")
    assert auto_trials_per_gpu(tiny_cfg()) == 1  # two jobs, two GPUs: one each
    assert auto_trials_per_gpu(tiny_cfg(["model.N=0"])) == 1  # a model that cannot be sized


def test_threads_auto_divides_the_cores_among_registered_jobs(registry, monkeypatch):
    n = available_cores()
    assert jobs_on_this_machine(n, env={}, registered=3) == 3
    assert jobs_on_this_machine(n, env={JOBS_ENV: "2"}, registered=3) == 2  # the variable wins
    with cores.registered("auto"):
        assert resolve_threads("auto") == n
        with cores.registered("auto"), cores.registered("auto"):
            assert resolve_threads("auto") == threads_per_job(n, 3)
            assert resolve_threads(5) == 5  # threads=N wins over everything
            monkeypatch.setenv(JOBS_ENV, "1")
            assert resolve_threads("auto") == n


THREADS_LINE = re.compile(r"threads: (?:\d+ -> )?(\d+) \(\d+ cores shared by (\d+) training jobs")


def hold_until_all_registered(procs: list[subprocess.Popen], folder: Path, timeout: float = 120) -> None:
    """Pause each process as soon as its entry appears, and let them all go once every one has
    registered: started together, but a loaded machine can start them seconds apart, and a job
    that finishes before the last one starts never sees it."""
    pids, held = {p.pid for p in procs}, set()
    deadline = time.monotonic() + timeout
    try:
        while held != pids and time.monotonic() < deadline and all(p.poll() is None for p in procs):
            for entry in folder.glob("*.json"):
                pid = int(entry.name.split("-")[0])
                if pid in pids - held:
                    os.kill(pid, signal.SIGSTOP)
                    held.add(pid)
            time.sleep(0.005)
        assert held == pids, f"{len(held)} of {len(pids)} jobs registered"
    finally:
        for pid in held:
            os.kill(pid, signal.SIGCONT)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="pauses the jobs with SIGSTOP (POSIX)")
@pytest.mark.parametrize("n", [2, 3])
def test_processes_started_together_share_the_cores(tmp_path, n):
    """`n` plain `python run.py` runs started at once (threads=auto, the default), knowing nothing
    of each other: each sees the others in the registry and takes its share of the cores."""
    args = [*TINY_RUN, "data.n_train=600", "epochs=2", "model.C=8"]
    procs = [
        subprocess.Popen(
            [*RUN_PY, *args, f"hydra.run.dir={tmp_path / str(i)}"],
            cwd=tmp_path,
            env=env(**{cores.REGISTRY_ENV: str(tmp_path / "jobs")}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        hold_until_all_registered(procs, tmp_path / "jobs")
        errors = [p.communicate(timeout=240)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), errors
    share = threads_per_job(available_cores(), n)
    for i in range(n):
        seen = [(int(t), int(j)) for t, j in THREADS_LINE.findall((tmp_path / str(i) / "run.log").read_text())]
        assert seen[0] == (share, n), f"job {i} chose {seen}, expected {share} threads with {n} jobs first"
        assert all(t == threads_per_job(available_cores(), j) for t, j in seen), seen
    assert not list((tmp_path / "jobs").glob("*.json"))  # every entry removed at the end


def test_a_job_paused_while_holding_the_lock_stalls_no_other(tmp_path):
    # a process stopped (SIGSTOP, Ctrl-Z) inside the registry's lock: the others wait LOCK_WAIT, then go on
    import subprocess
    import sys
    import time

    from budgetsweep.trainer import cores

    tmp_path.mkdir(exist_ok=True)
    hold = (
        f"import fcntl, time; f = open({str(tmp_path / '.lock')!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert cores.live_count(tmp_path) == 0
        assert time.monotonic() - started < cores.LOCK_WAIT + 2
    finally:
        holder.kill()
        holder.wait()
