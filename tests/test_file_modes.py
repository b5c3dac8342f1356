"""Result files get the mode the umask gives, like every other file.

`write_atomic` once created its files with `tempfile.mkstemp`, mode 0600 whatever the umask:
colleagues on the shared filesystem README asks for could not read `metrics.json`,
`history.csv` or `checkpoint.pt`.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch

from budgetsweep.contract import (
    CHECKPOINT_FILE,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    METRICS_FILE,
    new_metrics,
    write_atomic,
    write_history,
    write_metrics,
)
from budgetsweep.contract.layouts import StudyRecord, write_study
from budgetsweep.trainer import train
from budgetsweep.trainer.checkpoint import Progress, save_checkpoint


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_the_contracts_writers_honour_the_umask(tmp_path, umask, mask):
    umask(mask)
    write_metrics(tmp_path, new_metrics(status="completed"))
    write_history(tmp_path, [dict.fromkeys(HISTORY_COLUMNS, 1)])
    write_atomic(tmp_path / "any.bin", b"x")
    write_study(tmp_path, StudyRecord(storage="sqlite:///study.db", study_name="s", direction="maximize", n_trials=1))
    for path in tmp_path.iterdir():
        assert mode(path) == 0o666 & ~mask, f"{path.name}: {oct(mode(path))} under umask {oct(mask)}"


def test_a_replaced_file_gets_the_umask_mode_too(tmp_path, umask):
    umask(0o022)
    (tmp_path / METRICS_FILE).write_text("{}")
    os.chmod(tmp_path / METRICS_FILE, 0o600)
    write_metrics(tmp_path, new_metrics(status="completed"))
    assert mode(tmp_path / METRICS_FILE) == 0o644


def test_a_runs_files_are_readable_by_others_under_umask_022(tiny_cfg, tmp_path, umask):
    umask(0o022)
    train(tiny_cfg(), tmp_path)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    save_checkpoint(tmp_path / CHECKPOINT_FILE, "f", Progress(), model, opt, sched, torch.Generator())
    for name in (METRICS_FILE, HISTORY_FILE, CHECKPOINT_FILE):
        assert mode(tmp_path / name) == 0o644, f"{name}: {oct(mode(tmp_path / name))}"
