"""Two small facts used wherever a message or a value is shown: an error's first line, and
what counts as a missing value (None, or NaN as pandas writes an empty cell)."""

from __future__ import annotations

import math
from typing import Any


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an exception's message (its type name when it has none)."""
    text = str(error).strip()
    if not text:
        return type(error).__name__ if isinstance(error, BaseException) else ""
    return text.splitlines()[0].strip()


def is_missing(value: Any) -> bool:
    """None or a float NaN (an empty DataFrame cell); everything else, 0 and "" included, is a value."""
    return value is None or (isinstance(value, float) and math.isnan(value))
