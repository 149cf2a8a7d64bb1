"""Real engine faults for tests: a Unix-socket proxy in front of the real Docker engine.

VibeBox's driver talks to the proxy; the proxy passes every byte on to the real engine until a
test breaks it. Only the test's own process is pointed at the proxy, so the shared dockerd keeps
serving everyone else (never stop it).

Use the `engine_fault` fixture (registered in tests/conftest.py)::

    def test_start_with_engine_down(engine_fault, api_client, ...):
        engine_fault.refuse()            # the socket is gone: new connections fail at once
        ...                              # expect 503 runtime_unavailable
        engine_fault.restore()           # back to pass-through

Modes (each lasts until `restore()` or another mode):

- ``refuse()``: the socket file is removed and live connections are closed; a connect fails
  (the driver sees "no such file", as when dockerd is down).
- ``reset()``: live connections are reset (RST) now, and every later request is answered by a
  reset of its connection.
- ``hang()``: requests are read and never answered, so the driver's read timeout fires: mark
  the test ``@pytest.mark.engine_timeout(5)`` (the fixture's default, 60 s, is for a loaded
  machine's slow but answered calls: a snapshot's commit has taken over 5 s here).
- ``cut()``: a one-off: resets the live connections and stays in pass-through.

Faults between steps: ``fail_on(pattern, nth=1, then="pass", when="before")`` makes the
``nth`` request whose ``"METHOD /path"`` (API version prefix removed, e.g.
``"POST /containers/sbx_x/start"``) matches the regular expression fail:

- ``when="before"``: the request never reaches the engine (the step did not happen);
- ``when="after"``: the engine does it, the answer is lost (the step happened, the caller
  does not know);

and the proxy then moves to mode ``then`` ("pass": only that one request fails; "refuse",
"reset", "hang": the engine stays down until ``restore()``). ``tripped`` is a
``threading.Event`` set when it fired; ``requests`` lists every "METHOD /path" seen.

A server process started by the test (tests.conftest.live_server) can be pointed at the proxy
with ``live_server(DOCKER_HOST=engine_fault.url)``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
from urllib.parse import urlsplit

import pytest

PASS, REFUSE, RESET, HANG = "pass", "refuse", "reset", "hang"
_VERSION_PREFIX = re.compile(r"^/v\d+(\.\d+)?(?=/)")
_HEAD_LIMIT = 1024 * 1024


def engine_socket_path() -> str:
    """The real engine's socket (DOCKER_HOST when it is a unix:// one)."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return urlsplit(host).path
    return "/var/run/docker.sock"


def _hard_close(sock: socket.socket) -> None:
    """Closes with a reset (RST), as a dying engine or a cut cable does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Trigger:
    def __init__(self, pattern: str, nth: int, then: str, when: str):
        self.pattern = re.compile(pattern)
        self.remaining = nth
        self.then = then
        self.when = when


class _Connection:
    """One client connection and its upstream connection to the engine."""

    def __init__(self, proxy: EngineProxy, client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.drop_response = False
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        _hard_close(self.client)
        if self.upstream is not None:
            _hard_close(self.upstream)
        self.proxy._forget(self)

    # client -> engine: parsed request by request, so a fault can hit one request
    def run(self) -> None:
        try:
            if self.proxy.mode in (RESET, REFUSE):
                return
            self.upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.upstream.connect(self.proxy.target)
            threading.Thread(target=self._pump_responses, daemon=True, name="fault-proxy-down").start()
            reader = self.client.makefile("rb", buffering=0)
            buffer = b""
            while True:
                head, buffer = self._read_head(reader, buffer)
                if head is None:
                    return
                verdict = self.proxy._on_request(head)
                if verdict == HANG:
                    self._swallow(reader)
                    return
                if verdict in (RESET, REFUSE):
                    return
                if verdict == "after":
                    self.drop_response = True
                self.upstream.sendall(head)
                headers = _headers(head)
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    buffer = self._relay_chunked(reader, buffer)
                else:
                    buffer = self._relay_exact(reader, buffer, int(headers.get("content-length") or 0))
                if "upgrade" in headers:  # a hijacked stream (attach, exec start): raw from now on
                    if buffer:
                        self.upstream.sendall(buffer)
                    while data := reader.read(65536):
                        self.upstream.sendall(data)
                    return
        except OSError as exc:
            self.proxy.requests.append(f"(proxy: client side {exc!r})")
            return
        finally:
            self.close()

    def _read_head(self, reader, buffer: bytes) -> tuple[bytes | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > _HEAD_LIMIT:
                return None, b""
            data = reader.read(65536)
            if not data:
                return None, b""
            buffer += data
        end = buffer.index(b"\r\n\r\n") + 4
        return buffer[:end], buffer[end:]

    def _relay_exact(self, reader, buffer: bytes, length: int) -> bytes:
        take = buffer[:length]
        self.upstream.sendall(take)
        left = length - len(take)
        buffer = buffer[len(take) :]
        while left > 0:
            data = reader.read(min(left, 65536))
            if not data:
                raise OSError("client closed mid-body")
            self.upstream.sendall(data)
            left -= len(data)
        return buffer

    def _relay_chunked(self, reader, buffer: bytes) -> bytes:
        while True:
            while b"\r\n" not in buffer:
                data = reader.read(65536)
                if not data:
                    raise OSError("client closed mid-body")
                buffer += data
            line_end = buffer.index(b"\r\n") + 2
            size = int(buffer[: line_end - 2].split(b";")[0].strip() or b"0", 16)
            self.upstream.sendall(buffer[:line_end])
            buffer = self._relay_exact(reader, buffer[line_end:], size + 2)  # data and its CRLF
            if size == 0:  # (no trailers: docker-py sends none)
                return buffer

    def _swallow(self, reader) -> None:
        """Reads and drops whatever the client sends, answering nothing, until it gives up."""
        while self.proxy.mode == HANG and not self.closed:
            try:
                if not reader.read(65536):
                    return
            except OSError:
                return

    # engine -> client: raw
    def _pump_responses(self) -> None:
        try:
            while True:
                data = self.upstream.recv(65536)
                if not data:
                    self.proxy.requests.append("(proxy: the engine closed a connection)")
                    break
                if self.drop_response:
                    break
                self.client.sendall(data)
        except OSError as exc:
            self.proxy.requests.append(f"(proxy: engine side {exc!r})")
        self.close()


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    headers = {}
    for line in lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return headers


class EngineProxy:
    """A Unix socket that forwards to the real engine's, and breaks on request (see the module)."""

    def __init__(self, target: str | None = None):
        self.target = target or engine_socket_path()
        self._dir = tempfile.mkdtemp(prefix="vbx-fault-", dir="/tmp")  # short: socket paths max 107 bytes
        self.path = os.path.join(self._dir, "docker.sock")
        self.url = f"unix://{self.path}"
        self.mode = PASS
        self.requests: list[str] = []
        self.tripped = threading.Event()
        self._trigger: _Trigger | None = None
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._listener: socket.socket | None = None
        self._closed = False

    # ---- life ----

    def start(self) -> EngineProxy:
        self._listen()
        return self

    def close(self) -> None:
        self._closed = True
        self._unlisten()
        self._cut_all()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EngineProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _listen(self) -> None:
        if self._listener is not None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name="fault-proxy-accept").start()

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.mode == REFUSE or self._closed:
                _hard_close(client)
                continue
            connection = _Connection(self, client)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=connection.run, daemon=True, name="fault-proxy-up").start()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _cut_all(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    # ---- faults ----

    def refuse(self) -> None:
        """Engine gone: the socket is removed, live connections are closed."""
        self.mode = REFUSE
        self._unlisten()
        self._cut_all()

    def reset(self) -> None:
        """Every connection is reset, live ones now and new ones at their first request."""
        self.mode = RESET
        self._cut_all()

    def hang(self) -> None:
        """Requests are accepted and never answered (the driver's timeout fires)."""
        self.mode = HANG

    def cut(self) -> None:
        """A one-off: live connections are reset; new ones pass."""
        self._cut_all()

    def restore(self) -> None:
        """Back to pass-through (hung connections are closed, the socket is back)."""
        was = self.mode
        self.mode = PASS
        self._trigger = None
        if was == HANG:
            self._cut_all()
        if not self._closed:
            self._listen()

    def fail_on(self, pattern: str, *, nth: int = 1, then: str = PASS, when: str = "before") -> threading.Event:
        """Fails the `nth` request matching `pattern` (see the module), then moves to mode `then`."""
        assert then in (PASS, REFUSE, RESET, HANG) and when in ("before", "after") and nth >= 1
        self.tripped.clear()
        self._trigger = _Trigger(pattern, nth, then, when)
        return self.tripped

    def _on_request(self, head: bytes) -> str:
        """What to do with a request: PASS, "after" (forward, drop the answer), RESET, HANG."""
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        path = _VERSION_PREFIX.sub("", rest.rsplit(" ", 1)[0])
        line = f"{method} {path}"
        self.requests.append(line)
        trigger = self._trigger
        if self.mode != PASS:
            return HANG if self.mode == HANG else RESET
        if trigger is None or not trigger.pattern.search(line):
            return PASS
        with self._lock:
            if self._trigger is not trigger:
                return PASS
            trigger.remaining -= 1
            if trigger.remaining > 0:
                return PASS
            self._trigger = None
        self._apply(trigger.then)
        self.tripped.set()
        if trigger.when == "after":
            return "after"
        return HANG if trigger.then == HANG else RESET

    def _apply(self, then: str) -> None:
        if then == REFUSE:
            self.mode = REFUSE
            self._unlisten()  # live connections fail at their next request (mode), not now
        elif then in (RESET, HANG):
            self.mode = then


ENGINE_TIMEOUT = 60  # seconds: the driver's timeout behind the proxy unless a test marks another


@pytest.fixture
def engine_fault(settings, request):
    """An EngineProxy with VibeBox's driver pointed at it for this test (see the module).

    The driver's timeout is ENGINE_TIMEOUT, or the test's `engine_timeout` mark (a test that hangs
    the engine: it fails fast); the driver is rebuilt before and after, so other tests (and the
    shared engine) never see the fault. (Through pytest-django's `settings`, so the test's own
    settings changes unwind in order with these.)"""
    from apps.sandboxes.runtime import get_driver

    mark = request.node.get_closest_marker("engine_timeout")
    host, timeout = settings.VIBEBOX_DOCKER_HOST, settings.VIBEBOX_DOCKER_TIMEOUT
    with EngineProxy() as proxy:
        settings.VIBEBOX_DOCKER_HOST = proxy.url
        settings.VIBEBOX_DOCKER_TIMEOUT = mark.args[0] if mark else ENGINE_TIMEOUT
        get_driver.cache_clear()
        try:
            yield proxy
        finally:
            proxy.restore()
            # Back on the real engine at once, whatever order other fixtures are torn down in.
            settings.VIBEBOX_DOCKER_HOST, settings.VIBEBOX_DOCKER_TIMEOUT = host, timeout
            get_driver.cache_clear()
