"""`vibebox shell`: an interactive terminal in a sandbox over the WebSocket (`sandbox.terminal()`).

The local terminal is put in raw mode, so every key (Ctrl-C, arrows, Tab) reaches the sandbox's
shell; window size changes follow (SIGWINCH); the terminal is restored on exit, and the command
exits with the shell's exit code. When stdin is not a terminal (`vibebox shell box < script.sh`),
the shell runs without a terminal, as `ssh host < script` does: a streamed command reading stdin.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from .common import CliError, get_sandbox

PIPED_TIMEOUT = 0  # the server's maximum (1 h) for a shell fed from a pipe

if TYPE_CHECKING:  # annotations only: `vibebox --help` does not import the client (httpx, websockets)
    from ..sandbox import Sandbox
    from ..streams import Terminal


def _connection_closed() -> type[Exception]:
    """websockets' ConnectionClosed, imported when a shell opens (not for every command)."""
    from websockets.exceptions import ConnectionClosed

    return ConnectionClosed


def terminal_size() -> tuple[int, int]:
    """(columns, rows) of the local terminal, 80x24 without one."""
    for stream in (sys.stdout, sys.stdin, sys.stderr):
        try:
            size = os.get_terminal_size(stream.fileno())
            return size.columns, size.lines
        except (OSError, ValueError, AttributeError):
            continue
    return 80, 24


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Raw mode on a terminal for the block, restored afterwards whatever happens."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Session:
    """Copies bytes between the local terminal and a sandbox terminal until the shell exits."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.stdin = sys.stdin.fileno()
        self.stdout = sys.stdout.fileno()
        self.wake_read, self.wake_write = os.pipe()
        self.done = threading.Event()
        self.failure: BaseException | None = None
        self.reader = threading.Thread(target=self._pump_output, daemon=True, name="vibebox-shell-output")

    def _wake(self, reason: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(self.wake_write, reason)

    def _pump_output(self) -> None:
        try:
            while (chunk := self.term.recv()) is not None:
                write_all(self.stdout, chunk)
        except BaseException as error:  # handed to the main thread
            self.failure = error
        finally:
            self.done.set()
            self._wake(b"x")

    def _forward_input(self) -> None:
        stdin_open = True
        while not self.done.is_set():
            watched = [self.wake_read, self.stdin] if stdin_open else [self.wake_read]
            ready, _, _ = select.select(watched, [], [])
            if self.wake_read in ready:
                reasons = os.read(self.wake_read, 256)
                if b"w" in reasons and not self.done.is_set():
                    self.term.resize(*terminal_size())
            if stdin_open and self.stdin in ready:
                data = os.read(self.stdin, 65536)
                if data:
                    self.term.send(data)
                else:
                    stdin_open = False

    def run(self) -> int:
        previous = signal.signal(signal.SIGWINCH, lambda *_: self._wake(b"w"))
        try:
            with raw_mode(self.stdin):
                self.reader.start()
                with contextlib.suppress(_connection_closed()):
                    self._forward_input()
        finally:
            signal.signal(signal.SIGWINCH, previous)
            self.term.close()
            self.reader.join(5)
            os.close(self.wake_read)
            os.close(self.wake_write)
        if self.failure is not None:
            raise self.failure
        return self.term.exit_code if self.term.exit_code is not None else 1


def interactive(sandbox: Sandbox, *, cwd: str | None = None, shell: str | None = None) -> int:
    """Runs an interactive shell in the sandbox on this terminal; answers its exit code."""
    cols, rows = terminal_size()
    term = sandbox.terminal(cols=cols, rows=rows, shell=shell, cwd=cwd)
    return Session(term).run()


def piped(sandbox: Sandbox, *, cwd: str | None = None, shell: str | None = None) -> int:
    """Runs the shell as a streamed command fed with stdin as it comes; answers its exit code."""
    stream = sandbox.exec([shell or "bash", "-l"], stream=True, cwd=cwd, timeout=PIPED_TIMEOUT)

    def feed() -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with contextlib.suppress(_connection_closed(), OSError):
            while chunk := os.read(sys.stdin.fileno(), 65536):
                stream.send_stdin(decoder.decode(chunk))
            stream.send_stdin(decoder.decode(b"", final=True))
            stream.close_stdin()

    threading.Thread(target=feed, daemon=True, name="vibebox-shell-stdin").start()
    for event in stream:
        target = sys.stdout if event.type == "stdout" else sys.stderr if event.type == "stderr" else None
        if target is not None:
            target.write(event.data)
            target.flush()
    result = stream.wait()
    return result.exit_code if result.exit_code is not None else 1


def shell_command(
    sandbox: Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)],
    shell: Annotated[str | None, typer.Option("--shell", help="bash (default), sh, zsh, fish or dash.")] = None,
    cwd: Annotated[str | None, typer.Option("--cwd", help="Start in this directory (default /workspace).")] = None,
) -> None:
    """Open an interactive shell in a running sandbox; exits with the shell's exit code."""
    box = get_sandbox(sandbox)
    if box.status != "running":
        action = "resume" if box.status == "paused" else "start"
        raise CliError(f"{box.name} is {box.status}; run `vibebox {action} {box.name}` first")
    if not os.isatty(sys.stdin.fileno()):
        raise typer.Exit(piped(box, cwd=cwd, shell=shell))
    raise typer.Exit(interactive(box, cwd=cwd, shell=shell))


def register(app: typer.Typer) -> None:
    app.command("shell", rich_help_panel="Commands")(shell_command)
    app.command("sh", help="Open an interactive shell (same as `shell`).", rich_help_panel="Commands")(shell_command)
