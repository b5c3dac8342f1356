"""A sweep's progress bar on a terminal: trials trained out of n_trials, with tqdm's rate and ETA,
the log lines printed above it. Absent where stderr is not a terminal (a log file, SLURM, CI):
there the one log line per trial is the progress."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def sweep_progress(total: int, done: int, unit: str = "trial") -> Iterator[Any]:
    """A bar from `done` to `total`; `update(1)` as each one ends."""
    if not sys.stderr.isatty():
        yield _NoBar()
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(total=total, initial=done, unit=unit, desc="sweep", leave=False, dynamic_ncols=True, file=sys.stderr)
    # Hydra logs through the root logger's console handler: its lines go above the bar
    with logging_redirect_tqdm(loggers=[logging.getLogger()], tqdm_class=tqdm):
        try:
            yield bar
        finally:
            bar.close()
