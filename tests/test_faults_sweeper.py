"""Faults around the Optuna sweeper with real processes and real servers: Ctrl-C (SIGINT to the
process group) under joblib, a worker paused past the grace period (SIGSTOP/SIGCONT) while
another takes its trial, a PostgreSQL server stopped and restarted mid-sweep, a full disk.

Each test asserts what the user relies on: nothing finished is lost or overwritten, nothing is
counted twice, the sweep that stops says why in one line, and the rerun completes the study
with exactly n_trials trained trials. The fast tests at the end check the job's side (the
claim check of budgetsweep.sweeper.trial_reporter) without a sweep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from budgetsweep.contract.run import FAILED_STATUSES
from budgetsweep.contract.storage import PASSWORD_ENV, sqlite_url
from budgetsweep.contract.sweep import OWNER
from budgetsweep.sweeper.optuna_storage import make_storage
from budgetsweep.sweeper.slots import Slots
from budgetsweep.sweeper.trial_reporter import TrialLost, TrialReporter

from helpers import env, load_study, metrics, pg_bin, postgres_server, run_folders, start_sweep, sweep_args, trained

optuna.logging.set_verbosity(optuna.logging.WARNING)

LR = "optimizer.lr=tag(log,interval(1e-3,1e-1))"
FILES = ("metrics.json", "history.csv", "weights.pt", "checkpoint.pt")  # what a run produced


# ----------------------------------------------------------------------------------- helpers
class Sweep:
    """A sweep process in its own process group (so that signals reach its jobs too), its output in files."""

    def __init__(self, cwd: Path, args: list[str], name: str, **extra_env: str) -> None:
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = start_sweep(args, cwd, out, err, **extra_env)

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def message(self) -> list[str]:
        """What the user reads on stderr besides Optuna's own log lines."""
        return [line for line in self.err.read_text().splitlines() if line.strip() and not line.startswith("[")]

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True


def wait_for(condition, timeout: float, what: str, sweep: Sweep | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if sweep is not None and sweep.proc.poll() is not None:
            raise AssertionError(f"the sweep ended before {what}:\n{sweep.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def pause_outside_a_write(sweep: Sweep, db: Path) -> None:
    """SIGSTOP the worker at a moment none of its processes holds the SQLite write lock: stopped
    inside a write transaction, it would hold the lock, and with it every other worker of the
    study, until it continues (SQLite's limit, not the sweeper's; PostgreSQL locks rows)."""
    for _ in range(50):
        sweep.signal(signal.SIGSTOP)
        time.sleep(0.2)
        with contextlib.closing(sqlite3.connect(db, timeout=0.5)) as conn:
            try:
                conn.execute("BEGIN EXCLUSIVE")  # no reader either: a stopped reader would block commits
                conn.rollback()
                return
            except sqlite3.OperationalError:  # locked: let it finish its write, then try again
                pass
        sweep.signal(signal.SIGCONT)
        time.sleep(0.3)
    raise AssertionError("the worker always held the database's write lock")


def folders(study_dir: Path) -> list[Path]:
    return run_folders(study_dir) if study_dir.exists() else []


def failed(run: Path) -> bool:
    return metrics(run)["status"] in FAILED_STATUSES


def snapshot(runs: list[Path]) -> dict:
    """Every result file of these runs: (bytes, mtime). Logs may grow; results may not change."""
    return {f: (f.read_bytes(), f.stat().st_mtime_ns) for run in runs for f in run.iterdir() if f.name in FILES}


def assert_exact(study_dir: Path, n_trials: int) -> None:
    """The study holds exactly n_trials trained trials, each completed once in its own folder."""
    study = load_study(study_dir)
    done = trained(study)
    assert sorted(t.number for t in done) == list(range(n_trials))
    assert all(t.state == TrialState.COMPLETE for t in done), [(t.number, t.state) for t in done]
    assert [p.name for p in folders(study_dir)] == [str(n) for n in range(n_trials)]
    for t in done:
        m = metrics(study_dir / str(t.number))
        assert m["status"] == "completed" and m["trial"] == t.number
        assert m["epochs"] == m["epochs_planned"]  # every epoch once: none lost, none twice


# ---------------------------------------------------------------------------- Ctrl-C, joblib
@pytest.mark.slow
def test_ctrl_c_under_joblib_stops_in_seconds_with_one_line_and_the_rerun_completes_the_study(tmp_path):
    n_trials = 3
    args = sweep_args(
        "epochs=8",
        "data.n_train=480",
        LR,
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.study_name=ctrlc",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
    )
    study_dir = tmp_path / "outputs" / "optuna" / "ctrlc"
    sweep = Sweep(tmp_path, args, "first")
    try:  # Ctrl-C once two trials are training in their worker processes, past their first epoch
        wait_for(
            lambda: sum((p / "checkpoint.pt").exists() for p in folders(study_dir)) >= 2,
            240,
            "two trials with a checkpoint",
            sweep,
        )
        unfinished = [p for p in folders(study_dir) if not (p / "metrics.json").exists()]
        sweep.signal(signal.SIGINT)
        interrupted = time.monotonic()
        rc = sweep.wait(timeout=60)
        took = time.monotonic() - interrupted
        wait_for(lambda: not sweep.group_alive(), 10, "the joblib workers to end")
    finally:
        sweep.kill()
    assert took < 10, f"Ctrl-C took {took:.1f} s"
    assert rc != 0
    assert "Traceback" not in sweep.output()
    (line,) = sweep.message()
    assert "interrupted" in line and "queued again" in line and "Rerun the same command" in line
    assert len(unfinished) >= 2
    assert not any((p / "metrics.json").exists() for p in unfinished)  # no job wrote after the hand-back
    finished = snapshot([p for p in folders(study_dir) if p not in unfinished])

    rerun = subprocess.run(args, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_exact(study_dir, n_trials)
    assert snapshot(list(finished and {f.parent for f in finished})) == finished
    for run in unfinished:  # handed back at once: resumed from its checkpoint, no grace period waited
        assert "resumed from" in (run / "run.log").read_text()


# -------------------------------------------------------------------- a worker paused too long
@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_worker_paused_past_the_grace_period_stops_its_lost_trial_and_overwrites_nothing(tmp_path, launcher):
    args = sweep_args(
        "epochs=10",
        "data.n_train=480",
        LR,
        "hydra.sweeper.n_trials=1",
        "hydra.sweeper.study_name=paused",
        "hydra.sweeper.heartbeat.interval=1",
        "hydra.sweeper.heartbeat.grace_period=3",
        *(["hydra/launcher=joblib", "hydra.launcher.n_jobs=1"] if launcher == "joblib" else []),
    )
    study_dir = tmp_path / "outputs" / "optuna" / "paused"
    run = study_dir / "0"
    paused = Sweep(tmp_path, args, "paused")
    other = None
    try:
        wait_for(lambda: (run / "checkpoint.pt").exists(), 240, "trial 0's first checkpoint", paused)
        pause_outside_a_write(paused, study_dir / "study.db")  # Ctrl-Z: every process of the worker stops
        other = Sweep(tmp_path, args, "other")  # takes the trial once its heartbeat is stale, finishes it
        assert other.wait(timeout=300) == 0, other.output()[-3000:]
        assert "trial 0: its process stopped" in other.output()
        done = snapshot([run])
        assert metrics(run)["status"] == "completed" and set(done) >= {run / "metrics.json", run / "history.csv"}
        paused.signal(signal.SIGCONT)
        rc = paused.wait(timeout=120)
    finally:
        paused.kill()
        if other is not None:
            other.kill()
    out = paused.output()
    assert "Traceback" not in out and "UpdateFinishedTrialError" not in out, out[-3000:]
    assert "trial 0: taken over by another worker" in out
    assert rc == 0, out[-3000:]  # its study is complete: the other worker's result stands
    assert snapshot([run]) == done  # not one result file written again
    assert not list(run.glob(".*.tmp"))
    study = load_study(study_dir)
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["status"] == "completed"
    assert_exact(study_dir, 1)


# ------------------------------------------------------------------------- PostgreSQL outages
@pytest.fixture
def pg(monkeypatch):
    with postgres_server("pw-outage") as url:
        monkeypatch.setenv(PASSWORD_ENV, "pw-outage")  # for this test's own look at the study (study.json masks it)
        yield PgControl(url)


class PgControl:
    """Stop and start the test's PostgreSQL server (its data folder and options read from the server)."""

    def __init__(self, url: str) -> None:
        import psycopg2

        self.url = url
        with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SHOW data_directory")
            self.data = cur.fetchone()[0]
            cur.execute("SHOW unix_socket_directories")
            self.sockets = cur.fetchone()[0]
            cur.execute("SHOW port")
            self.port = cur.fetchone()[0]

    def pg_ctl(self, *args: str) -> None:
        cmd = [str(pg_bin() / "pg_ctl"), "-D", self.data, "-w", *args]
        if os.geteuid() == 0:
            cmd = [shutil.which("runuser") or "runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        self.pg_ctl("-l", str(Path(self.data).parent / "server.log"), "-o", options, "start")


def pg_args(name: str, n_trials: int, epochs: int = 3) -> list[str]:
    return sweep_args(
        f"epochs={epochs}",
        "data.n_train=480",
        LR,
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweeper.study_name={name}",
        "hydra.sweeper.heartbeat.interval=1",
        "hydra.sweeper.heartbeat.grace_period=3",
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_outage_of_seconds_is_waited_out_and_the_study_ends_exact(tmp_path, pg):
    n_trials = 3
    study_dir = tmp_path / "outputs" / "optuna" / "outage"
    sweep = Sweep(tmp_path, pg_args("outage", n_trials), "sweep", BUDGETSWEEP_STORAGE=pg.url)
    try:  # the server goes away while trial 1 trains, and stays away past that trial's end
        wait_for(lambda: (study_dir / "1" / "history.csv").exists(), 240, "trial 1 training", sweep)
        pg.stop()
        time.sleep(8)
        pg.start()
        rc = sweep.wait(timeout=300)
    finally:
        sweep.kill()
    out = sweep.output()
    assert rc == 0, out[-3000:]
    assert "unreachable" in out and "reachable again" in out
    assert "Traceback" not in out
    assert_exact(study_dir, n_trials)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_outage_past_the_retries_ends_with_one_line_and_the_rerun_completes(tmp_path, pg):
    n_trials = 2
    args = pg_args("down", n_trials, epochs=8)  # trial 0 still trains when the server stops, on a fast machine too
    study_dir = tmp_path / "outputs" / "optuna" / "down"
    sweep = Sweep(tmp_path, args, "sweep", BUDGETSWEEP_STORAGE=pg.url, BUDGETSWEEP_STORAGE_RETRY="3")
    try:
        wait_for(lambda: (study_dir / "0" / "history.csv").exists(), 240, "trial 0 training", sweep)
        pg.stop()
        rc = sweep.wait(timeout=120)
    finally:
        sweep.kill()
        pg.start()
    assert rc != 0
    assert "Traceback" not in sweep.output()
    (line,) = sweep.message()
    assert "unreachable for 3 s" in line and "rerun the same command" in line and "pw-outage" not in line
    rerun = subprocess.run(args, cwd=tmp_path, env=env(BUDGETSWEEP_STORAGE=pg.url), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "trial 0: its process stopped" in rerun.stdout  # its heartbeat went stale: queued again, resumed
    assert_exact(study_dir, n_trials)


# ---------------------------------------------------------------------------------- full disk
@contextlib.contextmanager
def small_disk(path: Path, size_kb: int):
    """A tmpfs of size_kb mounted at path (root only), or None where one cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.slow
def test_a_full_disk_ends_the_sweep_with_one_line_and_the_rerun_completes_the_study(tmp_path):
    n_trials = 3
    root = tmp_path / "disk"
    with small_disk(root, 2048) as mounted:
        if not mounted:
            pytest.skip("cannot mount a small tmpfs here (not root, or no mount permission)")
        args = [*pg_args("full", n_trials), f"hydra.sweeper.dir={root / 'study'}"]
        filler = root / "filler"
        sweep = Sweep(tmp_path, args, "full")
        try:  # once trial 0 is done, the disk fills up: trial 1 cannot write its checkpoint
            wait_for(lambda: (root / "study" / "0" / "metrics.json").exists(), 240, "trial 0's end", sweep)
            free = shutil.disk_usage(root).free
            filler.write_bytes(b"\0" * max(free - 16 * 1024, 0))
            rc = sweep.wait(timeout=240)
        finally:
            sweep.kill()
        assert rc != 0
        assert "Traceback" not in sweep.output()
        (line,) = sweep.message()
        assert "the disk is full" in line and "rerun the same command" in line
        # a trial that failed for want of space may have written its failed metrics.json: the rerun
        # trains it again; a run that ended well must stay as it is
        finished = snapshot([p for p in folders(root / "study") if (p / "metrics.json").exists() and not failed(p)])
        study = load_study(root / "study")
        assert not [t for t in study.trials if t.state == TrialState.FAIL]  # the disk's fault, no trial's

        filler.unlink()
        rerun = subprocess.run(args, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert_exact(root / "study", n_trials)
        assert {f: v for f, v in snapshot(list({f.parent for f in finished})).items() if f in finished} == finished


# ------------------------------------------------------------------ the job's side, no sweep
@pytest.fixture
def claimed(tmp_path):
    """A study with one RUNNING trial claimed by a worker: (storage URL, slots, trial id, claim)."""
    url = sqlite_url(tmp_path / "study.db")
    storage = make_storage(url)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    trial = study.ask()
    slots = Slots(storage, "s", n_trials=1)
    trial_id = slots.trial_id(trial.number)
    assert slots.take(trial_id, trial.number)
    return url, slots, trial_id, slots.claim(trial_id)


def test_the_job_stops_at_its_next_epoch_once_another_worker_claimed_its_trial(claimed):
    url, slots, trial_id, claim = claimed
    reporter = TrialReporter(url, "s", 0, None, claim=claim)
    assert reporter.report(1, 0.5) is False  # still ours: reported, trains on
    slots.requeue(trial_id)
    slots.claim_queued()
    slots.claim(trial_id)  # another worker's claim
    with pytest.raises(TrialLost):
        reporter.report(2, 0.6)
    assert not isinstance(TrialLost("x"), Exception)  # the trainer's `except Exception` lets it through


def test_the_job_stops_once_its_trial_was_finished_by_another_worker(claimed):
    url, slots, trial_id, claim = claimed
    reporter = TrialReporter(url, "s", 0, None, claim=claim)
    slots.storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.9])
    with pytest.raises(TrialLost):
        reporter.report(1, 0.5)


def test_a_continued_process_checks_its_claim_at_once_not_at_the_epochs_end(claimed):
    url, slots, trial_id, claim = claimed
    reporter = TrialReporter(url, "s", 0, None, claim=claim)
    os.kill(os.getpid(), signal.SIGCONT)  # still ours: nothing happens
    slots.storage.set_trial_system_attr(trial_id, OWNER, "another worker")
    with pytest.raises(TrialLost):
        os.kill(os.getpid(), signal.SIGCONT)  # the handler runs in this thread, before the next line
        time.sleep(0.5)
    del reporter


def test_a_process_continued_during_a_storage_call_checks_its_claim_when_the_call_returns(claimed, monkeypatch):
    url, slots, trial_id, claim = claimed
    reporter = TrialReporter(url, "s", 0, None, claim=claim)
    connect = reporter.connect

    def stopped_and_continued_while_connecting():
        slots.storage.set_trial_system_attr(trial_id, OWNER, "another worker")  # taken while this one was stopped
        os.kill(os.getpid(), signal.SIGCONT)  # the handler cannot query now: the report's own call is under way
        return connect()

    monkeypatch.setattr(reporter, "connect", stopped_and_continued_while_connecting)
    with pytest.raises(TrialLost):  # before report() returns to the trainer, which would write the epoch
        reporter.report(1, 0.5)
    del reporter
