"""An exclusive lock on a file shared by the processes of one machine (fcntl's flock).

Used where processes that know nothing of each other take turns: the training jobs' registry
(`budgetsweep.trainer.cores`), and the workers of one SQLite study (`budgetsweep.sweeper.optuna_storage`).
A lock is released when its file is closed, so a killed holder frees it at once; a holder that is
paused (Ctrl-Z, SIGSTOP) keeps it, which is why most callers wait a bounded time and then go on.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows: no lock, every caller goes on at once
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def locked(path: Path, wait: float | None = None) -> Iterator[bool]:
    """Hold `path`'s exclusive lock (the file is created if missing) for the `with` block.
    `wait`: seconds to wait at most, then go on without it (None: as long as it takes). Yields
    whether the lock is held. A new open file per use, so threads of one process exclude each
    other too."""
    with open(path, "a") as f:
        held = fcntl is not None
        if fcntl is not None and wait is None:
            fcntl.flock(f, fcntl.LOCK_EX)
        elif fcntl is not None:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        held = False
                        break
                    time.sleep(0.02)
        yield held  # closing the file releases the lock
