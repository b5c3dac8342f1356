"""Both sweepers on a real one-node SLURM cluster: every trial an `sbatch` job through
hydra-submitit-launcher (`hydra/launcher=submitit_slurm`), as on a cluster's login node. The
cluster is Debian's `slurm-wlm` and `munge` packages started by `.ci/slurm-up` (CI runs it);
without one these tests skip, saying which part is missing.

The cluster keeps no accounting (no `sacct`): submitit then learns that a job ended from the
result file the job writes, and warns about the failed status query once per sweep. SLURM keeps
a finished job in `scontrol show job` for MinJobAge (5 minutes), long enough to check each job
the sweep ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
from optuna.trial import TrialState

from helpers import (
    OPTUNA,
    ROOT,
    ablation_dir,
    install_app,
    job_config,
    load_study,
    metrics,
    only_study_dir,
    run_folders,
    run_foreign_app,
    run_sweep,
    start_sweep,
    sweep_args,
    times,
    trained,
)

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def _not_up() -> str | None:
    """Why no SLURM cluster is ready here, or None when a node takes jobs."""
    missing = [tool for tool in ("sbatch", "sinfo", "scontrol") if shutil.which(tool) is None]
    if missing:
        return f"no {', '.join(missing)}: apt-get install slurm-wlm munge, then .ci/slurm-up"
    conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    if not os.path.isfile(conf):  # sinfo would look for a controller in DNS for a minute
        return f"no SLURM configuration ({conf}): .ci/slurm-up writes one and starts the cluster"
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s: is slurmctld running? (.ci/slurm-up)"
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no SLURM cluster ({why}): start one with .ci/slurm-up"
    if not {"idle", "mix"} & set(r.stdout.split()):
        return f"no SLURM node takes jobs (states: {' '.join(r.stdout.split()) or 'none'}): .ci/slurm-up"
    return None


NOT_UP = _not_up()


def on_cluster(test):
    """A test that submits real jobs: marked `slurm`, skipped (saying why) without a cluster."""
    return pytest.mark.slurm(pytest.mark.skipif(NOT_UP is not None, reason=NOT_UP or "")(test))


# One CPU per trial, so that the node (as many CPUs as this machine) runs n_jobs=2 at once.
SLURM = [
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.cpus_per_task=1",
]
SACCT_WARNING = re.compile(r"Call #(\d+) - Bypassing sacct error")  # submitit's, at each failed poll
FROM_SQUEUE = "SLURM job states come from squeue instead"


def ok(r) -> None:
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr


def slurm_jobs(sweep_dir, settle: float = 60.0) -> dict[str, dict[str, str]]:
    """The SLURM jobs of a sweep (submitit's folders of the jobs that ran, `.submitit/<job id>/`;
    `<array id>_<task>` for an array), each as SLURM shows it: `scontrol show job` fields by name.
    A job's result reaches the sweep a moment before SLURM marks the job ended: asked again for up
    to `settle` seconds while one still shows RUNNING or COMPLETING."""
    deadline = time.monotonic() + settle
    while True:
        jobs = _slurm_jobs(sweep_dir)
        if time.monotonic() > deadline or not any(
            j.get("JobState") in ("RUNNING", "COMPLETING") for j in jobs.values()
        ):
            return jobs
        time.sleep(1)


def _slurm_jobs(sweep_dir) -> dict[str, dict[str, str]]:
    jobs = {}
    for folder in sorted(p for p in (sweep_dir / ".submitit").iterdir() if (p / f"{p.name}_0_log.out").exists()):
        shown = subprocess.run(["scontrol", "-o", "show", "job", folder.name], capture_output=True, text=True)
        assert shown.returncode == 0, f"job {folder.name}: {shown.stderr}"
        jobs[folder.name] = dict(f.split("=", 1) for f in shown.stdout.split() if "=" in f)
    return jobs


def assert_ran_as_slurm_jobs(sweep_dir, n: int) -> dict[str, dict[str, str]]:
    jobs = slurm_jobs(sweep_dir)
    assert len(jobs) == n, sorted(jobs)
    for job_id, job in jobs.items():
        assert (job["JobState"], job["Partition"], job["NumCPUs"]) == ("COMPLETED", "debug", "1"), job
        log = (sweep_dir / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
        assert f"JobEnvironment(job_id={job_id}," in log  # the task ran inside that job
    return jobs


def sacct_fails() -> bool:
    return subprocess.run(["sacct", "-n"], capture_output=True).returncode != 0


@on_cluster
def test_budget_optuna_runs_each_trial_as_a_slurm_job_and_says_once_that_sacct_is_off(tmp_path):
    r = run_foreign_app(
        tmp_path,
        "xy",
        OPTUNA,
        *SLURM,
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "x=interval(-2,2)",
        "steps=2",
        timeout=300,
    )
    ok(r)
    study_dir = only_study_dir(tmp_path)
    study = load_study(study_dir)
    assert len(study.trials) == 4
    assert [(t.number, t.state) for t in trained(study)] == [(n, TrialState.COMPLETE) for n in range(4)]
    for t in trained(study):
        record = json.loads((study_dir / str(t.number) / "sweep_record.json").read_text())
        assert (record["trial"], record["status"], record["objective"]) == (t.number, "completed", t.value)
        assert sorted(record["intermediate"]) == ["1", "2"]  # reported from the job, through the storage
    jobs = assert_ran_as_slurm_jobs(study_dir, 4)
    out = r.stdout + r.stderr
    # each trial names the job that ran it, in its record and in its end line
    ran_in = {
        t.number: json.loads((study_dir / str(t.number) / "sweep_record.json").read_text())["slurm_job_id"]
        for t in trained(study)
    }
    assert sorted(ran_in.values()) == sorted(jobs), (ran_in, sorted(jobs))
    for number, job_id in ran_in.items():
        assert f"trial {number} (Slurm job {job_id}): completed" in out
    assert len({times(d)["pid"] for d in run_folders(study_dir)} | {os.getpid()}) == 5
    assert "Submitit 'slurm'" in out
    # submitit polls sacct every few seconds for every job: where it fails, one line says so, once
    assert not SACCT_WARNING.findall(out)
    assert out.count(FROM_SQUEUE) == (1 if sacct_fails() else 0), out[-3000:]


@on_cluster
def test_run_py_optuna_sweep_on_slurm(tmp_path):
    r = run_sweep(tmp_path, *SLURM, "model.C=choice(8,12)", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2")
    ok(r)
    study_dir = only_study_dir(tmp_path)
    study = load_study(study_dir)
    assert sorted((t.number, t.state) for t in trained(study)) == [(0, TrialState.COMPLETE), (1, TrialState.COMPLETE)]
    for t in trained(study):
        metrics = json.loads((study_dir / str(t.number) / "metrics.json").read_text())
        assert (metrics["status"], metrics["trial"], metrics["objective"]) == ("completed", t.number, t.value)
    assert_ran_as_slurm_jobs(study_dir, 2)


@on_cluster
def test_ablation_sweeper_runs_each_variant_as_a_slurm_job(tmp_path):
    # hydra.sweep.dir given: the launcher is made before the ablation sweeper picks its folder,
    # so submitit's own folder (.submitit/) follows a hydra.sweep.dir from the command line only
    args = ["hydra/sweeper=ablation", *SLURM, "hydra.sweep.dir=outputs/ablation/xy", "x=-1,1", "y=2,3"]
    r = run_foreign_app(tmp_path, "xy", *args, timeout=300)
    ok(r)
    sweep_dir = ablation_dir(tmp_path)
    jobs = run_folders(sweep_dir)
    assert [(job_config(d)["x"], job_config(d)["y"]) for d in jobs] == [
        (0.0, 0.0),
        (-1, 0.0),
        (1, 0.0),
        (0.0, 2),
        (0.0, 3),
    ]
    assert_ran_as_slurm_jobs(sweep_dir, 5)
    assert not SACCT_WARNING.findall(r.stdout + r.stderr)


@on_cluster
def test_a_cancelled_trial_job_fails_its_trial_and_the_sweep_goes_on(tmp_path):
    """`scancel` of a running trial's job: the job ends without a result. Without accounting
    only squeue can tell submitit so (otherwise the sweep would wait on it forever)."""
    script = install_app("xy", tmp_path)
    args = [sys.executable, str(script), "-m", OPTUNA, *SLURM, "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2"]
    args += ["x=interval(-2,2)", "steps=20", "sleep=1", "hydra.sweeper.study_name=cancel"]
    study_dir = tmp_path / "outputs" / "optuna" / "cancel"
    with open(tmp_path / "sweep.log", "w") as log:
        proc = start_sweep(args, tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not (study_dir / "0" / "progress.json").exists() and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
                time.sleep(0.2)
            first = min(int(p.name) for p in (study_dir / ".submitit").iterdir() if p.name.isdigit())  # trial 0's
            subprocess.run(["scancel", str(first)], check=True)
            proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    out = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 1, out[-3000:]  # one failure of 2 is more than max_failure_rate=0 allows
    assert "Traceback" not in out
    study = load_study(study_dir)
    assert [(t.number, t.state) for t in trained(study)] == [(0, TrialState.FAIL), (1, TrialState.COMPLETE)]
    record = json.loads((study_dir / "0" / "sweep_record.json").read_text())
    assert record["status"] == "failed" and f"Job {first} " in record["error"] and "CANCELLED" in record["error"]
    assert record["slurm_job_id"] == str(first)  # noted on the trial when the job started
    assert f"trial 0 (Slurm job {first}): failed: UncompletedJobError: Job {first} " in out
    assert slurm_jobs(study_dir)[str(first)]["JobState"] == "CANCELLED"


def release_requeued_jobs(stop: threading.Event) -> None:
    """SLURM holds a requeued job about 2 minutes (reason BeginTime): start each one now."""
    while not stop.wait(1):
        held = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%i %r"], capture_output=True, text=True).stdout
        for line in held.splitlines():
            job, reason = line.split(maxsplit=1)
            if reason == "BeginTime":
                subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)


@on_cluster
@pytest.mark.slow
def test_a_trial_at_its_time_limit_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    # a 1-minute limit; SLURM signals the job 20 s before it (give or take its 30 s timer), submitit
    # requeues it, and run.py goes on from checkpoint.pt. An epoch of the tiny model takes 0.1 to 0.3 s
    # depending on the machine: 500 of them outlast one job's time on a fast one (200 did not), and a
    # slow one needs several requeues, which max_num_timeout allows
    epochs = 500
    limit = ["hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=20", "hydra.launcher.max_num_timeout=10"]
    args = [*SLURM, *limit, "model.C=choice(8)", f"epochs={epochs}", "compile=false", "hydra.sweeper.n_trials=1"]
    stop = threading.Event()
    releaser = threading.Thread(target=release_requeued_jobs, args=(stop,), daemon=True)
    releaser.start()
    try:
        r = run_sweep(tmp_path, *args, "hydra.sweeper.n_jobs=1", timeout=540)
    finally:
        stop.set()
        releaser.join()
    ok(r)
    study_dir = only_study_dir(tmp_path)
    study = load_study(study_dir)
    assert [(t.number, t.state) for t in trained(study)] == [(0, TrialState.COMPLETE)]
    (job_id,) = slurm_jobs(study_dir)
    job = slurm_jobs(study_dir)[job_id]
    # one job, requeued; its last run may still meet the 1-minute limit's signal while it exits after
    # returning the trial's result (SLURM then says FAILED): the trial's state and history below decide
    assert job["JobState"] in ("COMPLETED", "FAILED") and int(job["Restarts"]) >= 1, job
    log = (study_dir / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert "Requeued job" in log
    run_log = (study_dir / "0" / "run.log").read_text()
    resumed = [int(e) for e in re.findall(r"resumed from \S+checkpoint\.pt at epoch (\d+)", run_log)]
    # each run that got as far as training resumed where the one before stopped (none began again at
    # epoch 1); a run signalled while it still started up, or while it exited, trained nothing
    assert 1 <= len(resumed) <= int(job["Restarts"]), (job["Restarts"], run_log[-3000:])
    assert resumed == sorted(resumed) and all(0 < e < epochs for e in resumed), resumed
    assert len(re.findall(rf"epoch 1/{epochs} ", run_log)) == 1
    history = (study_dir / "0" / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in history] == list(range(1, epochs + 1))  # the whole history, once
    assert (metrics(study_dir / "0")["epochs"], metrics(study_dir / "0")["slurm_job_id"]) == (epochs, job_id)


def running_job(timeout: float = 120) -> str:
    """The id of the one job the cluster runs (the test's trial), once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True).stdout.split()
        if running:
            (job,) = running
            return job
        time.sleep(0.5)
    raise AssertionError(f"no job running after {timeout} s")


def epochs_done(run_dir) -> int:
    try:
        return len((run_dir / "history.csv").read_text().splitlines()) - 1
    except OSError:
        return 0


def after_five_epochs(proc, run_dir, sweep_log) -> int:
    """Wait (2 minutes at most) until the trial has trained 5 of its 100 epochs; how many it has."""
    deadline = time.monotonic() + 120
    while epochs_done(run_dir) < 5 and time.monotonic() < deadline:
        assert proc.poll() is None, sweep_log.read_text()[-3000:]
        time.sleep(0.2)
    done = epochs_done(run_dir)
    assert 5 <= done < 100, done
    return done


@on_cluster
@pytest.mark.slow
def test_a_preempted_trial_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    """`scontrol requeue` of a running trial's job (what a preemption does): SLURM kills the job
    and queues it again under the same id; it starts run.py again in the trial's folder, under the
    same claim, and the trial resumes from its checkpoint as after a time limit."""
    args = [*SLURM, "model.C=choice(8)", "epochs=100", "compile=false", "hydra.sweeper.n_trials=1"]
    args += ["hydra.sweeper.n_jobs=1", "hydra.sweeper.study_name=preempt"]
    study_dir = tmp_path / "outputs" / "optuna" / "preempt"
    stop = threading.Event()
    releaser = threading.Thread(target=release_requeued_jobs, args=(stop,), daemon=True)
    with open(tmp_path / "sweep.log", "w") as log:
        proc = start_sweep(sweep_args(*args), tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            job = running_job()
            preempted_at = after_five_epochs(proc, study_dir / "0", tmp_path / "sweep.log")
            releaser.start()
            subprocess.run(["scontrol", "requeue", job], check=True)
            proc.wait(timeout=300)
        finally:
            stop.set()
            if releaser.is_alive():
                releaser.join()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    out = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    assert "taken over" not in out
    study = load_study(study_dir)
    assert len(study.trials) == 1
    assert [(t.number, t.state) for t in trained(study)] == [(0, TrialState.COMPLETE)]
    shown = slurm_jobs(study_dir)
    assert list(shown) == [job], shown  # one job: the requeued one kept its id
    assert shown[job]["JobState"] == "COMPLETED" and int(shown[job]["Restarts"]) == 1, shown[job]
    job_log = (study_dir / ".submitit" / job / f"{job}_0_log.err").read_text()
    assert "DUE TO JOB REQUEUE" in job_log and "TrialLost" not in job_log and "taken over" not in job_log
    run_log = (study_dir / "0" / "run.log").read_text()
    resumed = [int(e) for e in re.findall(r"resumed from \S+checkpoint\.pt at epoch (\d+)", run_log)]
    assert len(resumed) == 1 and preempted_at - 1 <= resumed[0] < 100, (preempted_at, run_log[-3000:])
    history = (study_dir / "0" / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in history] == list(range(1, 101))  # the whole history, once
    assert (metrics(study_dir / "0")["epochs"], metrics(study_dir / "0")["slurm_job_id"]) == (100, job)
    assert f"trial 0 (Slurm job {job}): completed, val_acc=" in out
    assert [p.name for p in run_folders(study_dir)] == ["0"]


KILL_WAIT = 35  # seconds: well past SLURM's KillWait (5 s in .ci/slurm-up's slurm.conf; 30 s by default)


def node_name() -> str:
    return subprocess.run(["sinfo", "-h", "-o", "%n"], capture_output=True, text=True).stdout.split()[0]


def release_after_the_node_is_back(stop: threading.Event, job: str) -> None:
    """After a node failure SLURM requeues the job with a later begin time. Started while the
    killed run's processes are still ending (SLURM's KillWait), it would meet them on the node
    and SLURM would drain the node: release it once they are gone and the node takes jobs."""
    queued_since = None
    while not stop.wait(1):
        pids = subprocess.run(["scontrol", "listpids", job], capture_output=True, text=True)
        alive = [line for line in pids.stdout.splitlines()[1:] if line.strip()]
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout.strip()
        held = subprocess.run(["squeue", "-h", "-j", job, "-o", "%t %r"], capture_output=True, text=True).stdout
        if not held.startswith("PD"):
            queued_since = None
            continue
        queued_since = queued_since or time.monotonic()
        # the killed run's steps end within KillWait (30 s by default) of the failure
        if not alive and state in ("idle", "mix") and time.monotonic() - queued_since > KILL_WAIT:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)


@on_cluster
@pytest.mark.slow
def test_a_trial_whose_node_fails_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    """The node of a running trial goes down (`scontrol update State=DOWN`, as SLURM marks a node
    that stops answering): SLURM kills the job and requeues it; once the node is back it starts
    run.py again in the trial's folder and the trial resumes from its checkpoint."""
    args = [*SLURM, "model.C=choice(8)", "epochs=100", "compile=false", "hydra.sweeper.n_trials=1"]
    args += ["hydra.sweeper.n_jobs=1", "hydra.sweeper.study_name=nodefail"]
    study_dir = tmp_path / "outputs" / "optuna" / "nodefail"
    node = node_name()
    stop = threading.Event()
    with open(tmp_path / "sweep.log", "w") as log:
        proc = start_sweep(sweep_args(*args), tmp_path, stdout=log, stderr=subprocess.STDOUT)
        releaser = None
        try:
            job = running_job()
            failed_at = after_five_epochs(proc, study_dir / "0", tmp_path / "sweep.log")
            releaser = threading.Thread(target=release_after_the_node_is_back, args=(stop, job), daemon=True)
            releaser.start()
            down = ["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=budgetsweep-test"]
            subprocess.run(down, check=True)
            proc.wait(timeout=300)
        finally:
            stop.set()
            if releaser is not None:
                releaser.join()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            # back in service for the next tests, whatever happened (refused when it already is)
            subprocess.run(["scontrol", "update", f"NodeName={node}", "State=RESUME"], capture_output=True)
    out = (tmp_path / "sweep.log").read_text()
    assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    assert "taken over" not in out
    study = load_study(study_dir)
    assert [(t.number, t.state) for t in trained(study)] == [(0, TrialState.COMPLETE)] and len(study.trials) == 1
    shown = slurm_jobs(study_dir)
    assert list(shown) == [job] and int(shown[job]["Restarts"]) >= 1, shown
    run_log = (study_dir / "0" / "run.log").read_text()
    resumed = [int(e) for e in re.findall(r"resumed from \S+checkpoint\.pt at epoch (\d+)", run_log)]
    assert len(resumed) == 1 and failed_at - 1 <= resumed[0] < 100, (failed_at, run_log[-3000:])
    history = (study_dir / "0" / "history.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in history] == list(range(1, 101))  # the whole history, once
    assert metrics(study_dir / "0")["slurm_job_id"] == job


@on_cluster
def test_the_cluster_script_is_idempotent():
    """CI runs .ci/slurm-up before the tests; running it on a cluster that is up changes nothing."""
    r = subprocess.run([str(ROOT / ".ci" / "slurm-up")], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    line = r"slurm: node \S+ (idle|mix|alloc) in partition debug \(\d+ CPUs, \d+ MB\)\n"
    assert re.fullmatch(line, r.stdout), r.stdout


# Without a cluster too: how the sweepers answer submitit's status query where sacct fails.


class Sacctless:
    """A `subprocess` module whose sacct fails as on a cluster without accounting."""

    PIPE = subprocess.PIPE
    CalledProcessError = subprocess.CalledProcessError

    def __init__(self, squeue: bytes | None) -> None:
        self.squeue, self.calls = squeue, []

    def check_output(self, args, **kwargs):
        self.calls.append(args)
        if args[0] == "squeue" and self.squeue is not None:
            return self.squeue
        raise subprocess.CalledProcessError(1, args, stderr=b"Slurm accounting storage is disabled\n")


SACCT = ["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", "7", "-j", "8"]  # as submitit asks


def test_a_failed_sacct_query_is_answered_from_squeue_in_sacct_format(caplog):
    from submitit.slurm.slurm import SlurmInfoWatcher

    from budgetsweep.sweeper import _compat

    fake = Sacctless(b"7|CANCELLED|n1\n8_1|RUNNING|n1\n8_2|PENDING|\n")
    wrapped = _compat._SacctSubprocess(fake)
    with caplog.at_level("WARNING"):
        out = wrapped.check_output(SACCT, shell=False)
        wrapped.check_output(SACCT, shell=False)
    assert fake.calls[1] == ["squeue", "--noheader", "--states=all", "--format=%i|%T|%N", "--jobs=7,8"]
    states = {job: info["State"] for job, info in SlurmInfoWatcher().read_info(out).items()}
    assert states == {"7": "CANCELLED", "8_1": "RUNNING", "8_2": "PENDING"}  # a finished job ends its wait
    said = [r.getMessage() for r in caplog.records if FROM_SQUEUE in r.getMessage()]
    assert said == [f"sacct: Slurm accounting storage is disabled; {FROM_SQUEUE}"]  # once


def test_without_squeue_the_error_says_why_sacct_failed():
    from budgetsweep.sweeper import _compat

    with pytest.raises(RuntimeError, match=r"^sacct: Slurm accounting storage is disabled$"):
        _compat._SacctSubprocess(Sacctless(None)).check_output(SACCT, shell=False)


def test_submitits_warning_of_a_failed_poll_shows_once_per_sweep(caplog):
    import logging

    from budgetsweep.sweeper import _compat

    logger = logging.getLogger("submitit")
    once = _compat._FirstOnly(_compat.SACCT_ERROR)
    logger.addFilter(once)
    try:
        with caplog.at_level("WARNING", logger="submitit"):
            for call in range(1, 4):
                logger.warning(f"Call #{call} - Bypassing sacct error x, status may be inaccurate.")
            logger.warning("Bypassing signal SIGTERM")
    finally:
        logger.removeFilter(once)
    shown = [r.getMessage() for r in caplog.records]
    assert shown == ["Call #1 - Bypassing sacct error x, status may be inaccurate.", "Bypassing signal SIGTERM"]
