"""WebSocket streams, sync side: streamed commands, log following and interactive terminals.

The protocol handling (`CommandState`, URLs, headers) is shared with the async side in `aio.py`.
"""

from __future__ import annotations

import inspect
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from . import errors
from .calls import segment
from .models import ExecutionResult, LogEntry

OPEN_TIMEOUT = 30.0
CLOSE_CODES: dict[int, type[errors.VibeBoxError]] = {
    4400: errors.ValidationError,
    4401: errors.AuthenticationError,
    4403: errors.PermissionDeniedError,
    4404: errors.SandboxNotFoundError,
    4409: errors.SandboxNotRunningError,
    4413: errors.ValidationError,  # a message above the server's limit
    4429: errors.RateLimitError,  # too many open streams
    4502: errors.ServerError,
    4503: errors.ServiceUnavailableError,
}


def ws_url(base_url: str, path: str, params: dict[str, Any] | None = None) -> str:
    url = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + path
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    return f"{url}?{urlencode(clean)}" if clean else url


def sandbox_ws(base_url: str, sandbox_id: str, kind: str, params: dict[str, Any] | None = None) -> str:
    return ws_url(base_url, f"/ws/sandboxes/{segment(sandbox_id)}/{kind}", params)


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def refused(code: int | None, reason: str = "") -> errors.VibeBoxError:
    """The error for a WebSocket the server refused or closed with a 4xxx code."""
    cls = CLOSE_CODES.get(code or 0, errors.ConnectionError)
    return cls(reason or f"the server closed the stream (code {code})", status=(code - 4000) if code else None)


def refused_upgrade(error: InvalidStatus) -> errors.VibeBoxError:
    status = error.response.status_code
    try:
        payload = json.loads(error.response.body or b"{}")
    except ValueError:
        payload = None
    return errors.from_payload(status, payload, request_id=error.response.headers.get("X-Request-Id"))


@dataclass
class StreamEvent:
    """A streamed command's event: `type` is `stdout`, `stderr` or `exit` (then `result` is set)."""

    type: str
    data: str = ""
    result: ExecutionResult | None = None


class CommandState:
    """Turns the exec stream's messages into events and the final result."""

    def __init__(self, sandbox: Any = None) -> None:
        self.sandbox = sandbox
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.result: ExecutionResult | None = None

    def feed(self, raw: str | bytes) -> StreamEvent | None:
        message = json.loads(raw)
        kind = message.get("type")
        if kind in ("stdout", "stderr"):
            (self.stdout if kind == "stdout" else self.stderr).append(message.get("data", ""))
            return StreamEvent(kind, message.get("data", ""))
        if kind == "exit":
            data = {**message, "stdout": "".join(self.stdout), "stderr": "".join(self.stderr)}
            self.result = ExecutionResult.from_api(data, sandbox=self.sandbox)
            return StreamEvent("exit", result=self.result)
        if kind == "error":
            raise errors.from_payload(400, {"error": message.get("error") or {}})
        return None


# websockets 16+ warns unless a connection used outside `with` is asked for explicitly.
_DIRECT = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}


HANDSHAKE_ATTEMPTS = 3  # a handshake that failed before the server answered started nothing: retry it


def open_ws(url: str, api_key: str | None) -> ClientConnection:
    for attempt in range(HANDSHAKE_ATTEMPTS):
        try:
            return connect(
                url, additional_headers=auth_headers(api_key), open_timeout=OPEN_TIMEOUT, max_size=None, **_DIRECT
            )
        except InvalidStatus as error:
            raise refused_upgrade(error) from error
        except (OSError, InvalidMessage, ConnectionClosed) as error:  # also one dropped mid-handshake
            if attempt + 1 == HANDSHAKE_ATTEMPTS:
                raise errors.ConnectionError(f"cannot open {url.split('?')[0]}: {error}") from error
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


class CommandStream:
    """A command whose output arrives as it is printed (`sandbox.exec(cmd, stream=True)`).

        cmd = sandbox.exec("npm test", stream=True)
        cmd.on_data(print)                     # every chunk of stdout and stderr
        cmd.on_complete(lambda r: print(r.exit_code))
        result = cmd.wait()

    Or iterate: `for event in cmd: ...` (`event.type` is `stdout`, `stderr`, `exit`). Callbacks added
    late are first given what already arrived. `send_stdin`, `close_stdin`, `signal` and `kill`
    reach the running command.
    """

    def __init__(self, connection: ClientConnection, sandbox: Any = None, start: dict[str, Any] | None = None) -> None:
        self._ws = connection
        if start is not None:
            connection.send(json.dumps(start))
        self._state = CommandState(sandbox)
        self._events: list[StreamEvent] = []
        self._queue: queue.Queue[StreamEvent | BaseException | None] = queue.Queue()
        self._data_callbacks: list[Callable[[str], None]] = []
        self._stream_callbacks: list[tuple[str, Callable[[str], None]]] = []
        self._complete_callbacks: list[Callable[[ExecutionResult], None]] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, daemon=True, name="vibebox-exec-stream")
        self._thread.start()

    def _pump(self) -> None:
        try:
            for raw in self._ws:
                event = self._state.feed(raw)
                if event is not None:
                    self._dispatch(event)
                    if event.type == "exit":
                        break
            if self._state.result is None:
                raise refused(self._ws.close_code, self._ws.close_reason)
        except ConnectionClosed as error:
            self._fail(refused(error.rcvd.code if error.rcvd else None, error.rcvd.reason if error.rcvd else ""))
        except BaseException as error:  # handed to the waiting caller
            self._fail(error)
        finally:
            self._queue.put(None)
            self._ws.close()

    def _fail(self, error: BaseException) -> None:
        if self._state.result is None:
            self._error = error
            self._queue.put(error)

    def _dispatch(self, event: StreamEvent) -> None:
        with self._lock:
            self._events.append(event)
            self._queue.put(event)
            data_callbacks = list(self._data_callbacks)
            stream_callbacks = list(self._stream_callbacks)
            complete_callbacks = list(self._complete_callbacks)
        if event.type == "exit" and event.result is not None:
            for done in complete_callbacks:
                done(event.result)
            return
        for callback in data_callbacks:
            callback(event.data)
        for stream, callback in stream_callbacks:
            if stream == event.type:
                callback(event.data)

    def on_data(self, callback: Callable[[str], None]) -> CommandStream:
        with self._lock:
            past = [e.data for e in self._events if e.type in ("stdout", "stderr")]
            self._data_callbacks.append(callback)
        for data in past:
            callback(data)
        return self

    def on_stdout(self, callback: Callable[[str], None]) -> CommandStream:
        return self._on_stream("stdout", callback)

    def on_stderr(self, callback: Callable[[str], None]) -> CommandStream:
        return self._on_stream("stderr", callback)

    def _on_stream(self, stream: str, callback: Callable[[str], None]) -> CommandStream:
        with self._lock:
            past = [e.data for e in self._events if e.type == stream]
            self._stream_callbacks.append((stream, callback))
        for data in past:
            callback(data)
        return self

    def on_complete(self, callback: Callable[[ExecutionResult], None]) -> CommandStream:
        with self._lock:
            result = self._state.result
            if result is None:
                self._complete_callbacks.append(callback)
        if result is not None:
            callback(result)
        return self

    def __iter__(self) -> Iterator[StreamEvent]:
        while True:
            item = self._queue.get()
            if item is None:
                if self._error:
                    raise self._error
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def wait(self, timeout: float | None = None) -> ExecutionResult:
        """Blocks until the command ends; returns its result (whatever the exit code)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise errors.TimeoutError("the command is still running")
        if self._state.result is None:
            raise self._error or errors.ConnectionError("the stream ended without a result")
        return self._state.result

    @property
    def result(self) -> ExecutionResult | None:
        return self._state.result

    def send_stdin(self, data: str) -> None:
        self._ws.send(json.dumps({"type": "stdin", "data": data}))

    def close_stdin(self) -> None:
        self._ws.send(json.dumps({"type": "close_stdin"}))

    def signal(self, name: str) -> None:
        """Sends a signal (`INT`, `TERM`, `KILL`, `HUP`...) to every process of the command."""
        self._ws.send(json.dumps({"type": "signal", "signal": name}))

    def kill(self) -> None:
        self.signal("KILL")


class LogFollower:
    """Follows a sandbox's logs in a background thread, calling `callback` with each `LogEntry`.

    `sandbox.on_log(print)` returns one; `close()` stops it."""

    def __init__(self, connection: ClientConnection, callback: Callable[[LogEntry], None]) -> None:
        self._ws = connection
        self._callback = callback
        self._thread = threading.Thread(target=self._pump, daemon=True, name="vibebox-logs")
        self._thread.start()

    def _pump(self) -> None:
        try:
            for raw in self._ws:
                self._callback(LogEntry.from_api(json.loads(raw)))
        except ConnectionClosed:
            return

    def close(self) -> None:
        self._ws.close()
        self._thread.join(5)

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_logs(connection: ClientConnection) -> Iterator[LogEntry]:
    """The entries of a logs stream until it ends (or the caller stops iterating)."""
    try:
        for raw in connection:
            yield LogEntry.from_api(json.loads(raw))
    except ConnectionClosed:
        return
    finally:
        connection.close()


class TerminalProtocol:
    """The terminal stream's messages, shared by the sync and async terminals: the `session`
    hello, raw output frames, `exit`, `error` and `truncated` messages, and the close codes."""

    def __init__(self, connection: Any, hello: dict[str, Any]) -> None:
        self._ws = connection
        self.session_id: str = hello.get("sessionId", "")
        self.cols: int = hello.get("cols", 80)
        self.rows: int = hello.get("rows", 24)
        self.shell: str = hello.get("shell", "")
        self.exit_code: int | None = None
        # Output this client missed, gone from the server's buffer when it fell behind (a gap
        # in what `recv` answered; the screen repairs itself on the next redraw).
        self.dropped_bytes = 0
        self.closed = False

    def _output(self, frame: str | bytes) -> bytes | None:
        """Output bytes of a frame; None for a control message (an exit code is kept)."""
        if isinstance(frame, bytes):
            return frame
        message = json.loads(frame)
        if message.get("type") == "exit":
            self.exit_code = message.get("exitCode")
        elif message.get("type") == "error":
            raise errors.from_payload(400, {"error": message.get("error")})
        elif message.get("type") == "truncated" and isinstance(message.get("droppedBytes"), int):
            self.dropped_bytes += message["droppedBytes"]
        return None

    def _ended(self, error: ConnectionClosed) -> None:
        """The connection closed: normal after the shell exited, else the server refused."""
        self.closed = True
        code = error.rcvd.code if error.rcvd else None
        if code not in (None, 1000):
            raise refused(code, error.rcvd.reason if error.rcvd else "") from error

    @staticmethod
    def _resize_message(cols: int, rows: int) -> str:
        return json.dumps({"type": "resize", "cols": cols, "rows": rows})

    _KILL = json.dumps({"type": "kill"})


class Terminal(TerminalProtocol):
    """An interactive terminal (PTY) in a sandbox: send keystrokes, receive raw output bytes.

    with sandbox.terminal(cols=120, rows=40) as term:
        term.send(b"ls\\r")
        chunk = term.recv()      # bytes of output, or None once the shell exited
    """

    def __init__(self, connection: ClientConnection) -> None:
        super().__init__(connection, json.loads(connection.recv()))

    def recv(self, timeout: float | None = None) -> bytes | None:
        """The next output bytes; None when the shell has exited (see `exit_code`)."""
        while True:
            try:
                frame = self._ws.recv(timeout)
            except ConnectionClosed as error:
                self._ended(error)
                return None
            if (output := self._output(frame)) is not None:
                return output

    def send(self, keys: bytes | str) -> None:
        self._ws.send(keys.encode() if isinstance(keys, str) else keys)

    def resize(self, cols: int, rows: int) -> None:
        self._ws.send(self._resize_message(cols, rows))
        self.cols, self.rows = cols, rows

    def kill(self) -> None:
        """Ends the shell and everything started in it, for every client; `recv` then answers
        None. (Closing only leaves: the shell runs on until it exits or idles out.)"""
        self._ws.send(self._KILL)

    def close(self) -> None:
        self._ws.close()
        self.closed = True

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
