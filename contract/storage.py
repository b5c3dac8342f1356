"""Storage URLs: the password kept out of every config, log and report, and the one connect URL.

A password written in a storage URL (`postgresql://user:secret@host/db`) is taken out as
soon as a sweep starts: it lives in the environment variable `BUDGETSWEEP_STORAGE_PASSWORD`
(which jobs, local or on SLURM, inherit) and everything else (logs, `study.json`, each
job's `.hydra/hydra.yaml`, analysis reports, the command line a tracker records: `mask_args`)
sees the masked URL `postgresql://user:***@host/db`. Whoever connects (the sweeper, a job reporting to its
trial, analysis) calls `connect_url`, which puts the password back from that variable and
picks the same PostgreSQL driver for everyone. Imports SQLAlchemy only, lazily.

A study's storage is written as one string (a *storage spec*) wherever it travels: in the
sweeper's settings, each job's config, `study.json`. Besides database URLs:

    journal:<file>        Optuna's JournalStorage on a journal file (JournalFileBackend): many
                          processes on a shared filesystem, no database server (a SLURM cluster)
    grpc://<host>:<port>  Optuna's GrpcStorageProxy: workers talk to one proxy server
                          (`budgetsweep storage-proxy URL`), which holds the database connections
    {"_target_": ...}     any other `optuna.storages` storage, as a JSON config node

`storage_spec` turns a `_target_` node given in a config into that string (the shorthand where
one exists), `optuna_storage` opens a spec. Imports Optuna and Hydra only when a spec is opened.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from sqlalchemy.engine import URL

PASSWORD_ENV = "BUDGETSWEEP_STORAGE_PASSWORD"
STORAGE_ENV = "BUDGETSWEEP_STORAGE"  # conf/hydra/sweeper/optuna.yaml reads the storage URL from it
MASK = "***"
JOURNAL = "journal:"  # journal:<file>, a JournalStorage on that journal file
GRPC = "grpc://"  # grpc://<host>:<port>, a GrpcStorageProxy
# What a storage node's `_target_`s may name (Hydra's execution whitelist: a config names no other code)
STORAGE_TARGETS = ("optuna.storages.*",)
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
    return [scrub(mask_urls(arg)) for arg in args]


def mask_urls(text: str) -> str:
    """`text` with the password of every URL in it masked (`scheme://user:***@host`), nothing else
    changed: a config override may hold a password in a URL, and a path or a name may contain
    the same letters as a short password by chance."""
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)


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


def is_database_url(spec: str) -> bool:
    """Whether a storage spec is a database URL (Optuna's RDBStorage), not a journal, a gRPC
    proxy or a `_target_` node."""
    return not spec.startswith((JOURNAL, GRPC, "{"))


class StorageSpecError(ValueError):
    """A storage that is neither a URL, a shorthand nor a `_target_` node of a storage; one line."""


def storage_spec(value: Any) -> str:
    """`hydra.sweeper.storage` as one string: a string as given; a `_target_` node (a mapping,
    OmegaConf's included, resolved) as its shorthand (`journal:<file>`, `grpc://host:port`, the
    URL of an RDBStorage) where its arguments fit one, else as JSON."""
    if isinstance(value, str):
        return value
    node = _plain(value)
    if not isinstance(node, dict) or not isinstance(node.get("_target_"), str):
        raise StorageSpecError(f"expected a storage URL or a node with _target_, got {value!r}")
    return _shorthand(node) or json.dumps(node, sort_keys=True)


def _plain(value: Any) -> Any:
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf comes with hydra-core
        pass
    return value


def _called(node: Any, name: str, *keys: str) -> bool:
    """Whether `node` is a `_target_` node of a class named `name` with only these arguments."""
    return (
        isinstance(node, dict)
        and str(node.get("_target_", "")).rsplit(".", 1)[-1] == name
        and set(node) - {"_target_"} <= set(keys)
    )


def _shorthand(node: dict) -> str | None:
    if _called(node, "RDBStorage", "url") and isinstance(node.get("url"), str):
        return node["url"]
    if _called(node, "GrpcStorageProxy", "host", "port"):
        return f"{GRPC}{node.get('host', 'localhost')}:{node.get('port', 13000)}"
    backend = node.get("log_storage") or {}
    if _called(node, "JournalStorage", "log_storage") and _called(backend, "JournalFileBackend", "file_path"):
        return f"{JOURNAL}{backend.get('file_path')}"
    return None


def journal_file(spec: str, create: bool = True) -> Path:
    """The file of a `journal:<file>` spec; unless `create`, one that exists (StorageSpecError):
    reading a study must never make an empty one."""
    path = Path(spec[len(JOURNAL) :])
    if not create and not path.exists():
        raise StorageSpecError(f"{spec}: no such journal file")
    return path


def locate(spec: str, base_dir: str | Path | None = None) -> str:
    """The spec to connect with: a database URL through `connect_url`; a journal file that is not
    where the spec says (a study folder copied from a cluster) looked up by name in `base_dir`."""
    if is_database_url(spec):
        return connect_url(spec, base_dir)
    if spec.startswith(JOURNAL) and base_dir is not None:
        path = journal_file(spec)
        if not path.exists() and (Path(base_dir) / path.name).exists():
            return f"{JOURNAL}{(Path(base_dir) / path.name).resolve()}"
    return spec


PROXY_WAIT = 5.0  # seconds to wait for a gRPC storage proxy to answer


def optuna_storage(spec: str, *, create: bool = False, wait: float | None = None) -> str | BaseStorage:
    """What Optuna's `storage=` takes for a spec: a database URL to connect with (password put
    back), or the storage object. A journal file that does not exist is refused unless `create`
    (the sweeper starting a study): reading a study must never make an empty one. A gRPC proxy
    that does not answer within `wait` seconds (None: PROXY_WAIT) is refused."""
    if spec.startswith(JOURNAL):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(journal_file(spec, create=create))))
    if spec.startswith(GRPC):
        from urllib.parse import urlsplit

        from optuna.storages import GrpcStorageProxy

        where = urlsplit(spec)
        try:
            host, port = where.hostname, where.port
        except ValueError:
            host, port = None, None
        if not host or port is None:
            raise StorageSpecError(f"{spec}: expected grpc://<host>:<port>")
        import warnings

        from optuna.exceptions import ExperimentalWarning

        with warnings.catch_warnings():  # experimental since Optuna 4.2: said once, in the docs
            warnings.simplefilter("ignore", ExperimentalWarning)
            proxy = GrpcStorageProxy(host=host, port=port)
        wait = PROXY_WAIT if wait is None else wait
        try:
            proxy.wait_server_ready(timeout=wait)
        except ConnectionError:
            raise StorageSpecError(
                f"{spec}: no storage proxy answered within {wait:g} s (start one with: budgetsweep "
                f"storage-proxy <database URL> --host <host> --port <port>)"
            ) from None
        return proxy
    if spec.startswith("{"):
        try:
            node = json.loads(spec)
        except json.JSONDecodeError as e:
            raise StorageSpecError(f"{spec}: not a JSON storage node ({e})") from None
        from hydra.utils import instantiate
        from optuna.storages import BaseStorage

        storage = instantiate(node, _execution_whitelist_=STORAGE_TARGETS)
        if not isinstance(storage, BaseStorage):
            raise StorageSpecError(f"{node['_target_']}: not an optuna.storages storage")
        return storage
    return connect_url(spec)
