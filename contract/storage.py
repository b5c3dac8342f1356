"""Storage URLs: the password kept out of every config, log and report, and the one connect URL.

A password written in a storage URL (`postgresql://user:secret@host/db`) is taken out as
soon as a sweep starts: it lives in the environment variable `BUDGETSWEEP_STORAGE_PASSWORD`
(which jobs, local or on SLURM, inherit) and everything else (logs, `study.json`, each
job's `.hydra/hydra.yaml`, analysis reports, the command line a tracker records: `mask_args`)
sees the masked URL `postgresql://user:***@host/db`. Whoever connects (the sweeper, a job reporting to its
trial, analysis) calls `connect_url`, which puts the password back from that variable and
picks the same PostgreSQL driver for everyone. Imports SQLAlchemy only, lazily.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

PASSWORD_ENV = "BUDGETSWEEP_STORAGE_PASSWORD"
STORAGE_ENV = "BUDGETSWEEP_STORAGE"  # conf/hydra/sweeper/optuna.yaml reads the storage URL from it
MASK = "***"
# `scheme://user:` + a password up to the last `@` of the authority: any URL inside a longer
# text (an override `key=URL`, quoted or not); a password holds no `/` nor whitespace once encoded
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@'\"]*:)[^\s/'\"]+@")


def _parse(url: str) -> URL:
    from sqlalchemy.engine import make_url

    return make_url(url)


def split_password(url: str) -> tuple[str, str | None]:
    """(the URL with its password masked, the password or None). Not a URL: returned as is."""
    try:
        parsed = _parse(url)
    except Exception:  # not a database URL: nothing to hide, the caller reports it
        return url, None
    if parsed.password is None or parsed.password == MASK:
        return url, None
    return parsed.render_as_string(hide_password=True), str(parsed.password)


@overload
def mask(url: str) -> str: ...
@overload
def mask(url: None) -> None: ...
def mask(url: str | None) -> str | None:
    """The URL with its password masked (None stays None)."""
    return None if url is None else split_password(url)[0]


def scrub(text: str, secret: str | None = None) -> str:
    """`text` with every form of the password (given, else $BUDGETSWEEP_STORAGE_PASSWORD; also
    URL-encoded) replaced by the mask: for messages that may quote a URL or a server's error."""
    secret = secret or os.environ.get(PASSWORD_ENV)
    if not secret:
        return text
    from urllib.parse import quote, quote_plus

    for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
        text = text.replace(form, MASK)
    return text


def mask_args(args: list[str]) -> list[str]:
    """A command line with every URL password in it masked and $BUDGETSWEEP_STORAGE_PASSWORD
    scrubbed: what a tool that records the command line (W&B's run metadata) may see. The
    sweeper moves a storage password out of its config, but not out of its process's argv."""
    return [scrub(_URL_PASSWORD.sub(rf"\g<1>{MASK}@", arg)) for arg in args]


def _driver(drivername: str) -> str:
    """SQLAlchemy 2.1 maps plain `postgresql` to psycopg (3); use psycopg2 (our `postgres`
    extra) when only that one is installed. Every process that opens a URL goes through here,
    so the sweeper, its jobs and analysis agree."""
    if (
        drivername == "postgresql"
        and importlib.util.find_spec("psycopg") is None
        and importlib.util.find_spec("psycopg2") is not None
    ):
        return "postgresql+psycopg2"
    return drivername


def connect_url(url: str, base_dir: str | Path | None = None) -> str:
    """The URL to connect with: the masked password replaced by $BUDGETSWEEP_STORAGE_PASSWORD (or
    dropped, so that libpq's PGPASSWORD / ~/.pgpass apply), the PostgreSQL driver chosen, and a
    relative SQLite path that does not exist here looked up in `base_dir` (a study folder)."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path = Path(url[len(prefix) :])
        if (
            not path.is_absolute()
            and not path.exists()
            and base_dir is not None
            and (Path(base_dir) / path.name).exists()
        ):
            return sqlite_url(Path(base_dir) / path.name)
        return url
    try:
        parsed = _parse(url)
    except Exception:  # not a URL SQLAlchemy reads: Optuna will say so
        return url
    from sqlalchemy.engine import URL

    password = os.environ.get(PASSWORD_ENV) if parsed.password == MASK else parsed.password
    # URL.create, not URL.set: set(password=None) keeps the old password (the mask)
    return URL.create(
        _driver(parsed.drivername), parsed.username, password, parsed.host, parsed.port, parsed.database, parsed.query
    ).render_as_string(hide_password=False)


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"
