"""Many sweep processes on one study: exact n_trials, no trial twice, and the database connections
they hold, on each storage meant for clusters.

    python benchmarks/many_workers.py [--workers 16 32] [--trials 200] [--storages postgres journal grpc]
                                      [--postgres URL]

`--workers` processes of `benchmarks/instant_app` (a foreign app whose trials return at once)
each run `hydra/sweeper=budget_optuna` on one study and one folder, started together:

    postgres  every worker connects to the database
    journal   a journal file in the study folder (`hydra.sweeper.storage=journal`)
    grpc      every worker talks to one `budgetsweep storage-proxy` in front of the database

Checked after each run: exactly n_trials trained trials, all COMPLETE, each launched by one
worker only, one folder per trial and no other. While it runs, the database's connections
(`pg_stat_activity`) are counted every 0.2 s; the most is reported. The database is `--postgres`
or, where PostgreSQL's binaries are installed, a throwaway server (the tests' own, with
PostgreSQL's default limit of 100 connections). Without one, postgres is left out and grpc
runs over SQLite.

The suite runs `run_workers` at a small size (tests/test_many_workers.py); rows for
benchmarks/RESULTS.md are printed at the end, with this command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "benchmarks" / "instant_app" / "app.py"
STORAGES = ("postgres", "journal", "grpc")
PG_MAX_CONNECTIONS = 100  # PostgreSQL's default: what a server holds unless its admin raised it


@dataclass
class WorkersRun:
    storage: str
    workers: int
    n_trials: int
    seconds: float
    connections: int | None  # the most database connections seen at once; None: no database
    launched: list[int]  # trial numbers in the workers' "launching" lines, all workers together
    trained: list[int]  # trained trials' numbers, from the study
    complete: int  # of those, COMPLETE
    folders: list[str]  # the run folders in the study folder

    def problems(self) -> str:
        """What is not exact, in words ("" when it is)."""
        twice = sorted({n for n in self.launched if self.launched.count(n) > 1})
        expected = list(range(self.n_trials))
        never = sorted(set(expected) - set(self.launched))
        found = [
            f"launched more than once: {twice}" if twice else "",
            f"never launched: {never}" if never else "",
            f"{len(self.trained)} trained trials" if self.trained != expected else "",
            f"{self.complete} complete" if self.complete != self.n_trials else "",
            f"folders {sorted(set(self.folders) ^ {str(n) for n in expected})} differ" if not self.exact else "",
        ]
        return "; ".join(f for f in found if f)

    @property
    def exact(self) -> bool:
        expected = list(range(self.n_trials))
        return (
            sorted(self.launched) == expected
            and self.trained == expected
            and self.complete == self.n_trials
            and self.folders == [str(n) for n in expected]
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ConnectionCounter:
    """The most connections to the database seen at once (this counter's own left out)."""

    def __init__(self, url: str) -> None:
        import psycopg2

        from budgetsweep.contract.storage import connect_url

        self.conn = psycopg2.connect(connect_url(url).replace("postgresql+psycopg2", "postgresql"))
        self.conn.autocommit = True
        self.most = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.count, daemon=True)

    def count(self) -> None:
        with self.conn.cursor() as cur:
            while not self.stopped.wait(0.2):
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                self.most = max(self.most, cur.fetchone()[0])

    def __enter__(self) -> ConnectionCounter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()
        self.conn.close()


@contextlib.contextmanager
def storage_proxy(database: str) -> Iterator[str]:
    """`budgetsweep storage-proxy` in front of `database`, for as long as the block runs: its spec."""
    from budgetsweep.contract.storage import PASSWORD_ENV, split_password

    port = free_port()
    shown, secret = split_password(database)  # the password in its variable, not on a command line `ps` shows
    proxy = subprocess.Popen(
        [sys.executable, "-m", "budgetsweep", "storage-proxy", shown, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, PASSWORD_ENV: secret} if secret else None,
    )
    try:
        assert proxy.stdout is not None
        line = proxy.stdout.readline()
        if "storage proxy for" not in line:
            raise RuntimeError(f"the storage proxy did not start: {line}{proxy.stdout.read()[-2000:]}")
        yield f"grpc://127.0.0.1:{port}"
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def run_workers(
    storage: str, workers: int, n_trials: int, where: Path, database: str | None = None, timeout: float = 600
) -> WorkersRun:
    """`workers` sweep processes of the instant app on one study in `where`, started together.
    `storage`: postgres or grpc (both need `database`, grpc uses SQLite in `where` without one),
    or journal. `database` must hold no study of this name yet."""
    name = f"many-{storage}-{workers}"
    study_dir = where / name
    with contextlib.ExitStack() as stack:
        if storage == "journal":
            spec = "journal"
        elif storage == "postgres":
            assert database, "postgres needs a database URL"
            spec = database
        else:
            spec = stack.enter_context(storage_proxy(database or f"sqlite:///{where / 'proxied.db'}"))
        counted = database is not None and storage != "journal"
        counter = stack.enter_context(ConnectionCounter(database)) if counted and database else None
        args = [
            sys.executable,
            str(APP),
            "-m",
            "hydra/sweeper=budget_optuna",
            "x=interval(-2,2)",
            "y=interval(-2,2)",
            f"hydra.sweeper.n_trials={n_trials}",
            f"hydra.sweeper.study_name={name}",
            f"hydra.sweeper.dir={study_dir}",
            f"hydra.sweeper.storage={spec}",
        ]
        env = {k: v for k, v in os.environ.items() if k != "INSTANT_STAMPS"}
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(args, cwd=where, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(workers)
        ]
        outputs = [p.communicate(timeout=timeout)[0] for p in procs]
        seconds = time.perf_counter() - t0
        for p, out in zip(procs, outputs):
            if p.returncode != 0:
                raise RuntimeError(f"a {storage} worker failed (exit {p.returncode}):\n{out[-3000:]}")
        trained, complete = _trained(study_dir, database if storage != "journal" else None)
    launched = [int(n) for out in outputs for n in re.findall(r"trial (\d+): launching", out)]
    folders = sorted((p.name for p in study_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=int)
    return WorkersRun(
        storage, workers, n_trials, seconds, counter.most if counter else None, launched, trained, complete, folders
    )


def _trained(study_dir: Path, database: str | None) -> tuple[list[int], int]:
    """(numbers of the trained trials, how many are COMPLETE), read from the study's own storage
    (the database behind a proxy, which is gone by now)."""
    import optuna
    from optuna.trial import TrialState

    from budgetsweep.contract.sweep import SLOT
    from budgetsweep.sweeper.optuna_storage import make_storage

    record = json.loads((study_dir / "study.json").read_text())
    spec = database or record["storage"]
    if record["storage"].startswith("grpc://") and database is None:
        spec = f"sqlite:///{study_dir.parent / 'proxied.db'}"
    study = optuna.load_study(study_name=record["study_name"], storage=make_storage(spec, existing=True))
    held = [t for t in study.get_trials(deepcopy=False) if t.system_attrs.get(SLOT) is True]
    return sorted(t.number for t in held), sum(t.state == TrialState.COMPLETE for t in held)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """A PostgreSQL server of the tests' (tests/helpers/postgres.py) where its binaries are
    installed: its URL; else None."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.postgres import pg_bin, postgres_server

    if pg_bin() is None:
        yield None
        return
    with postgres_server("many-workers", max_connections=PG_MAX_CONNECTIONS) as url:
        yield url


def fresh_database(server: str, name: str) -> str:
    """A new, empty database on the server: each run starts from nothing."""
    import psycopg2
    from sqlalchemy.engine import make_url

    from budgetsweep.contract.storage import connect_url

    conn = psycopg2.connect(connect_url(server).replace("postgresql+psycopg2", "postgresql"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--storages", nargs="+", choices=STORAGES, default=list(STORAGES))
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: a throwaway one, where installed)")
    args = parser.parse_args()

    runs: list[WorkersRun] = []
    with contextlib.ExitStack() as stack:
        server = args.postgres or stack.enter_context(throwaway_postgres())
        for n in args.workers:
            for storage in args.storages:
                if storage == "postgres" and server is None:
                    print("postgres: no server (--postgres URL, or install PostgreSQL): left out")
                    continue
                with tempfile.TemporaryDirectory(prefix="many-workers-") as tmp:
                    database = fresh_database(server, f"many_{storage}_{n}_{os.getpid()}") if server else None
                    run = run_workers(storage, n, args.trials, Path(tmp), database if storage != "journal" else None)
                runs.append(run)
                print(
                    f"{storage:8s} {n:3d} workers, {args.trials} trials: {run.seconds:6.1f} s, exact: {run.exact}, "
                    f"most connections: {run.connections if run.connections is not None else '-'}",
                    flush=True,
                )
                if not run.exact:
                    print(f"  not exact: {run.problems()}", flush=True)
    command = "python benchmarks/many_workers.py " + " ".join(sys.argv[1:])
    print(f"\n`{command.strip()}`\n")
    print("| storage | workers | n_trials | wall s | exact n_trials, each once | most DB connections |")
    print("|---|---:|---:|---:|---|---:|")
    for r in runs:
        conns = "-" if r.connections is None else str(r.connections)
        exact = "yes" if r.exact else "NO"
        print(f"| {r.storage} | {r.workers} | {r.n_trials} | {r.seconds:.1f} | {exact} | {conns} |")
    if not all(r.exact for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
