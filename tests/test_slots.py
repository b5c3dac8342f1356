"""n_trials across workers (budgetsweep.sweeper.slots) against real storages, without Hydra: an
SQLite file, a journal file, and a gRPC storage proxy (in this process, over SQLite).

Two "workers" are two storage objects on one study, as two sweeper processes would be: each
asks trials from its own study object and takes, refuses, claims and re-queues through its
own storage, so every decision goes through the shared storage."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from budgetsweep.contract.storage import sqlite_url
from budgetsweep.contract.sweep import SLOT
from budgetsweep.sweeper import slots as slots_module
from budgetsweep.sweeper.optuna_storage import make_storage
from budgetsweep.sweeper.slots import Slots

from helpers import free_port

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def empty_study(tmp_path_factory):
    """An SQLite file holding an empty study "s" (Optuna's tables are made once, then copied)."""
    path = tmp_path_factory.mktemp("template") / "study.db"
    optuna.create_study(study_name="s", storage=make_storage(sqlite_url(path)), direction="maximize")
    return path


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """A gRPC storage proxy serving the sweeper's storage of an SQLite file, as
    `budgetsweep storage-proxy` does, in a thread of this process: its URL."""
    from optuna.storages import run_grpc_proxy_server

    storage = make_storage(sqlite_url(tmp_path_factory.mktemp("proxy") / "study.db"))
    port = free_port()
    threading.Thread(
        target=run_grpc_proxy_server, args=(storage,), kwargs=dict(host="127.0.0.1", port=port), daemon=True
    ).start()
    return f"grpc://127.0.0.1:{port}"


@pytest.fixture(params=["sqlite", "journal", "grpc"])
def workers(request, tmp_path, empty_study):
    """Two (study, slots) pairs sharing one study with n_trials=3, in each kind of storage."""
    name = "s"
    if request.param == "sqlite":
        url = sqlite_url(shutil.copy(empty_study, tmp_path / "study.db"))
    else:
        journal = f"journal:{tmp_path / 'study.journal'}"
        url = journal if request.param == "journal" else request.getfixturevalue("proxy")
        name = tmp_path.name  # the proxy serves one database to every test: a study of its own
        optuna.create_study(study_name=name, storage=make_storage(url), direction="maximize")
    pairs = []
    for _ in range(2):
        storage = make_storage(url, existing=True)
        study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
        pairs.append((study, Slots(storage, name, n_trials=3, wait=2.0)))
    return pairs


def ask(study, slots):
    trial = study.ask()
    trial_id = slots.trial_id(trial.number)
    assert slots.begin(trial_id) is False  # a new trial holds no slot yet
    return trial, trial_id


def state(slots, number):
    (t,) = [t for t in slots.trials() if t.number == number]
    return t.state, t.system_attrs.get(SLOT)


def test_exactly_n_trials_slots_and_the_surplus_goes_back_untrained(workers):
    (study_a, a), (study_b, b) = workers
    taken = []
    for study, slots in [(study_a, a), (study_b, b), (study_a, a), (study_b, b)]:
        trial, trial_id = ask(study, slots)
        taken.append(slots.take(trial_id, trial.number))
    assert taken == [True, True, True, False]
    assert a.taken() == b.taken() == 3 and a.full() and b.full()
    assert state(a, 3) == (TrialState.WAITING, False)  # surplus: queued, holding none
    assert a.claim_queued() is None  # only slot holders are claimed


def test_infeasible_trials_do_not_count(workers):
    (study_a, a), (study_b, b) = workers
    trial, trial_id = ask(study_a, a)
    a.refuse(trial_id)
    study_a.tell(trial, state=TrialState.PRUNED)
    assert b.taken() == 0 and b.rank(5) == 0
    for study, slots in [(study_b, b), (study_a, a), (study_b, b)]:
        trial, trial_id = ask(study, slots)
        assert slots.take(trial_id, trial.number)
    assert a.taken() == 3 and [t.number for t in a.holders()] == [1, 2, 3]


def test_rank_waits_for_an_older_trial_another_worker_is_still_sizing(workers):
    (study_a, a), (study_b, b) = workers
    a.n_trials = b.n_trials = 1
    older, older_id = ask(study_a, a)  # worker A is sizing trial 0 ...
    newer, newer_id = ask(study_b, b)  # ... while B asks trial 1 for the last slot
    threading.Timer(0.3, a.take, (older_id, older.number)).start()
    t0 = time.monotonic()
    assert b.take(newer_id, newer.number) is False  # B waited for A's verdict on trial 0
    assert 0.25 < time.monotonic() - t0 < 2.0
    assert state(b, 0) == (TrialState.RUNNING, True) and state(b, 1) == (TrialState.WAITING, False)
    assert a.taken() == 1


def claim_together(slots, barrier, results):
    barrier.wait()
    results.append(slots.claim_queued())


def test_a_requeued_trial_is_claimed_by_exactly_one_worker(workers):
    (study_a, a), (_, b) = workers
    trial, trial_id = ask(study_a, a)
    assert a.take(trial_id, trial.number)
    for _ in range(20):  # a race: without the claim lock SQLite let both win about every other round
        assert b.requeue(trial_id) is True  # its process died: back to the queue, slot kept
        assert state(a, 0) == (TrialState.WAITING, True)
        results: list = []
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=claim_together, args=(s, barrier, results)) for s in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results, key=str) == [trial_id, None]
        assert state(a, 0) == (TrialState.RUNNING, True) and a.taken() == 1  # same trial, same slot


def test_a_trial_that_died_before_taking_a_slot_is_failed(workers):
    (study_a, a), (_, b) = workers
    _, trial_id = ask(study_a, a)
    assert b.requeue(trial_id) is False
    assert state(a, 0) == (TrialState.FAIL, False) and a.taken() == 0


def test_ask_hands_out_a_queued_surplus_trial_again_to_be_decided_anew(workers):
    (study_a, a), (study_b, b) = workers
    a.n_trials = b.n_trials = 1
    first, first_id = ask(study_a, a)
    surplus, surplus_id = ask(study_b, b)
    assert a.take(first_id, first.number) and not b.take(surplus_id, surplus.number)
    b.n_trials = 2  # a longer run later
    again = study_b.ask()  # Optuna pops the WAITING trial
    assert again.number == surplus.number and again.params == surplus.params
    assert b.begin(surplus_id) is False and state(b, 1) == (TrialState.RUNNING, None)  # undecided again
    assert b.take(surplus_id, again.number) and b.taken() == 2


def test_the_slots_module_needs_no_hydra():
    code = (
        "import sys, budgetsweep.sweeper.slots; assert not [m for m in sys.modules if m.startswith('hydra')], 'hydra'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_worker_paused_past_the_grace_period_loses_its_claim_and_cannot_hand_the_trial_back(workers):
    (study_a, a), (_, b) = workers
    trial, trial_id = ask(study_a, a)
    claim_a = a.claim(trial_id)
    assert a.take(trial_id, trial.number) and a.owns(trial_id, claim_a)
    assert b.requeue(trial_id) is True  # a stopped beating: b queues its trial...
    assert not a.owns(trial_id, claim_a)  # ...which is not a's from that moment, even before b claims it
    assert b.claim_queued() == trial_id
    claim_b = b.claim(trial_id)
    assert b.owns(trial_id, claim_b) and not a.owns(trial_id, claim_a)
    assert a.requeue(trial_id, claim_a) is False  # a wakes up and is stopped: it does not queue b's trial
    assert state(a, 0) == (TrialState.RUNNING, True) and b.owns(trial_id, claim_b)
    assert b.requeue(trial_id, claim_b) is True and state(a, 0) == (TrialState.WAITING, True)


def no_reads(slots, monkeypatch):
    """From here on, a read of the whole study through these slots fails the test."""
    monkeypatch.setattr(slots, "trials", lambda states=None: pytest.fail("read the study again"))


def test_a_read_just_before_the_ask_gives_the_slot_without_reading_again(workers, monkeypatch):
    (study_a, a), (study_b, b) = workers
    for study, slots in [(study_a, a), (study_b, b)]:
        trial, trial_id = ask(study, slots)
        assert slots.take(trial_id, trial.number)
        study.tell(trial, 1.0)
    a.look()  # as a trial's end reads the study
    with monkeypatch.context() as patch:
        no_reads(a, patch)
        assert not a.full()
        trial, trial_id = ask(study_a, a)
        assert a.take(trial_id, trial.number)  # rank 2 < 3, from the kept read
    assert a.taken() == 3 and a.full()  # the read is used once: the slot just taken is counted


def test_a_kept_read_does_not_decide_a_slot_when_another_worker_asked_since(workers):
    (study_a, a), (study_b, b) = workers
    a.n_trials = b.n_trials = 1
    a.look()
    other, other_id = ask(study_b, b)  # created after A's read: A's read does not hold it
    assert b.take(other_id, other.number)
    trial, trial_id = ask(study_a, a)
    assert a.take(trial_id, trial.number) is False  # read again: B holds the only slot
    assert state(a, 1) == (TrialState.WAITING, False)


def test_a_kept_read_does_not_decide_a_slot_while_an_older_trial_is_undecided(workers):
    (study_a, a), (study_b, b) = workers
    a.n_trials = b.n_trials = 1
    older, older_id = ask(study_b, b)  # B is sizing trial 0
    a.look()  # A's read holds trial 0, undecided
    trial, trial_id = ask(study_a, a)
    threading.Timer(0.3, b.take, (older_id, older.number)).start()
    assert a.take(trial_id, trial.number) is False  # A waited for B's verdict, as without a kept read
    assert state(a, 0) == (TrialState.RUNNING, True)


def test_full_answers_from_a_recent_read_then_reads_again(workers, monkeypatch):
    (study_a, a), (study_b, b) = workers
    a.n_trials = b.n_trials = 1
    assert not a.full()  # read now, kept
    trial, trial_id = ask(study_b, b)
    assert b.take(trial_id, trial.number)
    assert not a.full()  # within FRESH seconds: the kept read answers
    monkeypatch.setattr(slots_module, "FRESH", 0.0)
    assert a.full()  # older than FRESH: read again


def test_the_claim_check_gives_the_trials_attributes_until_it_is_queued_again(workers):
    (study_a, a), (_, b) = workers
    trial, trial_id = ask(study_a, a)
    claim = a.claim(trial_id)
    assert a.take(trial_id, trial.number)
    attrs = a.claimed(trial_id, claim)
    assert attrs is not None and attrs[SLOT] is True
    assert b.requeue(trial_id) is True
    assert a.claimed(trial_id, claim) is None
