"""`vibebox watch <sandbox> [path]`: print a sandbox's file changes as they happen."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from . import output
from .common import check_duration, get_sandbox

STOP_SECONDS = 5.0

if TYPE_CHECKING:  # annotations only: `vibebox --help` does not import the client (httpx, websockets)
    from ..watch import FileEvent, FileWatch


def describe(event: FileEvent) -> str:
    """One line: the type, padded, then the path (`old -> new` for a rename, the reason for an overflow)."""
    if event.type == "rename":
        return f"{event.type:<8} {event.from_path} -> {event.path}"
    if event.type == "overflow":
        return f"{event.type:<8} {event.path} ({event.reason}: some events were lost, rescan)"
    return f"{event.type:<8} {event.path}{'/' if event.is_dir and event.path != '/' else ''}"


def watch(
    sandbox: Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)],
    path: Annotated[str, typer.Argument(help="The directory (relative paths start at /workspace).")] = "/workspace",
    no_recursive: Annotated[
        bool, typer.Option("--no-recursive", help="Only the directory's own entries, not its subdirectories.")
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", "-x", help="A glob pattern to leave out (node_modules, *.pyc); repeatable."),
    ] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", help="Stop after this long: 30s, 10m, 1h.")] = None,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per event and line.")] = False,
) -> None:
    """Print file changes under a directory of a sandbox as they happen (Ctrl-C stops).

    Each line is `<type> <path>` (create, write, remove, rename, chmod, overflow); the watch goes
    on across a pause and resume of the sandbox, and ends when the directory goes away."""
    check_duration(timeout, "--timeout")
    box = get_sandbox(sandbox)
    try:
        with box.files.watch(path, recursive=not no_recursive, excludes=exclude, timeout=timeout) as changes:
            _stop_on_ctrl_c(changes)
            output.note(f"watching {changes.root} in {box.name or box.id} (Ctrl-C stops)")
            for event in changes:
                if json:
                    output.print_json_line(event.to_dict())
                elif event.type == "end":
                    output.note(f"the watch ended: {event.reason}")
                else:
                    sys.stdout.write(describe(event) + "\n")
                    sys.stdout.flush()
    except KeyboardInterrupt:
        return


def _stop_on_ctrl_c(changes: FileWatch) -> None:
    """Ctrl-C stops the watch from another thread, which ends the loop cleanly: a KeyboardInterrupt
    raised inside the WebSocket library's receive could leave its closing handshake stuck. Should
    stopping take longer than a few seconds, the command exits anyway (130, as for Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupted(signum, frame) -> None:
        threading.Thread(target=changes.stop, daemon=True).start()
        deadline = threading.Timer(STOP_SECONDS, os._exit, args=(130,))
        deadline.daemon = True
        deadline.start()

    signal.signal(signal.SIGINT, interrupted)


def register(app: typer.Typer) -> None:
    app.command("watch", rich_help_panel="Files")(watch)
