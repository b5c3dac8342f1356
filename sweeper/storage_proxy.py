"""`budgetsweep storage-proxy URL`: Optuna's gRPC storage proxy in front of one database.

Hundreds of workers each holding database connections can exhaust a server's connection limit;
behind the proxy they hold none (`hydra.sweeper.storage=grpc://<host>:<port>`), and the proxy
holds the few it needs. It serves the sweeper's own storage for the URL: on SQLite the lock that
gives a queued trial to one worker only, and on any database the retries over an outage.
Optuna's proxy has no call for heartbeats: workers behind it beat through a trial attribute
(`budgetsweep.sweeper.heartbeat`).

    budgetsweep storage-proxy postgresql://user@db-host/optuna --host 0.0.0.0 --port 13000
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

from budgetsweep.contract import first_line
from budgetsweep.contract.storage import PASSWORD_ENV, is_database_url, mask, scrub, split_password


def main(argv: Sequence[str] | None = None, prog: str = "budgetsweep storage-proxy") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("url", help=f"the database URL (a password may be left out and set in ${PASSWORD_ENV})")
    parser.add_argument("--host", default="localhost", help="where to listen (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=13000)
    args = parser.parse_args(argv)
    if not is_database_url(args.url):
        print(f"storage-proxy: error: {args.url}: expected a database URL", file=sys.stderr)
        return 2
    import os

    shown, secret = split_password(args.url)
    if secret:
        os.environ[PASSWORD_ENV] = secret
    try:
        import optuna
        from optuna.exceptions import ExperimentalWarning
        from optuna.storages import run_grpc_proxy_server

        from .optuna_storage import make_storage, retry_seconds

        # Optuna's trial cache in front of the database (what its docs ask of a proxy): each
        # worker's read asks for the new and unfinished trials, and the proxy would otherwise
        # read the whole study from the database to answer it
        storage = optuna.storages.get_storage(make_storage(shown, retry_for=retry_seconds()))
    except ImportError as e:
        print(f"storage-proxy: error: {first_line(e)} (pip install 'budgetsweep[grpc]')", file=sys.stderr)
        return 2
    except Exception as e:  # a server that cannot be reached, a bad URL
        print(f"storage-proxy: error: {mask(args.url)}: {scrub(first_line(e), secret)}", file=sys.stderr)
        return 2
    print(f"storage proxy for {shown} on grpc://{args.host}:{args.port}; Ctrl-C stops", flush=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            run_grpc_proxy_server(storage, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
