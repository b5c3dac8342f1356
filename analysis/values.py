"""Config values as comparable strings.

The same setting reaches analysis spelled several ways: `1e-3` in an override, `0.001` in
config.yaml, "1e-3" in the ablation sweeper's `value`. Everything is parsed the way Hydra
parses an override, then written back in one canonical form, so values can be matched,
grouped and sorted without caring how they were typed.
"""
from __future__ import annotations

import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

_PARSER = OverridesParser.create()


def canon(value: Any) -> str:
    """One canonical string per value: 1e-3, 0.001 and "0.001" all give "0.001".

    Integral floats collapse to ints (`weight_decay=0` and `0.0` are the same setting).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canon(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {canon(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        parsed = parse_value(value)
        return value if isinstance(parsed, str) else canon(parsed)
    if hasattr(value, "item"):  # numpy scalars from a DataFrame cell
        return canon(value.item())
    return str(value)


def parse_value(text: str) -> Any:
    """A value as Hydra's override grammar reads it ("1e-3" -> 0.001, "[1,2]" -> [1, 2])."""
    try:
        return _PARSER.parse_override(f"x={text}").value()
    except Exception:  # Hydra's grammar errors have no common base; unparsable means "a string"
        return text


def parse_override(text: str) -> tuple[str, Any] | None:
    """"model.C=32" -> ("model.C", 32); "+x=1" -> ("x", 1); None for a deletion or garbage."""
    try:
        override = _PARSER.parse_override(text)
    except Exception:
        return None
    if override.is_delete():
        return None
    return override.key_or_group, override.value()


def sort_key(text: str) -> tuple:
    """Numbers in numeric order before everything else in text order."""
    value = parse_value(text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, text)
