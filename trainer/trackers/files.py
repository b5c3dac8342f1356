"""`logger=csv`: history.csv, which every run writes anyway (the run contract)."""

from __future__ import annotations

from .base import Tracker


class CsvTracker(Tracker):
    """history.csv is written by the training loop whatever the loggers; this option keeps the
    default selection explicit (`logger=[csv,tensorboard]`) and adds nothing."""
