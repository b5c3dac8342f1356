"""Storage URLs: the default SQLite file, keeping the password out of every config and log.

A password written in `hydra.sweeper.storage` (`postgresql://user:secret@host/db`) is taken
out of the URL as soon as the sweep starts: the sweeper keeps it in the environment variable
`BUDGETSWEEP_STORAGE_PASSWORD` (which its jobs, local or on SLURM, inherit) and everything
else (logs, `study.json`, each job's `.hydra/hydra.yaml` and overrides) sees the masked URL
`postgresql://user:***@host/db`. Whoever connects calls `connect_url`, which puts the
password back from that variable; without it the URL goes out with no password, so libpq's
own `PGPASSWORD` or `~/.pgpass` apply. Imports SQLAlchemy only, lazily.
"""
from __future__ import annotations

import os
from pathlib import Path

PASSWORD_ENV = "BUDGETSWEEP_STORAGE_PASSWORD"
MASK = "***"


def _url(url: str):
    from sqlalchemy.engine import make_url

    return make_url(url)


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL with its password masked, the password or None). Not a URL: returned as is."""
    try:
        parsed = _url(url)
    except Exception:  # not a database URL: nothing to hide, the caller reports it
        return url, None
    if parsed.password is None or parsed.password == MASK:
        return url, None
    return parsed.render_as_string(hide_password=True), str(parsed.password)


def mask(url: str | None) -> str | None:
    return None if url is None else split_password(url)[0]


def connect_url(url: str) -> str:
    """The URL to connect with: a masked password is replaced by $BUDGETSWEEP_STORAGE_PASSWORD,
    or dropped when that is unset (libpq then reads PGPASSWORD / ~/.pgpass)."""
    from sqlalchemy.engine import URL

    parsed = _url(url)
    if parsed.password != MASK:
        return url
    return URL.create(parsed.drivername, parsed.username, os.environ.get(PASSWORD_ENV), parsed.host, parsed.port,
                      parsed.database, parsed.query).render_as_string(hide_password=False)


def scrub(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` (also URL-encoded) replaced by the mask."""
    if not secret:
        return text
    from urllib.parse import quote, quote_plus

    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(form, MASK)
    return text


def _with_driver(url: str) -> str:
    """`postgresql://` means psycopg (3) to SQLAlchemy 2.1; use psycopg2 (our `postgres` extra)
    when only that one is installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def make_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None):
    """An Optuna RDBStorage for `url` (masked or not), with a long SQLite lock timeout so parallel
    jobs reporting their epochs wait for each other instead of failing."""
    kwargs: dict = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    storage = _storage_class()(_with_driver(connect_url(url)), engine_kwargs=kwargs)
    # Heartbeats are recorded by the sweeper for the jobs it runs, not by Study.optimize:
    # the values drive `_get_stale_trial_ids`, while `get_heartbeat_interval` stays None so that
    # `Study.ask` does not warn that heartbeats belong to `optimize`.
    storage.heartbeat_interval, storage.grace_period = heartbeat_interval, grace_period
    return storage


_STORAGE_CLASS: list = []


def _storage_class():
    """RDBStorage whose heartbeat settings are ours (see make_storage); defined on first use."""
    if not _STORAGE_CLASS:
        from optuna.storages import RDBStorage

        class SweepStorage(RDBStorage):
            def get_heartbeat_interval(self) -> int | None:
                return None

        _STORAGE_CLASS.append(SweepStorage)
    return _STORAGE_CLASS[0]
