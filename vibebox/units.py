"""Parsing of human durations ("30s", "2h") and sizes ("512m", "1g")."""

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(value) -> float:
    """Seconds from a number of seconds or a string such as "30s", "15m", "2h", "1d".

    Raises ValueError for anything else (negative numbers included).
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30m'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"invalid duration {value!r}: use seconds or a string like '30s', '15m', '2h', '1d'")
        unit = match.group(2).lower() if match.group(2) else None
        seconds = float(match.group(1)) * _DURATION_SECONDS[unit]
    else:
        raise ValueError("a duration is a number of seconds or a string like '30m'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value) -> int:
    """Bytes from a number of bytes or a string such as "512m", "1g", "1GiB"."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like '1g'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"invalid size {value!r}: use bytes or a string like '512m', '1g'")
        size = int(float(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()])
    else:
        raise ValueError("a size is a number of bytes or a string like '1g'")
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


def format_size(size: int) -> str:
    """The shortest exact human form: 1073741824 -> "1g", 1536 -> "1536"."""
    for unit in ("t", "g", "m", "k"):
        factor = _SIZE_FACTOR[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
