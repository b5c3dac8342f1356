"""Two small facts used wherever a message or a value is shown: an error's first line, and
what counts as a missing value (None, or NaN as pandas writes an empty cell)."""

from __future__ import annotations

import math
import re
from typing import Any

_CUT = re.compile(r"[.!?](?=\s|$)")  # where a sentence ends
# A line ending so cannot end a sentence: a wrapped line of prose (a comma, an article, a
# preposition, a conjunction). A line ending on any other word is a message's own first line.
_UNFINISHED = re.compile(
    r"(,|\b(the|a|an|of|to|by|with|for|and|or|in|on|at|from|that|which|is|are|be|was|not|no|its|their))$", re.I
)


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an exception's message (its type name when it has none).

    Some libraries hard-wrap their prose (Hydra's execution whitelist: "... cannot be authorized
    by the" / "Hydra execution whitelist because ..."), so a first line that stops mid-sentence
    (on a comma, an article, a preposition: `_UNFINISHED`; or on a word, the next line going on
    in lower case) takes the following plain lines up to the end of that sentence. An indented
    line, a blank one or one that opens with a bracket is detail, never joined; any other first
    line is the whole message's first line."""
    text = str(error).strip()
    if not text:
        return type(error).__name__ if isinstance(error, BaseException) else ""
    lines = text.splitlines()
    line = lines[0].strip()
    if len(lines) < 2 or not (_UNFINISHED.search(line) or (line[-1:].isalpha() and lines[1][:1].islower())):
        return line
    for more in lines[1:4]:  # once cut mid-sentence, joined up to the sentence's end
        if not re.match(r"[^\W\d_]", more):
            break
        if end := _CUT.search(more):
            return f"{line} {more[: end.end()]}"
        line = f"{line} {more.strip()}"
    return line


def is_missing(value: Any) -> bool:
    """None or a float NaN (an empty DataFrame cell); everything else, 0 and "" included, is a value."""
    return value is None or (isinstance(value, float) and math.isnan(value))
