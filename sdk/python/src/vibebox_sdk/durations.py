"""Durations as the API takes them: seconds (a number) or text such as "500ms", "30s", "15m", "2h", "1d"."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")

Duration = int | float | str


def seconds(value: Duration) -> float:
    """`seconds("15m") == 900.0`; a number is already seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    match = _PATTERN.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. '30s', '15m', '2h')")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
