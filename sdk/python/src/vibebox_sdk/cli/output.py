"""Output conventions: data to stdout (tables for people, JSON with `--json`), everything else to stderr.

Colour only on terminals, never with `NO_COLOR` (rich decides). Progress bars only when stderr is a
terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:  # annotations only: `vibebox --help` does not import the client (httpx, websockets)
    from ..archive import Progress as ProgressCallback
    from ..sandbox import Sandbox

STATUS_STYLES = {
    "running": "green",
    "paused": "yellow",
    "stopped": "dim",
    "creating": "cyan",
    "starting": "cyan",
    "stopping": "cyan",
    "destroying": "magenta",
    "destroyed": "dim",
    "error": "red",
    "unreachable": "red",
}


def _is_tty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Off a terminal rich would wrap at 80 columns; pipes get whole lines unless COLUMNS says otherwise.
    width = None if _is_tty(stream) or os.environ.get("COLUMNS") else 100_000
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


out = _console(stderr=False)
err = _console(stderr=True)


def to_data(value: Any) -> Any:
    """A JSON-ready view: a model's `raw` (the server's camelCase object) when it has one, a
    sandbox's info, dataclasses as dicts, containers recursively."""
    from ..sandbox import Sandbox

    if isinstance(value, Sandbox):
        return to_data(value.info)
    raw = getattr(value, "raw", None)
    if isinstance(raw, dict) and raw:
        return raw
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_data(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in ("raw", "sandbox")
        }
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_data(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_data(value), indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(to_data(value), default=str) + "\n")
    sys.stdout.flush()


def render(renderable: Any) -> None:
    """Prints to stdout; off a terminal without the padding rich leaves at the end of lines."""
    if out.is_terminal:
        out.print(renderable)
        return
    with out.capture() as captured:
        out.print(renderable)
    sys.stdout.write("".join(row.rstrip() + "\n" for row in captured.get().splitlines()))
    sys.stdout.flush()


def line(text: str = "") -> None:
    """A line of data on stdout, no markup."""
    out.print(Text(text))


def note(text: str, style: str = "dim") -> None:
    """A message for people on stderr (progress, hints, confirmations)."""
    err.print(Text(text, style=style))


def warn(text: str) -> None:
    err.print(Text(f"warning: {text}", style="yellow"))


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def ago(timestamp: str | None) -> str:
    """`2026-01-01T10:00:00Z` -> `5m ago` (or `in 2h` for a future time); `-` when unset."""
    if not timestamp:
        return "-"
    try:
        moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    delta = (datetime.datetime.now(datetime.UTC) - moment).total_seconds()
    future, seconds = delta < 0, abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            text = f"{int(seconds // size)}{unit}"
            break
    else:
        text = f"{int(seconds)}s"
    return f"in {text}" if future else f"{text} ago"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A borderless table on stdout (like `docker ps`)."""
    grid = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(cell if isinstance(cell, Text) else Text("-" if cell is None else str(cell)) for cell in row))
    render(grid)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """`key  value` lines on stdout."""
    grid = Table(box=None, pad_edge=False, show_header=False, show_edge=False)
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in pairs:
        if isinstance(value, dict | list):
            value = json.dumps(value) if value else "-"
        grid.add_row(key, value if isinstance(value, Text) else Text("-" if value in (None, "") else str(value)))
    render(grid)


def sandbox_fields(sandbox: Sandbox) -> None:
    info = sandbox.info
    resources = info.resources or {}
    fields(
        [
            ("name", info.name),
            ("id", info.id),
            ("template", info.template),
            ("status", status_text(info.status)),
            ("reason", info.status_reason),
            ("ephemeral", "yes" if info.ephemeral else "no"),
            ("created", f"{info.created_at} ({ago(info.created_at)})" if info.created_at else None),
            ("started", info.started_at),
            ("stopped", info.stopped_at),
            ("paused", info.paused_at),
            ("expires", f"{info.expires_at} ({ago(info.expires_at)})" if info.expires_at else "never"),
            ("cpu", resources.get("cpu")),
            ("memory", resources.get("memory")),
            ("metadata", info.metadata),
        ]
    )


@contextlib.contextmanager
def transfer(description: str) -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr for an upload or download (None off a terminal)."""
    if not _is_tty(sys.stderr):
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )
    task = bar.add_task(description, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total or None)

    with bar:
        yield update


@contextlib.contextmanager
def spinner(message: str) -> Iterator[None]:
    """A spinner on stderr while waiting (nothing off a terminal)."""
    if not _is_tty(sys.stderr):
        yield
        return
    with err.status(message):
        yield
