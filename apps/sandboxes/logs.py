"""A sandbox's log: its container's output merged with VibeBox's own events for it."""

import time

from vibebox import exceptions as errors
from vibebox.units import parse_duration

from . import events
from .models import Sandbox, Status
from .runtime import driver_for

STREAMS = ("stdout", "stderr")


def parse_since(value: str | None) -> float | None:
    """'1h' (a duration back from now) or a unix timestamp; None for everything."""
    if not value:
        return None
    try:
        number = float(value)
        if 1e9 < number < 1e11:  # a timestamp (inf, nan and year 5000 are not)
            return number
    except ValueError:
        pass
    try:
        return time.time() - parse_duration(value)
    except ValueError:
        raise errors.InvalidDuration("since is a duration such as '1h' or a unix timestamp.") from None


def parse_tail(value: str | None) -> int | None:
    if value in (None, "", "all"):
        return None
    if not (str(value).isascii() and str(value).isdigit()):  # "²".isdigit() too
        raise errors.ValidationFailed("tail is a number of lines.")
    return min(int(value), 100_000)


def line(stream: str, timestamp: float, text: str) -> dict:
    return {"type": "log", "stream": stream, "text": text, "timestamp": timestamp}


def follow(*, sandbox: Sandbox, stream: str, since: float):
    """The container's new output on `stream` as it comes: iterate it, close() it when done."""
    return driver_for(sandbox).logs(sandbox.container_name, stream=stream, since=since, tail=0, follow=True)


def read(
    *, sandbox: Sandbox, since: float | None, tail: int | None, streams=STREAMS, include_events=True
) -> list[dict]:
    entries: list[dict] = []
    # An unreachable sandbox's container (its node is down) cannot be read: its events alone.
    gone = (Status.DESTROYED, Status.DESTROYING, Status.CREATING, Status.UNREACHABLE)
    if sandbox.container_id and sandbox.status not in gone:
        driver = driver_for(sandbox)
        for stream in streams:
            for timestamp, text in driver.logs(
                sandbox.container_name, stream=stream, since=since, tail=tail, follow=False
            ):
                entries.append(line(stream, timestamp, text))
    if include_events:
        entries += [events.as_log_line(event) for event in events.recent(sandbox.id, since)]
    entries.sort(key=lambda entry: entry["timestamp"])
    if tail is None:
        return entries
    return entries[-tail:] if tail else []  # tail=0: none (a follower wants only what comes next)
