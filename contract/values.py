"""Config values as one canonical text, and Hydra's override grammar in a few pure functions.

The same setting reaches us spelled several ways: `1e-3` on the command line, `0.001` in
config.yaml, a float parsed from a sweep. `canon` parses a value the way Hydra parses an
override and writes it back in one form, so the ablation sweeper records a variant's value
as `canon(value)` and analysis groups runs by `canon(...)` of whatever it reads: the two
agree by construction. Imports hydra-core's parser only (no torch, no Optuna).
"""

from __future__ import annotations

import functools
import math
import re
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from hydra.core.override_parser.overrides_parser import OverridesParser


@functools.cache
def _parser() -> OverridesParser:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def parse_value(text: str) -> Any:
    """A value as Hydra's override grammar reads it ("1e-3" -> 0.001, "[1,2]" -> [1, 2]);
    text the grammar cannot read is a plain string."""
    try:
        return _parser().parse_override(f"x={text}").value()
    except Exception:  # Hydra's grammar errors share no base class; unparsable means "a string"
        return text


def parse_override(text: str) -> tuple[str, Any] | None:
    """ "model.C=32" -> ("model.C", 32); "+x=1" -> ("x", 1); None for a deletion or garbage."""
    try:
        override = _parser().parse_override(text)
    except Exception:
        return None
    if override.is_delete():
        return None
    return override.key_or_group, override.value()


def canon(value: Any) -> str:
    """One canonical text per value: 1e-3, 0.001 and "0.001" all give "0.001".

    Integral floats collapse to ints (`weight_decay=0` and `0.0` are one setting), booleans
    and None are written as the grammar spells them, lists and dicts elementwise.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {canon(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        parsed = parse_value(value)
        return value if isinstance(parsed, str) else canon(parsed)
    if hasattr(value, "item"):  # numpy scalars from a DataFrame cell
        return canon(value.item())
    return str(value)


def short_value(value: Any) -> str:
    """A value as a log line, a table or a legend shows it: numbers to 4 significant digits
    (0.0031622776 -> 0.003162), anything else as its canonical text.

    >>> short_value("0.0031622776601683794"), short_value(64), short_value("adam"), short_value(-1.7065058289524284)
    ('0.003162', '64', 'adam', '-1.707')
    """
    parsed = parse_value(value) if isinstance(value, str) else value
    if isinstance(parsed, float) and math.isfinite(parsed) and not parsed.is_integer():
        return f"{parsed:.4g}"
    return canon(parsed)


def values_equal(a: Any, b: Any) -> bool:
    """Config-value equality: 64 == 64.0 == "64", True != 1, lists and dicts elementwise."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, str) and isinstance(b, (int, float)):  # a str field holds 64 as "64"
        return canon(a) == canon(b)
    if isinstance(b, str) and isinstance(a, (int, float)):
        return canon(a) == canon(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")
_GRAMMAR_WORDS = {"true", "false", "null", "nan", "inf"}


def quote(text: str) -> str:
    """Override text that parses back to exactly the string `text` (never a number, list, ...)."""
    if _PLAIN.match(text) and text.lower() not in _GRAMMAR_WORDS:
        return text
    from hydra.core.override_parser.types import Quote, QuotedString

    return QuotedString(text.replace("${", "\\${"), Quote.single).with_quotes()


def sort_key(text: str) -> tuple:
    """Numbers in numeric order before everything else in text order."""
    value = parse_value(text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, text)
