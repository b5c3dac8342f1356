"""checkpoint.pt that cannot be read, and what a write killed midway leaves.

A truncated, empty or foreign checkpoint is set aside as `checkpoint.pt.unreadable` with a
warning naming it, and the run starts over instead of failing the same way on every rerun.
The temporary file of a write that was killed is removed by the next run in the folder.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil

import pytest
import torch

from budgetsweep.contract import CHECKPOINT_FILE, METRICS_FILE, write_atomic
from budgetsweep.contract.run import partial_writes
from budgetsweep.trainer import train
from budgetsweep.trainer.checkpoint import UNREADABLE_SUFFIX

from helpers import compose_cfg


class Killed(BaseException):
    """Stands for SIGKILL after an epoch: not an Exception, so train() records nothing."""


def stop_after_first_epoch(epoch: int, row: dict) -> bool:
    raise Killed


@pytest.fixture(scope="module")
def first_epoch(tmp_path_factory):
    """The folder of a 2-epoch run stopped after epoch 1: it holds a real checkpoint."""
    run_dir = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(Killed):
        train(compose_cfg(["epochs=2"]), run_dir, on_epoch=stop_after_first_epoch)
    assert (run_dir / CHECKPOINT_FILE).is_file() and not (run_dir / METRICS_FILE).exists()
    return run_dir


@pytest.fixture
def interrupted(first_epoch, tmp_path):
    """(config, a fresh copy of the interrupted run's folder)."""
    for path in first_epoch.iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    return compose_cfg(["epochs=2"]), tmp_path


def epochs_in_history(run_dir) -> list[str]:
    with open(run_dir / "history.csv") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


def test_an_intact_checkpoint_resumes(interrupted, caplog):
    cfg, run_dir = interrupted
    with caplog.at_level(logging.INFO, logger="budgetsweep.trainer.checkpoint"):
        metrics = train(cfg, run_dir)
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert any("resumed from" in r.getMessage() and "at epoch 1" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated"),
        pytest.param(lambda b: b"\0" * len(b), id="zeroed"),
    ],
)
def test_an_unreadable_checkpoint_is_set_aside_and_the_run_starts_over(interrupted, caplog, damage):
    cfg, run_dir = interrupted
    ckpt = run_dir / CHECKPOINT_FILE
    damaged = damage(ckpt.read_bytes())
    ckpt.write_bytes(damaged)
    with caplog.at_level(logging.WARNING, logger="budgetsweep.trainer.checkpoint"):
        metrics = train(cfg, run_dir)
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert epochs_in_history(run_dir) == ["1", "2"]  # started over, not resumed
    aside = run_dir / (CHECKPOINT_FILE + UNREADABLE_SUFFIX)
    assert aside.read_bytes() == damaged and not ckpt.exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(ckpt) in warnings[0] and aside.name in warnings[0], warnings
    assert "\n" not in warnings[0]
    # the rerun after that is clean: nothing left to trip on
    caplog.clear()
    assert train(cfg, run_dir)["status"] == "completed"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_file_that_is_not_our_checkpoint_is_set_aside(interrupted, caplog):
    cfg, run_dir = interrupted
    torch.save({"weights": torch.zeros(3)}, run_dir / CHECKPOINT_FILE)
    with caplog.at_level(logging.WARNING, logger="budgetsweep.trainer.checkpoint"):
        assert train(cfg, run_dir)["status"] == "completed"
    assert (run_dir / (CHECKPOINT_FILE + UNREADABLE_SUFFIX)).is_file()
    assert any("not a checkpoint" in r.getMessage() for r in caplog.records)


def test_the_temporary_file_of_a_killed_write_is_removed(interrupted, caplog):
    cfg, run_dir = interrupted
    # what write_atomic leaves when its process dies between creating and renaming the file
    write_atomic(run_dir / "other.bin", b"x")
    partial = run_dir / f".{CHECKPOINT_FILE}.0123456789ab.tmp"
    partial.write_bytes((run_dir / CHECKPOINT_FILE).read_bytes()[:100])
    assert partial_writes(run_dir / CHECKPOINT_FILE) == [partial]
    with caplog.at_level(logging.WARNING, logger="budgetsweep.trainer.checkpoint"):
        metrics = train(cfg, run_dir)
    assert metrics["status"] == "completed" and epochs_in_history(run_dir) == ["1", "2"]
    assert not partial.exists() and not partial_writes(run_dir / CHECKPOINT_FILE)
    assert (run_dir / "other.bin").exists()  # only the checkpoint's own leftovers go
    assert any(str(partial) in r.getMessage() for r in caplog.records)
    assert json.loads((run_dir / METRICS_FILE).read_text())["epochs"] == 2


def test_adding_a_tracker_or_a_tag_keeps_the_checkpoint_resumable():
    from budgetsweep.trainer.checkpoint import config_fingerprint

    base = config_fingerprint(compose_cfg())
    assert config_fingerprint(compose_cfg(["logger=[csv,tensorboard]", "tags=[rerun]"])) == base
    assert config_fingerprint(compose_cfg(["optimizer.lr=0.5"])) != base
