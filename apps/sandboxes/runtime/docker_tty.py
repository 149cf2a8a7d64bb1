"""Interactive PTY sessions over Docker's exec API (docker exec -it).

The engine hijacks the HTTP connection: with a TTY the socket carries the terminal's raw bytes
both ways, with no stream headers. One thread reads (blocking), others write; `close()` shuts the
socket down, which wakes the reader, and the descriptor is released once no read is in progress,
so a racing read can never land on a reused descriptor. Closing does not end the shell: the
engine keeps an exec running after its client hangs up, so callers kill its processes themselves
(terminals.py does). Imported only by docker.py.
"""

import contextlib
import logging
import select
import socket
import threading
import time

from vibebox import exceptions as errors

from .docker_exec import early_output

logger = logging.getLogger(__name__)

_READ_ERRORS = (OSError, ValueError)


class TtyHandle:
    def __init__(self, api, exec_id: str, sock):
        self._api = api
        self._exec_id = exec_id
        self._wrapper = sock  # keeps docker-py's wrapper (and its response) alive
        self._sock = getattr(sock, "_sock", sock)
        self._sock.setblocking(False)
        self._early = early_output(sock)  # output that came with the headers, read first
        self._sock.setblocking(True)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._readers = 0
        self._closing = False
        self._released = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self, max_bytes: int = 65536) -> bytes:
        """Blocks until output arrives; b"" once the shell has exited or the handle is closed."""
        with self._lock:
            if self._closing:
                return b""
            self._readers += 1
        data = b""
        try:
            data, self._early = (self._early, b"") if self._early else (self._sock.recv(max_bytes), b"")
        except _READ_ERRORS:
            data = b""
        finally:
            with self._lock:
                self._readers -= 1
                if not data:
                    self._closing = True
                if self._closing and self._readers == 0:
                    self._release()
        return data

    def write(self, data: bytes, timeout: float = 30.0) -> None:
        """Sends keystrokes; raises RuntimeFailure when the shell has not read them within
        `timeout` seconds (its input buffer is full) or the session is gone."""
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        with self._write_lock:
            while view:
                if self._closing:
                    raise errors.RuntimeFailure("The terminal is closed.")
                remaining = deadline - time.monotonic()
                try:
                    _, writable, _ = select.select([], [self._sock], [], max(0.0, remaining))
                    if not writable:
                        raise errors.RuntimeFailure("The terminal is not reading its input.")
                    sent = self._send(view[:65536])
                except BlockingIOError:
                    continue
                except _READ_ERRORS as exc:
                    raise errors.RuntimeFailure(f"writing to the terminal failed: {exc}"[:300]) from None
                view = view[sent:]

    def _send(self, chunk) -> int:
        try:
            return self._sock.send(chunk, socket.MSG_DONTWAIT)
        except ValueError:  # TLS sockets take no flags; select said it is writable
            return self._sock.send(chunk)

    def resize(self, cols: int, rows: int) -> None:
        try:
            self._api.exec_resize(self._exec_id, height=rows, width=cols)
        except Exception as exc:  # docker-py raises its own types; nothing above may see them
            raise errors.RuntimeFailure(f"resizing the terminal failed: {exc}"[:300]) from None

    def exit_code(self) -> int | None:
        """The shell's exit code, or None while it runs (or when the engine cannot tell)."""
        for _ in range(25):
            try:
                info = self._api.exec_inspect(self._exec_id)
            except Exception:  # the container is gone
                return None
            if not info.get("Running"):
                return info.get("ExitCode")
            time.sleep(0.02)
        return None

    def close(self) -> None:
        """Hangs up: the socket is shut down (waking the reader) and released. The shell itself
        keeps running until killed (the engine does not hang it up)."""
        with self._lock:
            self._closing = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            if self._readers == 0:
                self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            with contextlib.suppress(OSError):
                self._sock.close()
            with contextlib.suppress(Exception):
                self._wrapper.close()


def open_tty(
    api,
    container: str,
    *,
    argv: list[str] | tuple[str, ...],
    env: dict[str, str],
    user: str,
    workdir: str,
    cols: int,
    rows: int,
) -> TtyHandle:
    exec_id = api.exec_create(
        container,
        list(argv),
        stdout=True,
        stderr=True,
        stdin=True,
        tty=True,
        environment=env,
        workdir=workdir or None,
        user=user or "",
    )["Id"]
    handle = TtyHandle(api, exec_id, api.exec_start(exec_id, socket=True, tty=True))
    # The engine waits (up to 10 s) for the exec to run before it sizes the TTY, so this is the
    # size the shell starts with. A shell that already exited cannot be sized: that is no error.
    try:
        handle.resize(cols, rows)
    except errors.RuntimeFailure as exc:
        logger.warning("terminal %s: initial size not set: %s", exec_id[:12], exc.message)
    return handle
