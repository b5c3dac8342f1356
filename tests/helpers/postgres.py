"""A throwaway PostgreSQL server for tests, from Debian's `postgresql` package (.ci/run installs it).

`postgres_server()` runs initdb + pg_ctl in a fresh temporary directory, on a free local port,
with password authentication (scram-sha-256) for one superuser, and yields its URL; the server
is stopped and the directory removed afterwards. initdb refuses to run as root, so under root
the server runs as the `postgres` system user. `pg_bin()` is None where the binaries are absent:
the tests then skip, saying why (`postgres_server` does it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

USER, DATABASE = "budgetsweep", "postgres"


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    return (
        [runuser, "-u", "postgres", "--", *cmd]
        if runuser
        else ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(map(repr, cmd))]
    )


@contextlib.contextmanager
def postgres_server(password: str, max_connections: int = 50) -> Iterator[str]:
    """Yields postgresql://budgetsweep:<password>@127.0.0.1:<port>/postgres; skips the test, saying
    why, where the server's binaries are absent."""
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="budgetsweep-pg-"))  # not under pytest's 0700 tmp: postgres must enter it
    try:
        (root / "pw").write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(root / "pw", "postgres", "postgres")
        data, port = root / "data", free_port()

        def run(cmd):
            return subprocess.run(_as_server_user(cmd), check=True, capture_output=True, text=True, timeout=120)

        run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={root / 'pw'}",
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections={max_connections}",
                "start",
            ]
        )
        try:
            yield f"postgresql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"
        finally:
            subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
