"""Several sweep processes on one study, on each storage meant for clusters: a PostgreSQL server
(started by the test), a journal file, and the gRPC storage proxy in front of that server. The
study ends with exactly n_trials trained trials, each launched by one worker only, one folder per
trial; behind the proxy the workers hold no database connection of their own. The same runs at
16 and 32 workers are `benchmarks/many_workers.py` (rows in benchmarks/RESULTS.md)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from helpers import ROOT, postgres_server

pytestmark = [pytest.mark.slow]

WORKERS, N_TRIALS = 4, 8


def _benchmark():
    spec = importlib.util.spec_from_file_location("many_workers", ROOT / "benchmarks" / "many_workers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["many_workers"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


many_workers = _benchmark()


@pytest.fixture(scope="module")
def server():
    with postgres_server("many-workers-pw") as url:
        yield url


@pytest.fixture(scope="module")
def runs(server, tmp_path_factory):
    """One run on each storage, on a database of its own."""
    done = {}
    for storage in many_workers.STORAGES:
        where = tmp_path_factory.mktemp(storage)
        database = None if storage == "journal" else many_workers.fresh_database(server, f"db_{storage}")
        done[storage] = many_workers.run_workers(storage, WORKERS, N_TRIALS, where, database)
    return done


@pytest.mark.parametrize("storage", many_workers.STORAGES)
def test_workers_on_one_study_train_exactly_n_trials_each_once(runs, storage):
    run = runs[storage]
    assert sorted(run.launched) == list(range(N_TRIALS))  # no trial launched twice, none left out
    assert run.trained == list(range(N_TRIALS)) and run.complete == N_TRIALS
    assert run.folders == [str(n) for n in range(N_TRIALS)]
    assert run.exact


def test_behind_the_proxy_the_workers_hold_no_database_connection(runs):
    direct, proxied = runs["postgres"].connections, runs["grpc"].connections
    assert direct >= WORKERS  # each worker (and its jobs' reporters) connects
    assert proxied < direct  # the proxy's own pool, whatever the number of workers
