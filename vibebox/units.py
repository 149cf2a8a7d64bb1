"""Parsing of human durations ("30s", "2h") and sizes ("512m", "1g")."""

import math
import re

# The grammar of the strings, as ECMAScript patterns too (the OpenAPI document publishes them):
# ASCII digits and spaces only, so that Python and a JSON Schema validator agree on every string.
DURATION_PATTERN = r"^ *([0-9]+(?:\.[0-9]+)?) *([mM][sS]|[sSmMhHdDwW])? *$"
SIZE_PATTERN = r"^ *([0-9]+(?:\.[0-9]+)?) *([kKmMgGtT]?)([iI]?[bB]?) *$"
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}

_SIZE = re.compile(SIZE_PATTERN)
_SIZE_FACTOR = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

# The largest values any field takes (fields have lower limits of their own): beyond these a
# number no longer fits timedelta, a datetime, SQLite or Docker.
DURATION_MAX = 10 * 365 * 86400  # ten years, in seconds
SIZE_MAX = 2**50  # 1 PiB


def parse_duration(value) -> float:
    """Seconds from a number of seconds or a string such as "30s", "15m", "2h", "1d".

    Raises ValueError for anything else (negative numbers included).
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30m'")
    if isinstance(value, (int, float)):
        seconds = float(value) if abs(value) < 1e300 else (math.inf if value > 0 else -math.inf)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if not match:
            raise ValueError(f"invalid duration {value!r}: use seconds or a string like '30s', '15m', '2h', '1d'")
        unit = match.group(2).lower() if match.group(2) else None
        seconds = float(match.group(1)) * _DURATION_SECONDS[unit]
    else:
        raise ValueError("a duration is a number of seconds or a string like '30m'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if not seconds <= DURATION_MAX:  # NaN too
        raise ValueError(f"a duration is at most {DURATION_MAX} seconds (ten years)")
    return seconds


def parse_size(value) -> int:
    """Bytes from a number of bytes or a string such as "512m", "1g", "1GiB"."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like '1g'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if not match:
            raise ValueError(f"invalid size {value!r}: use bytes or a string like '512m', '1g'")
        number = float(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()]
        size = int(number) if number <= SIZE_MAX else SIZE_MAX + 1
    else:
        raise ValueError("a size is a number of bytes or a string like '1g'")
    if size <= 0:
        raise ValueError("a size must be positive")
    if size > SIZE_MAX:
        raise ValueError(f"a size is at most {SIZE_MAX} bytes (1 PiB)")
    return size


def format_size(size: int) -> str:
    """The shortest exact human form: 1073741824 -> "1g", 1536 -> "1536"."""
    for unit in ("t", "g", "m", "k"):
        factor = _SIZE_FACTOR[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
