"""Faults with real processes: SIGKILL in the middle of a checkpoint write, and a rerun over what
it left.

A killed write must leave the previous `checkpoint.pt` whole (write_atomic renames a finished
temporary file over it) and only a temporary file beside it, which the next run in the folder
removes; a run killed and then left with a damaged checkpoint reruns from scratch with one
warning naming the file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from budgetsweep.contract import CHECKPOINT_FILE, METRICS_FILE
from budgetsweep.contract.run import partial_writes
from budgetsweep.trainer.checkpoint import UNREADABLE_SUFFIX, restore_checkpoint

from helpers import ROOT, TINY_RUN, run_py

# Writes a ~16 MB checkpoint over and over, epoch 1, 2, ...: each write takes long enough
# to be caught in the middle.
WRITER = textwrap.dedent(
    """
    import sys, torch
    from budgetsweep.trainer.checkpoint import Progress, save_checkpoint
    torch.manual_seed(0)
    model = torch.nn.Linear(2048, 2048)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    epoch = 0
    while True:
        epoch += 1
        save_checkpoint(sys.argv[1], "fingerprint", Progress(epoch=epoch), model, opt, sched, torch.Generator())
    """
)


def model_like_the_writers():
    model = torch.nn.Linear(2048, 2048)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0), torch.Generator()


def kill_during_a_write(path, attempts: int = 10) -> None:
    """SIGKILL the writer while a temporary file exists; retried when the rename won the race."""
    for _ in range(attempts):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=ROOT)
        try:
            deadline = time.monotonic() + 120
            while not (path.exists() and partial_writes(path)) and time.monotonic() < deadline:
                time.sleep(0.001)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        if partial_writes(path):
            return
    pytest.fail(f"no write caught in the middle in {attempts} attempts")


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_leaves_the_last_one_whole_and_a_temp_the_rerun_removes(tmp_path):
    path = tmp_path / CHECKPOINT_FILE
    kill_during_a_write(path)
    assert path.is_file() and partial_writes(path)
    model, opt, sched, gen = model_like_the_writers()
    progress = restore_checkpoint(path, "fingerprint", model, opt, sched, gen)
    assert progress.epoch >= 1  # the last whole checkpoint, read back
    assert not partial_writes(path) and path.is_file()


@pytest.mark.slow
def test_a_killed_run_whose_checkpoint_was_damaged_reruns_with_one_warning(tmp_path):
    args = [*TINY_RUN, "epochs=3", "data.n_train=640", "hydra.run.dir=run"]  # epochs 2-3: time to be killed
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=tmp_path, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "run" / CHECKPOINT_FILE
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert ckpt.exists() and not (tmp_path / "run" / METRICS_FILE).exists(), "the run ended before it was killed"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # a disk that lost the end of the file

    r = run_py(args, tmp_path, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    metrics = json.loads((tmp_path / "run" / METRICS_FILE).read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 3
    log = (tmp_path / "run" / "run.log").read_text()
    warnings = [line for line in log.splitlines() if "WARNING" in line and CHECKPOINT_FILE in line]
    assert len(warnings) == 1 and str(ckpt) in warnings[0] and "set aside" in warnings[0], log
    assert (tmp_path / "run" / (CHECKPOINT_FILE + UNREADABLE_SUFFIX)).is_file()
