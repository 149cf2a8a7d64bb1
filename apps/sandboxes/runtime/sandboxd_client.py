"""The server's client of sandboxd, the daemon that is PID 1 of every sandbox (sandboxd/,
docs/sandboxd.md): the files it needs, its calls.

The driver puts this container's token and name into /run/vibebox (root-only) before the container
starts. Commands go to sandboxd: `run` (POST /exec) for a command whose whole answer is awaited,
`stream` (POST /stream, frames both ways) for one that streams output, takes stdin or signals;
background processes through /process/*, terminals through /terminal/* (the same calls: start,
list, attach, kill). When sandboxd cannot be greeted (not listening yet, a container restarted on a
new address, another sandbox now at the cached address) a call raises Unavailable: nothing was
sent, and the driver may look the address up again and retry. There is no other way into a
sandbox: no Docker exec behind it.

Everything a sandbox answers is hostile: sandboxd relays what sandbox code prints, and the address
may be another container's. So every exchange is bounded (bounded.Budget: a byte cap from the
request's output limit and a total deadline of the command's timeout plus SLACK), sandboxd must
prove it holds this container's token before anything is sent to it (a command is never posted to
another sandbox), its answer is signed over (container, this connection's nonce, exec id, digest of
the answer), and every field is validated. A failure once the command was sent is an error
(502 runtime_error with a `reason`), never a second run.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import hmac
import http.client
import io
import json
import logging
import os
import secrets
import select
import socket
import ssl
import struct
import tarfile
import threading
import time
from collections.abc import Iterator

from vibebox import tracing

from . import bounded, relay
from .base import (
    DAEMON_USER_LABEL,
    WATCH_END_REASONS,
    WATCH_EVENT_TYPES,
    WATCH_OVERFLOW_REASONS,
    ExecRequest,
    ExecResult,
    TerminalExit,
    WatchEvent,
    WatchRequest,
)

logger = logging.getLogger(__name__)

PORT = 49983
DIRECTORY = "/run/vibebox"  # the per-container files (token, container name), readable by root only
# What sandboxd needs as root: run commands as the sandbox user (SETUID, SETGID), signal them
# (KILL), write files as that user (CHOWN, DAC_OVERRIDE, FOWNER). Processes it starts as a
# non-root user have none of them (the kernel clears them on the change of user).
CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID")
USER_LABEL = DAEMON_USER_LABEL  # the user sandboxd runs commands as (the container itself runs as root)
SLACK = 10.0  # seconds on top of a command's timeout for the answer to arrive
CONNECT_TIMEOUT = 1.0  # a sandboxd that does not accept at once is not there (yet)
HELLO_SECONDS = 5.0  # the identity exchange, before anything is sent
HELLO_LIMIT = 16 * 1024  # bytes of a hello or kill answer (headers included)
HEADER_LIMIT = 64 * 1024  # bytes of an exec answer's headers and JSON header line
MAX_COUNT = 1 << 62  # byte counts beyond this are nonsense


def _traced(name: str):
    """A client span around a call to a sandbox's sandboxd (`sandboxd <name>`; vibebox/tracing.py).
    The calls take (address, secret, container, ...); file calls' next argument is their kind."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(address, secret, container, *args, **kwargs):
            what = f"{name} {args[0]}" if name == "file" and args else name
            with tracing.span(f"sandboxd {what}", client=True, container=container):
                return function(address, secret, container, *args, **kwargs)

        return wrapper

    return decorate


class Unavailable(Exception):
    """sandboxd could not be greeted and nothing was sent: the call may be made again."""


class Refused(Exception):
    """sandboxd refused a request before anything ran or was attached: its `status` (404
    unknown, 409 taken, 422 could not start, 429 too many) and its message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}"[:300])
        self.status, self.message = status, message[:300]


def _error_message(response, limit: int = HELLO_LIMIT) -> str:
    """The `error` of a refusal's JSON body (bounded; "" when there is none)."""
    try:
        data = bounded.loads(response.read(_length(response, limit)), max_bytes=limit)
    except (ValueError, OSError, http.client.HTTPException, bounded.HostileOutput):
        return ""
    message = data.get("error") if isinstance(data, dict) else None
    return message if isinstance(message, str) else ""


def token(secret: str, container: str) -> str:
    """The container's own key: derived, so the server keeps no per-sandbox secret."""
    return hmac.new(secret.encode(), f"vibebox-agent:{container}".encode(), hashlib.sha256).hexdigest()


def _sign(key: str, *parts: str) -> str:
    return hmac.new(key.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def bundle(secret: str, container: str) -> bytes:
    """The tar put into a new container: its token and container name, readable by root only
    (sandboxd runs as root; the sandbox user cannot read the token)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in ("run", DIRECTORY.lstrip("/")):
            directory = tarfile.TarInfo(path)
            directory.type, directory.mode, directory.uid, directory.gid = tarfile.DIRTYPE, 0o755, 0, 0
            tar.addfile(directory)
        for name, data in (("token", token(secret, container).encode()), ("container", container.encode())):
            info = tarfile.TarInfo(f"{DIRECTORY.lstrip('/')}/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o400, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def whole(request: ExecRequest) -> bool:
    """The command's whole answer is awaited (no output as it comes, no stdin or signals on the
    way, stdin small enough to send at once): /exec; else /stream."""
    return request.on_output is None and request.control is None and len(request.stdin or b"") <= 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Relayed:
    """The address of a sandboxd on a remote node, reached through that node's relay
    (docs/nodes.md; runtime/relay.py): the container's address on the node's bridge, the relay's
    (host, port), and the node (so two nodes' containers at the same bridge address are never
    taken for each other, nor for a local one: the idle pool keys on the whole address). The
    driver makes one per container and hands it where a local address (a str) would go."""

    host: str
    relay: tuple[str, int]
    node: object
    context: ssl.SSLContext = dataclasses.field(compare=False, hash=False, repr=False)


RELAY_CONNECT_TIMEOUT = 5.0  # the relay's TCP connect, TLS handshake and its answer to the CONNECT


class _Connection(http.client.HTTPConnection):
    """http.client over a socket whose every read is charged to the current exchange's budget."""

    def __init__(self, address: str):
        super().__init__(address, PORT, timeout=CONNECT_TIMEOUT)
        self.budget = bounded.Budget.within(HELLO_SECONDS, limit=HELLO_LIMIT, what="sandboxd's hello")

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), CONNECT_TIMEOUT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = bounded.BoundedSocket(raw, self.budget)

    def exchange(self, budget: bounded.Budget) -> None:
        self.budget = budget
        if self.sock is not None:
            self.sock.budget = budget


class _RelayedConnection(_Connection):
    """The same, through a node's relay: a TLS connection to the relay and one CONNECT to the
    container's sandboxd; then the same HTTP, under the same budgets, inside the tunnel (through
    relay.bridge: a local socket, so the threads of a stream never share the TLS socket)."""

    def __init__(self, address: Relayed):
        super().__init__(address.host)
        self.relayed = address

    def connect(self) -> None:
        where = self.relayed
        try:
            raw = relay.tunnel(
                where.relay, (self.host, self.port), context=where.context, timeout=RELAY_CONNECT_TIMEOUT
            )
        except relay.RelayRefused as exc:  # 502: sandboxd does not accept (yet); 403: not this node's
            raise ConnectionError(f"the node's relay refused the tunnel: {exc}") from None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local = relay.bridge(raw)  # one thread on the TLS socket; ours is a plain one
        except BaseException:
            raw.close()
            raise
        self.sock = bounded.BoundedSocket(local, self.budget)


def _read_exact(response, size: int, digest) -> bytes:
    data = response.read(size) if size else b""
    if len(data) != size:
        raise bounded.Malformed("sandboxd's answer ended early")
    digest.update(data)
    return data


class _Session:
    """One connection to a container's sandboxd whose identity has been checked."""

    def __init__(self, address: str, secret: str, container: str):
        self.address = address
        self.container = container
        self.key = token(secret, container)
        self.connection = _Connection(address) if type(address) is str else _RelayedConnection(address)
        self.server_nonce = secrets.token_hex(16)
        self.daemon_nonce = ""
        self.asked = ""  # the fresh server nonce the last request asked the next nonce under
        self.renewed = False  # this connection's sandboxd has handed out a next nonce

    def hello(self) -> None:
        """Connects and checks that sandboxd holds this container's token; raises Unavailable
        (nothing was sent) when it does not answer or is not this container's sandboxd."""
        try:
            self.connection.connect()
        except OSError as exc:
            raise Unavailable(f"no sandboxd at the address: {exc}") from None
        try:
            self.connection.request("GET", f"/hello?nonce={self.server_nonce}")
            response = self.connection.getresponse()
            payload = response.read(_length(response, HELLO_LIMIT))  # never read() unbounded
            data = bounded.loads(payload, max_bytes=HELLO_LIMIT) if response.status == 200 else None
        except (OSError, http.client.HTTPException, bounded.HostileOutput, ValueError) as exc:
            raise Unavailable(f"sandboxd's hello failed: {type(exc).__name__}: {exc}"[:300]) from None
        if not isinstance(data, dict) or data.get("container") != self.container:
            raise Unavailable("the daemon at the address is not this container's")
        nonce, proof = data.get("nonce"), data.get("proof")
        if not (isinstance(nonce, str) and isinstance(proof, str) and 16 <= len(nonce) <= 128):
            raise Unavailable("sandboxd's hello is malformed")
        expected = _sign(self.key, "hello", self.container, self.server_nonce, nonce)
        if not hmac.compare_digest(proof, expected):
            raise Unavailable("the daemon at the address cannot prove it is this container's")
        self.daemon_nonce = nonce

    def post(self, kind: str, body: bytes, budget: bounded.Budget, *, renew: bool = False) -> http.client.HTTPResponse:
        """Sends a signed request (each sandboxd nonce is good once). With `renew`, under a fresh
        server nonce, and the answer hands out the next sandboxd nonce (docs/sandboxd.md)."""
        self.connection.exchange(budget)
        signature = _sign(self.key, kind, self.container, self.daemon_nonce, hashlib.sha256(body).hexdigest())
        self.daemon_nonce, self.asked = "", secrets.token_hex(16) if renew else ""
        headers = {
            "Content-Type": "application/json",
            "X-VibeBox-Container": self.container,
            "X-VibeBox-Signature": signature,
        }
        if renew:
            headers["X-VibeBox-Nonce"] = self.asked
        self.connection.request("POST", f"/{kind}", body=body, headers=headers)
        return self.connection.getresponse()

    def verify(self, response, exec_id: str, digest: str) -> None:
        if response.getheader("X-VibeBox-Container") != self.container:
            raise bounded.Malformed("the answer names another container", reason="identity")
        following = response.getheader("X-VibeBox-Next-Nonce") if self.asked else None
        if following is not None:
            expected = _sign(self.key, "answer", self.container, self.asked, exec_id, digest, following)
        elif not self.renewed:  # an older sandboxd ignores the request and signs as after a hello
            expected = _sign(self.key, "answer", self.container, self.server_nonce, exec_id, digest)
        else:
            raise bounded.Malformed("the answer hands out no next nonce", reason="identity")
        if not hmac.compare_digest(response.getheader("X-VibeBox-Signature") or "", expected):
            raise bounded.Malformed("the answer's signature does not match", reason="identity")
        if following is not None and 16 <= len(following) <= 128:
            self.daemon_nonce, self.renewed = following, True

    def reusable(self, response) -> bool:
        """The next request may go on this connection without a hello: the answer was read to its
        end and handed out the next nonce, and the connection stays open."""
        if not self.daemon_nonce or response.will_close or response.length != 0:
            return False
        response.close()  # read to its end (readline leaves it open): the connection takes the next
        return True

    def close(self) -> None:
        self.connection.close()


class _Idle:
    """Connections to sandboxd whose last answer handed out the next nonce, kept for the next
    command to the same container (no connect, no hello). Only briefly (sandboxd closes an idle
    connection after 60 s), and a connection sandboxd closed meanwhile (stopped, restarted) is seen
    before anything is sent on it and dropped. Never shared with a forked child."""

    SECONDS = 20.0
    PER_SANDBOX = 4
    TOTAL = 256

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[tuple[_Session, float]]] = {}
        self._count = 0
        self._swept = time.monotonic()

    def take(self, address: str, container: str) -> _Session | None:
        now = time.monotonic()
        while True:
            with self._lock:
                entries = self._idle.get((address, container))
                if not entries:
                    return None
                session, since = entries.pop()
                self._count -= 1
                if not entries:
                    del self._idle[(address, container)]
            if now - since <= self.SECONDS and _still_open(session):
                return session
            session.close()

    def give(self, session: _Session) -> None:
        now, expired = time.monotonic(), []
        with self._lock:
            if now - self._swept > self.SECONDS or self._count >= self.TOTAL:
                expired = self._sweep(now)
            entries = self._idle.setdefault((session.address, session.container), [])
            kept = len(entries) < self.PER_SANDBOX and self._count < self.TOTAL
            if kept:
                entries.append((session, now))
                self._count += 1
        for stale in expired if kept else [*expired, session]:
            stale.close()

    def _sweep(self, now: float) -> list[_Session]:
        """Takes out the connections idle too long (those of sandboxes gone, or moved)."""
        self._swept, expired = now, []
        for where, entries in list(self._idle.items()):
            fresh = [(session, since) for session, since in entries if now - since <= self.SECONDS]
            expired += [session for session, since in entries if now - since > self.SECONDS]
            if fresh:
                self._idle[where] = fresh
            else:
                del self._idle[where]
        self._count -= len(expired)
        return expired

    def forget(self) -> None:
        """Drops every connection without closing it (a forked child: they are its parent's)."""
        self._idle, self._count, self._lock = {}, 0, threading.Lock()


def _still_open(session: _Session) -> bool:
    """An idle connection has nothing to read: readable means sandboxd closed it (or broke the
    protocol), and it is not used again."""
    sock = session.connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


_idle = _Idle()
os.register_at_fork(after_in_child=_idle.forget)


def _length(response, limit: int) -> int:
    if response.getheader("Transfer-Encoding"):
        raise bounded.Malformed("sandboxd's answer is not of a fixed length")
    try:
        length = int(response.getheader("Content-Length") or "")
    except ValueError:
        raise bounded.Malformed("sandboxd's answer has no valid length") from None
    if not 0 <= length <= limit:
        raise bounded.TooLarge(f"sandboxd announced {length} bytes (at most {limit})")
    return length


def _count(header: dict, name: str, high: int = MAX_COUNT) -> int:
    value = header.get(name)
    if type(value) is not int or not 0 <= value <= high:
        raise bounded.Malformed(f"{name} is not a count")
    return value


def _flag(header: dict, name: str) -> bool:
    value = header.get(name)
    if type(value) is not bool:
        raise bounded.Malformed(f"{name} is not a boolean")
    return value


@_traced("run")
def run(address: str, secret: str, container: str, request: ExecRequest) -> ExecResult:
    """Runs the command through sandboxd. Raises Unavailable when sandboxd is not there and
    Refused when it did not start the command (nothing ran either way),
    bounded.HostileOutput for an answer that is too large, too slow or invalid, and
    OSError / http.client.HTTPException when the connection breaks after sending."""
    started = time.monotonic()
    session = _idle.take(address, container)
    if session is None:
        session = _Session(address, secret, container)
    reused = session
    try:
        if not session.daemon_nonce:
            session.hello()
        body = json.dumps(
            {
                "argv": list(request.argv),
                "exec_id": request.exec_id,
                "env": request.env,
                "workdir": request.workdir,
                "stdin": base64.b64encode(request.stdin).decode() if request.stdin is not None else None,
                "timeout": request.timeout,
                "output_limit": request.output_limit,
                "user": request.user or None,
            }
        ).encode()
        # The kept output of both streams, its header and HTTP's: all an honest sandboxd sends.
        limit = 2 * request.output_limit + HEADER_LIMIT
        budget = bounded.Budget(limit=limit, deadline=started + request.timeout + SLACK, what="sandboxd's answer")
        # From here on the command may have started: a failure is an error, never a second run.
        response = session.post("exec", body, budget, renew=True)
        if response.status != 200:  # refused before running anything (start failed, unauthorized)
            raise Refused(response.status, _error_message(response))
        result = _result(session, response, request, limit, started)
        if session.reusable(response):
            reused = None
            _idle.give(session)
        return result
    finally:
        if reused is not None:
            reused.close()


def _result(session: _Session, response, request: ExecRequest, limit: int, started: float) -> ExecResult:
    length = _length(response, limit)
    digest = hashlib.sha256()
    line = response.readline(min(length, HEADER_LIMIT) + 1)
    if not line.endswith(b"\n") or len(line) > length:
        raise bounded.Malformed("sandboxd's answer has no header line")
    digest.update(line)
    try:
        header = bounded.loads(line, max_bytes=HEADER_LIMIT, max_depth=2)
    except ValueError as exc:
        raise bounded.Malformed(f"sandboxd's header is not valid JSON: {exc}"[:200]) from None
    if not isinstance(header, dict):
        raise bounded.Malformed("sandboxd's header is not an object")
    stdout_len = _count(header, "stdout_len", request.output_limit)
    stderr_len = _count(header, "stderr_len", request.output_limit)
    if len(line) + stdout_len + stderr_len != length:
        raise bounded.Malformed("sandboxd's answer does not add up")
    stdout = _read_exact(response, stdout_len, digest)
    stderr = _read_exact(response, stderr_len, digest)
    session.verify(response, request.exec_id, digest.hexdigest())
    if header.get("exec_id") != request.exec_id:
        raise bounded.Malformed("the answer is for another command", reason="identity")
    exit_code = header.get("exit_code")
    if exit_code is not None and (type(exit_code) is not int or not 0 <= exit_code <= 255):
        raise bounded.Malformed("exit_code is not an exit code")
    stdout_bytes, stderr_bytes = _count(header, "stdout_bytes"), _count(header, "stderr_bytes")
    if stdout_bytes < stdout_len or stderr_bytes < stderr_len:
        raise bounded.Malformed("the byte counts are smaller than the output")
    return ExecResult(
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        stdout_bytes=stdout_bytes,
        stderr_bytes=stderr_bytes,
        truncated=_flag(header, "truncated") or stdout_bytes > stdout_len or stderr_bytes > stderr_len,
        timed_out=_flag(header, "timed_out"),
        oom_killed=_flag(header, "oom_killed"),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


# ---- sandboxd's streams (docs/sandboxd.md, "Streams") ----

STREAM_TYPE = "application/vnd.vibebox.stream"
FRAME_HEADER = struct.Struct(">cI")
MAX_OUTPUT_FRAME = 64 * 1024  # sandboxd sends at most this per output frame
MAX_EXIT_FRAME = 16 * 1024
STDIN_FRAME = 1 << 20
UNLIMITED = 1 << 62  # a stream's bytes are bounded by its deadline and its frames, not in total


class _Output:
    """What a stream printed: kept up to the request's limit per stream, counted beyond, and
    handed to the request's callback as it comes."""

    def __init__(self, request: ExecRequest, on_lost=None):
        self.request = request
        self.kept = {"stdout": bytearray(), "stderr": bytearray()}
        self.total = {"stdout": 0, "stderr": 0}
        self.lost = 0  # bytes an attach missed (the buffer had dropped them)
        self.on_lost = on_lost

    def missed(self, count: int) -> None:
        self.lost += count
        if self.on_lost is not None:
            self.on_lost(count)

    def add(self, stream: str, data: bytes) -> None:
        self.total[stream] += len(data)
        room = self.request.output_limit - len(self.kept[stream])
        if room > 0:
            self.kept[stream] += data[:room]
        if self.request.on_output is not None:
            self.request.on_output(stream, data)


def _frame(reader, limit: int) -> tuple[bytes, bytes]:
    head = reader.read(FRAME_HEADER.size)
    if len(head) != FRAME_HEADER.size:
        raise bounded.Malformed("sandboxd's stream ended without an exit frame")
    kind, size = FRAME_HEADER.unpack(head)
    if size > limit:
        raise bounded.TooLarge(f"sandboxd sent a {size}-byte frame (at most {limit})")
    payload = reader.read(size) if size else b""
    if len(payload) != size:
        raise bounded.Malformed("sandboxd's stream ended inside a frame")
    return kind, payload


def _feed(send, request: ExecRequest, done: threading.Event) -> None:
    """Stdin, resizes and signals, from the request's control (or its fixed stdin), as frames."""
    try:
        if request.stdin is not None:
            for start in range(0, len(request.stdin), STDIN_FRAME):
                send(b"i", request.stdin[start : start + STDIN_FRAME])
            if request.control is None:
                send(b"c")
        control = request.control
        while control is not None and not done.is_set():
            select.select([control.wake_fd], [], [], 0.5)
            while True:  # until the control is empty: a resize stops a take, in order with the input
                data, close, signals = control.take()
                view = memoryview(data)
                for start in range(0, len(data), STDIN_FRAME):
                    send(b"i", view[start : start + STDIN_FRAME])
                for name in signals:
                    send(b"s", name.encode())
                size = control.take_resize()
                if size is not None:
                    send(b"r", json.dumps({"cols": size[0], "rows": size[1]}).encode())
                if close:
                    send(b"c")
                if size is None and not (data and control.buffered):
                    break
    except (OSError, ValueError):
        pass  # the stream ended (the reader sees why), or the control was closed (its fd is -1)


def _open(address: str, secret: str, container: str, kind: str, body: dict, exec_id: str, deadline: float):
    """A stream of sandboxd's (`stream`, `process/attach`): (session, its socket, the answer) once
    the answer proved itself sandboxd's; Unavailable when sandboxd is not there; Refused when it
    refused (nothing ran, nothing attached). The caller closes both."""
    session = _Session(address, secret, container)
    raw = None
    try:
        session.hello()
        budget = bounded.Budget(limit=UNLIMITED, deadline=deadline, what="sandboxd's stream")
        raw = session.connection.sock.hold()
        response = session.post(kind, json.dumps(body).encode(), budget)
        if response.status != 200:  # refused: nothing ran, nothing attached
            message = _error_message(response)
            session.close()
            raw.close()
            raise Refused(response.status, message)
        if response.getheader("Content-Type") != STREAM_TYPE:
            raise bounded.Malformed("sandboxd's answer is not a stream")
        session.verify(response, exec_id, "stream")
        return session, raw, response
    except BaseException:
        session.close()
        if raw is not None:
            raw.close()
        raise


def _frame_object(payload: bytes, what: str) -> dict:
    try:
        answer = bounded.loads(payload, max_bytes=MAX_EXIT_FRAME)
    except ValueError:
        raise bounded.Malformed(f"the {what} frame is not valid JSON") from None
    if not isinstance(answer, dict):
        raise bounded.Malformed(f"the {what} frame is not an object")
    return answer


def _pump(response, output: _Output, kinds: tuple[bytes, ...] = (b"o", b"e")) -> dict:
    """Reads frames into `output` until the exit frame (output frames of `kinds` only); answers
    the exit frame's object."""
    while True:
        kind, payload = _frame(response.fp, MAX_OUTPUT_FRAME)
        if kind in kinds:
            output.add("stdout" if kind == b"o" else "stderr", payload)
        elif kind == b"l":
            output.missed(_count(_frame_object(payload, "lost"), "lost"))
        elif kind == b"x":
            return _frame_object(payload, "exit")
        else:
            raise bounded.Malformed(f"sandboxd sent a frame of unknown type {kind!r}")


STDIN_IN_FLIGHT = 256 * 1024  # the send buffer of a stream that takes stdin (the kernel doubles it)


def _sender(raw):
    """Frames to sandboxd on `raw`. Its send buffer is kept small: loopback's grows to MiB, and
    stdin held there is stdin the server took from its client ahead of the command (STDIN_BUFFER
    is the bound that should count)."""
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STDIN_IN_FLIGHT)
    lock = threading.Lock()

    def send(kind: bytes, payload: bytes | memoryview = b"") -> None:
        with lock:  # header and payload apart: stdin comes in MiB, not copied once more
            raw.sendall(FRAME_HEADER.pack(kind, len(payload)))
            if payload:
                raw.sendall(payload)

    return send


@_traced("stream")
def stream(address: str, secret: str, container: str, request: ExecRequest) -> ExecResult:
    """Runs a command through sandboxd's /stream: output to `request.on_output` as it comes,
    stdin and signals from `request.control`. Raises Unavailable (not there) or Refused (it could
    not start the command): nothing ran; bounded.HostileOutput for a stream that breaks the
    protocol."""
    started = time.monotonic()
    body = {
        "exec_id": request.exec_id,
        "argv": list(request.argv),
        "env": request.env,
        "workdir": request.workdir,
        "user": request.user or None,
        "timeout": request.timeout,
        "stdin": request.stdin is not None or request.control is not None,
    }
    session, raw, response = _open(
        address, secret, container, "stream", body, request.exec_id, started + request.timeout + SLACK
    )
    done = threading.Event()
    try:
        threading.Thread(target=_feed, args=(_sender(raw), request, done), daemon=True).start()
        output = _Output(request)
        return _stream_result(_pump(response, output), request, output, started)
    finally:
        done.set()
        session.close()
        raw.close()  # before the exit frame, this kills the command (sandboxd's rule)


# ---- sandboxd's file watch (docs/sandboxd.md, "File watch") ----

MAX_WATCH_PATH = 4096  # bytes of an event's path (sandboxd's watch.MaxPath)
MAX_WATCH_TIME = 40  # characters of an event's time
WATCH_REFUSAL_LIMIT = 16 * 1024


class WatchRefused(Exception):
    """sandboxd did not start a watch: `status` (400, 422, 429, 503) and its `reason` (user,
    not_found, permission, not_directory, invalid, too_many, inotify_limit)."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}"[:300])
        self.status, self.reason, self.message = status, reason, message[:300]


def _watch_path(value, what: str) -> str:
    """A relative path from an event, checked: a string of at most MAX_WATCH_PATH bytes, "." or
    names without NUL, no absolute path and no `..`."""
    if type(value) is not str or not value or len(value) > MAX_WATCH_PATH or "\0" in value:
        raise bounded.Malformed(f"an event's {what} is not a path")
    if len(value.encode(errors="surrogatepass")) > MAX_WATCH_PATH:
        raise bounded.Malformed(f"an event's {what} is too long")
    if value != "." and (value.startswith("/") or any(part in ("", ".", "..") for part in value.split("/"))):
        raise bounded.Malformed(f"an event's {what} is not relative to the watched root")
    return value


def _watch_event(item) -> WatchEvent:
    if not isinstance(item, dict):
        raise bounded.Malformed("a watch event is not an object")
    kind, is_dir, when = item.get("type"), item.get("is_dir"), item.get("time")
    if kind not in WATCH_EVENT_TYPES:
        raise bounded.Malformed("a watch event has an unknown type")
    if type(is_dir) is not bool:
        raise bounded.Malformed("a watch event's is_dir is not a boolean")
    if type(when) is not str or not 0 < len(when) <= MAX_WATCH_TIME:
        raise bounded.Malformed("a watch event's time is not a time")
    try:
        datetime.datetime.fromisoformat(when)
    except ValueError:
        raise bounded.Malformed("a watch event's time is not a time") from None
    source, reason = item.get("from"), item.get("reason")
    if (source is not None) != (kind == "rename"):
        raise bounded.Malformed("a watch event's from belongs to a rename, and a rename has one")
    if (reason is not None) != (kind == "overflow") or (reason is not None and reason not in WATCH_OVERFLOW_REASONS):
        raise bounded.Malformed("a watch event's reason belongs to an overflow, and an overflow has a known one")
    return WatchEvent(
        type=kind,
        path=_watch_path(item.get("path"), "path"),
        is_dir=is_dir,
        time=when,
        from_path=_watch_path(source, "from") if source is not None else None,
        reason=reason,
    )


class _WatchStream:
    """An open watch stream of sandboxd's: its events, read as frames under a total deadline."""

    def __init__(self, session: _Session, raw, response, request: WatchRequest):
        self._session, self._raw, self._response, self._request = session, raw, response, request
        self._lock = threading.Lock()
        self._closed = False
        self.ended: str | None = None

    def __iter__(self) -> Iterator[WatchEvent]:
        try:
            while True:
                try:
                    kind, payload = _frame(self._response.fp, MAX_OUTPUT_FRAME)
                except bounded.TooSlow:
                    self.ended = "timeout"  # the caller's deadline for the whole watch
                    return
                except (OSError, ValueError, bounded.HostileOutput):
                    if self._closed:  # close() cut it: not sandboxd's doing
                        self.ended = "closed"
                        return
                    raise
                if kind == b"w":
                    try:
                        batch = bounded.loads(payload, max_bytes=MAX_OUTPUT_FRAME, max_depth=3)
                    except ValueError:
                        raise bounded.Malformed("a watch frame is not valid JSON") from None
                    if not isinstance(batch, list) or not batch:
                        raise bounded.Malformed("a watch frame is not a list of events")
                    yield from [_watch_event(item) for item in batch]  # all checked before any goes out
                elif kind == b"x":
                    end = _frame_object(payload, "end")
                    if end.get("exec_id") != self._request.watch_id:
                        raise bounded.Malformed("the end frame is for another watch", reason="identity")
                    if end.get("reason") not in WATCH_END_REASONS:
                        raise bounded.Malformed("the end frame has an unknown reason")
                    self.ended = end["reason"]
                    return
                else:
                    raise bounded.Malformed(f"sandboxd sent a frame of unknown type {kind!r} in a watch")
        finally:
            self.close()

    def close(self) -> None:
        """Ends the watch: sandboxd frees its watches when the connection closes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self._raw.shutdown(socket.SHUT_RDWR)
        self._session.close()
        self._raw.close()


@_traced("watch")
def watch(address: str, secret: str, container: str, request: WatchRequest) -> _WatchStream:
    """Opens a file watch (POST /watch): the watch is in place when this returns. Unavailable when
    sandboxd is not there; WatchRefused when it did not start the watch. Iterating the answer
    raises bounded.HostileOutput for a stream that breaks the protocol."""
    body = {
        "exec_id": request.watch_id,
        "path": request.path,
        "recursive": request.recursive,
        "user": request.user or None,
        "excludes": list(request.excludes),
    }
    session = _Session(address, secret, container)
    raw = None
    try:
        session.hello()
        budget = bounded.Budget.within(request.timeout, limit=UNLIMITED, what="sandboxd's watch")
        raw = session.connection.sock.hold()
        response = session.post("watch", json.dumps(body).encode(), budget)
        if response.status != 200:  # refused: no watch
            answer = response.read(_length(response, WATCH_REFUSAL_LIMIT))
            try:
                data = bounded.loads(answer, max_bytes=WATCH_REFUSAL_LIMIT)
            except ValueError:
                data = None
            data = data if isinstance(data, dict) else {}
            reason, message = data.get("reason"), data.get("error")
            raise WatchRefused(
                response.status,
                reason if isinstance(reason, str) else "",
                message if isinstance(message, str) else "",
            )
        if response.getheader("Content-Type") != STREAM_TYPE:
            raise bounded.Malformed("sandboxd's answer is not a stream")
        session.verify(response, request.watch_id, "stream")
        return _WatchStream(session, raw, response, request)
    except BaseException:
        session.close()
        if raw is not None:
            raw.close()
        raise


# ---- sandboxd's background processes and terminals ----


def _json_call(address: str, secret: str, container: str, kind: str, body: dict) -> tuple[int, object]:
    """A signed request whose answer is one JSON object, signed when it is a 200: (status, the
    object). Unavailable when sandboxd is not there."""
    session = _Session(address, secret, container)
    try:
        session.hello()
        budget = bounded.Budget.within(HELLO_SECONDS + 10.0, limit=HEADER_LIMIT * 64, what=f"sandboxd's {kind}")
        response = session.post(kind, json.dumps(body).encode(), budget)
        payload = response.read(_length(response, HEADER_LIMIT * 64))
        if response.status == 200:
            session.verify(response, body["exec_id"], hashlib.sha256(payload).hexdigest())
        try:
            return response.status, bounded.loads(payload, max_bytes=HEADER_LIMIT * 64)
        except ValueError:
            return response.status, None
    finally:
        session.close()


def _started(answer: tuple[int, object], exec_id: str, what: str) -> dict:
    """The answer to /process/start or /terminal/open, checked; Refused when nothing ran."""
    status, data = answer
    if status != 200:
        raise Refused(status, data.get("error", "") if isinstance(data, dict) else "")
    if not isinstance(data, dict) or data.get("exec_id") != exec_id or type(data.get("pid")) is not int:
        raise bounded.Malformed(f"sandboxd's answer to a {what} is malformed")
    return data


def _command_body(request: ExecRequest) -> dict:
    return {
        "exec_id": request.exec_id,
        "argv": list(request.argv),
        "env": request.env,
        "workdir": request.workdir,
        "user": request.user or None,
        "timeout": request.timeout,
    }


@_traced("process start")
def process_start(address: str, secret: str, container: str, request: ExecRequest) -> dict:
    """Starts a background process in sandboxd: {exec_id, pid, started_at}. Raises Unavailable
    when sandboxd is not there, Refused when it did not start it (409 the id is taken, 429 too many
    running, 422 it could not start: nothing ran)."""
    answer = _json_call(address, secret, container, "process/start", _command_body(request))
    return _started(answer, request.exec_id, "process start")


@_traced("terminal open")
def terminal_open(
    address: str, secret: str, container: str, request: ExecRequest, *, cols: int, rows: int, idle_timeout: float
) -> dict:
    """Opens a terminal in sandboxd (request.argv on a PTY of cols x rows, ended after
    `idle_timeout` seconds without input, resize or output; 0: never): as process_start."""
    body = {**_command_body(request), "cols": cols, "rows": rows, "idle_timeout": idle_timeout}
    return _started(_json_call(address, secret, container, "terminal/open", body), request.exec_id, "terminal open")


def _listed(address: str, secret: str, container: str, kind: str, key: str) -> list[dict]:
    status, data = _json_call(address, secret, container, f"{kind}/list", {"exec_id": ""})
    entries = data.get(key) if isinstance(data, dict) and status == 200 else None
    if not isinstance(entries, list) or not all(isinstance(p, dict) for p in entries):
        raise bounded.Malformed(f"sandboxd's {kind} list is malformed")
    return entries


@_traced("process list")
def process_list(address: str, secret: str, container: str) -> list[dict]:
    """The background processes sandboxd keeps (running and recently finished), oldest first."""
    return _listed(address, secret, container, "process", "processes")


@_traced("terminal list")
def terminal_list(address: str, secret: str, container: str) -> list[dict]:
    """The terminals sandboxd keeps (open and recently ended), oldest first."""
    return _listed(address, secret, container, "terminal", "terminals")


def _signalled(address: str, secret: str, container: str, kind: str, body: dict) -> bool:
    exec_id = body["exec_id"]
    status, data = _json_call(address, secret, container, f"{kind}/kill", body)
    if status == 404:
        return False
    if status != 200 or not isinstance(data, dict) or data.get("exec_id") != exec_id:
        raise bounded.Malformed(f"sandboxd's answer to a {kind} kill is malformed")
    return True


@_traced("process kill")
def process_kill(address: str, secret: str, container: str, exec_id: str, signal: str = "KILL") -> bool:
    """Signals a background process (KILL: the kill contract with the sweep): True when sandboxd
    knows it, False when it does not (404); Unavailable when sandboxd is not there."""
    return _signalled(address, secret, container, "process", {"exec_id": exec_id, "signal": signal})


@_traced("terminal kill")
def terminal_kill(address: str, secret: str, container: str, exec_id: str, signal: str = "KILL") -> bool:
    """Signals a terminal (KILL: it ends, and every process it started with it; no sweep: what
    it started carries its marker): as process_kill."""
    body = {"exec_id": exec_id, "signal": signal, "sweep": False}
    return _signalled(address, secret, container, "terminal", body)


class Detached(Exception):
    """An attach left by its `stop` event before the process ended."""


def _attach(
    address: str,
    secret: str,
    container: str,
    kind: str,
    exec_id: str,
    *,
    start,
    request: ExecRequest,
    stop: threading.Event | None,
    on_lost,
    kinds: tuple[bytes, ...] = (b"o", b"e"),
) -> tuple[dict, _Output, int]:
    """Follows a process or terminal (`kind`: its attach endpoint) from `start` until it ends:
    (its exit frame, its fields checked as far as both share them; the output; the offset the
    attach started from). Unavailable: sandboxd is not there."""
    started = time.monotonic()
    body = {"exec_id": exec_id, "from": start}
    session, raw, response = _open(address, secret, container, kind, body, exec_id, started + request.timeout + SLACK)
    try:
        offset = int(response.getheader("X-VibeBox-Offset") or "")
    except ValueError:
        session.close()
        raw.close()
        raise bounded.Malformed("sandboxd's attach has no offset") from None
    done = threading.Event()
    if stop is not None:
        threading.Thread(target=_cut_when, args=(stop, done, raw), daemon=True).start()
    try:
        control_only = dataclasses.replace(request, stdin=None)
        threading.Thread(target=_feed, args=(_sender(raw), control_only, done), daemon=True).start()
        output = _Output(request, on_lost)
        try:
            answer = _pump(response, output, kinds)
        except (OSError, bounded.HostileOutput):
            if stop is not None and stop.is_set():
                raise Detached from None  # we cut it: not sandboxd's doing
            raise
        if answer.get("exec_id") != exec_id:
            raise bounded.Malformed("the exit frame is for another process", reason="identity")
        exit_code = answer.get("exit_code")
        if exit_code is not None and (type(exit_code) is not int or not 0 <= exit_code <= 255):
            raise bounded.Malformed("exit_code is not an exit code")
        return answer, output, offset
    finally:
        done.set()
        session.close()
        raw.close()


@_traced("process attach")
def process_attach(
    address: str,
    secret: str,
    container: str,
    exec_id: str,
    *,
    start="start",
    request: ExecRequest,
    stop: threading.Event | None = None,
    on_lost=None,
) -> tuple[ExecResult, int]:
    """Follows a background process from `start` ("start", "end" or an offset) until it ends:
    output to `request.on_output`, signals from `request.control`; answers its result and the
    offset the attach started from (Unavailable: sandboxd is not there; Refused 404: it does
    not know the process). `on_lost(n)` hears of output no longer kept. Leaving early
    (`stop` set, or an exception from the callback) only detaches: `stop` ends the attach with
    OSError. The result's duration is the process's own, from its start."""
    answer, output, offset = _attach(
        address, secret, container, "process/attach", exec_id, start=start, request=request, stop=stop, on_lost=on_lost
    )
    result = ExecResult(
        exit_code=answer.get("exit_code"),
        stdout=bytes(output.kept["stdout"]),
        stderr=bytes(output.kept["stderr"]),
        stdout_bytes=_count(answer, "stdout_bytes"),
        stderr_bytes=_count(answer, "stderr_bytes"),
        truncated=output.lost > 0 or any(output.total[s] > len(output.kept[s]) for s in output.kept),
        timed_out=_flag(answer, "timed_out"),
        oom_killed=_flag(answer, "oom_killed"),
        duration_ms=_count(answer, "duration_ms"),
    )
    return result, offset


@_traced("terminal attach")
def terminal_attach(
    address: str,
    secret: str,
    container: str,
    exec_id: str,
    *,
    start="start",
    request: ExecRequest,
    stop: threading.Event | None = None,
    on_lost=None,
) -> tuple[TerminalExit, int]:
    """Attaches to a terminal as process_attach does to a process: what it shows (`o` frames) to
    `request.on_output` as ("stdout", bytes), input, resizes and signals from `request.control`;
    answers how it ended and the offset the attach started from."""
    answer, _, offset = _attach(
        address,
        secret,
        container,
        "terminal/attach",
        exec_id,
        start=start,
        request=request,
        stop=stop,
        on_lost=on_lost,
        kinds=(b"o",),
    )
    idle = answer.get("idle", False)  # omitted when false
    if type(idle) is not bool:
        raise bounded.Malformed("idle is not a boolean")
    ended = TerminalExit(
        exit_code=answer.get("exit_code"),
        idle=idle,
        timed_out=_flag(answer, "timed_out"),
        output_bytes=_count(answer, "stdout_bytes"),
    )
    return ended, offset


def _cut_when(stop: threading.Event, done: threading.Event, raw) -> None:
    """Shuts the attach's socket down once `stop` is set (the reader then fails), unless it ended."""
    while not done.is_set():
        if stop.wait(0.5):
            if not done.is_set():
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_RDWR)
            return


def _stream_result(answer: object, request: ExecRequest, output: _Output, started: float) -> ExecResult:
    if not isinstance(answer, dict) or answer.get("exec_id") != request.exec_id:
        raise bounded.Malformed("the exit frame is for another command", reason="identity")
    exit_code = answer.get("exit_code")
    if exit_code is not None and (type(exit_code) is not int or not 0 <= exit_code <= 255):
        raise bounded.Malformed("exit_code is not an exit code")
    for stream in ("stdout", "stderr"):
        if _count(answer, f"{stream}_bytes") != output.total[stream]:
            raise bounded.Malformed(f"the exit frame's {stream}_bytes does not match what came")
    return ExecResult(
        exit_code=exit_code,
        stdout=bytes(output.kept["stdout"]),
        stderr=bytes(output.kept["stderr"]),
        stdout_bytes=output.total["stdout"],
        stderr_bytes=output.total["stderr"],
        truncated=any(output.total[s] > len(output.kept[s]) for s in output.kept),
        timed_out=_flag(answer, "timed_out"),
        oom_killed=_flag(answer, "oom_killed"),
        duration_ms=int((time.monotonic() - started) * 1000),
    )


# ---- sandboxd's files (docs/sandboxd.md, "Files") ----
#
# Everything runs in sandboxd as the sandbox user (the kernel checks each path operation as that
# user), inside the container's own filesystem: tmpfs mounts such as /tmp included, no shell
# needed. Small calls are signed JSON both ways; a read or a tar comes as frames whose last one
# signs the data; an upload is a signed JSON line, the data, then a signature of the data, which
# sandboxd checks before a written file replaces the old one.

FILE_FRAME = 1 << 20  # bytes of a data frame sandboxd sends
FILE_ANSWER_LIMIT = 64 * 1024 * 1024  # bytes of a file call's JSON answer (a listing)
FILE_CHUNK = 1 << 20  # bytes sent at once


class ShortBody(ValueError):
    """The data to upload ended before its announced size (the connection is then dropped, and
    sandboxd removes what it wrote)."""


class FileRefused(Exception):
    """sandboxd refused a file request: its status (403, 404, 409, 507...), code and message."""

    def __init__(self, status: int, code: str, message: str, path: str = ""):
        super().__init__(f"{status} {code}: {message}"[:500])
        self.status, self.code, self.message, self.path = status, code, message[:500], path[:4096]


def _refused(status: int, payload: bytes) -> FileRefused:
    try:
        data = bounded.loads(payload, max_bytes=HEADER_LIMIT)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return FileRefused(status, "", "sandboxd refused the file request")
    text = {key: value if isinstance(value, str) else "" for key, value in data.items()}
    return FileRefused(status, text.get("code", ""), text.get("error", ""), text.get("path", ""))


@_traced("file")
def file_call(address: str, secret: str, container: str, kind: str, body: dict, *, timeout: float = 60.0):
    """files/stat, list, mkdir, move or delete: the answer's `result`. Raises Unavailable when
    sandboxd is not there (nothing was sent), FileRefused for a refusal."""
    session = _Session(address, secret, container)
    try:
        session.hello()
        exec_id = f"files-{secrets.token_hex(8)}"
        budget = bounded.Budget.within(
            timeout + SLACK, limit=FILE_ANSWER_LIMIT + HEADER_LIMIT, what=f"sandboxd's {kind}"
        )
        response = session.post(kind, json.dumps({**body, "exec_id": exec_id}).encode(), budget)
        payload = response.read(_length(response, FILE_ANSWER_LIMIT))
        if response.status != 200:
            raise _refused(response.status, payload)
        session.verify(response, exec_id, hashlib.sha256(payload).hexdigest())
        try:
            data = bounded.loads(payload, max_bytes=FILE_ANSWER_LIMIT)
        except ValueError as exc:
            raise bounded.Malformed(f"sandboxd's {kind} answer is not valid JSON: {exc}"[:200]) from None
        if not isinstance(data, dict) or data.get("exec_id") != exec_id or not isinstance(data.get("result"), dict):
            raise bounded.Malformed(f"sandboxd's {kind} answer is malformed")
        return data["result"]
    finally:
        session.close()


class FileStream:
    """A read or tar from sandboxd: iterate for the data (the last frame's signature is checked
    before the iteration ends), close to let go early. `header` is a read's file Info."""

    def __init__(self, session: _Session, raw, response, exec_id: str, header: dict | None):
        self._session, self._raw, self._response, self._exec_id = session, raw, response, exec_id
        self.header = header
        self._digest = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        try:
            count = 0
            while True:
                kind, payload = _frame(self._response.fp, FILE_FRAME)
                if kind == b"d":
                    self._digest.update(payload)
                    count += len(payload)
                    yield payload
                elif kind == b"x":
                    end = _frame_object(payload, "end")
                    if end.get("ok") is not True:
                        code, message = end.get("code"), end.get("error")
                        raise FileRefused(
                            409, code if isinstance(code, str) else "", message if isinstance(message, str) else ""
                        )
                    expected = _sign(
                        self._session.key,
                        "answer",
                        self._session.container,
                        self._session.server_nonce,
                        self._exec_id,
                        self._digest.hexdigest(),
                    )
                    signature = end.get("signature")
                    if not isinstance(signature, str) or not hmac.compare_digest(signature, expected):
                        raise bounded.Malformed("the data's signature does not match", reason="identity")
                    if end.get("bytes") != count:
                        raise bounded.Malformed("the data's length does not match")
                    return
                else:
                    raise bounded.Malformed(f"sandboxd sent a frame of unknown type {kind!r}")
        finally:
            self.close()

    def close(self) -> None:
        self._session.close()
        self._raw.close()


@_traced("file")
def file_stream(address: str, secret: str, container: str, kind: str, body: dict, *, timeout: float) -> FileStream:
    """files/read (the file Info first, in `header`) or files/tar. Raises Unavailable when sandboxd
    is not there, FileRefused when it refused (nothing was sent)."""
    session = _Session(address, secret, container)
    raw = None
    try:
        session.hello()
        exec_id = f"files-{secrets.token_hex(8)}"
        budget = bounded.Budget(limit=UNLIMITED, deadline=time.monotonic() + timeout, what=f"sandboxd's {kind}")
        raw = session.connection.sock.hold()
        response = session.post(kind, json.dumps({**body, "exec_id": exec_id}).encode(), budget)
        if response.status != 200:
            error = _refused(response.status, response.read(_length(response, HEADER_LIMIT)))
            raise error
        if response.getheader("Content-Type") != STREAM_TYPE:
            raise bounded.Malformed("sandboxd's answer is not a stream")
        session.verify(response, exec_id, "stream")
        header = None
        if kind == "files/read":
            frame, payload = _frame(response.fp, HEADER_LIMIT)
            if frame != b"h":
                raise bounded.Malformed("sandboxd's read did not start with the file's header")
            header = _frame_object(payload, "header")
        return FileStream(session, raw, response, exec_id, header)
    except BaseException:
        session.close()
        if raw is not None:
            raw.close()
        raise


@_traced("file")
def file_upload(
    address: str,
    secret: str,
    container: str,
    kind: str,
    body: dict,
    fileobj,
    size: int,
    *,
    timeout: float,
):
    """files/write or files/untar: `size` bytes of `fileobj` streamed after the signed JSON line,
    then their signature. The answer's `result`. Raises Unavailable when sandboxd is not there
    (nothing was sent), FileRefused for a refusal, ShortBody when `fileobj` holds fewer bytes."""
    session = _Session(address, secret, container)
    try:
        session.hello()
        exec_id = f"files-{secrets.token_hex(8)}"
        line = json.dumps({**body, "exec_id": exec_id, "size": size}).encode()
        connection = session.connection
        connection.exchange(
            bounded.Budget(limit=FILE_ANSWER_LIMIT, deadline=time.monotonic() + timeout, what=f"sandboxd's {kind}")
        )
        connection.putrequest("POST", f"/{kind}", skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(len(line) + 1 + size + 64))
        connection.putheader("X-VibeBox-Container", container)
        digest_line = hashlib.sha256(line).hexdigest()
        connection.putheader(
            "X-VibeBox-Signature", _sign(session.key, kind, container, session.daemon_nonce, digest_line)
        )
        connection.endheaders()
        sock = connection.sock
        digest = hashlib.sha256()
        try:
            sock.sendall(line + b"\n")
            left = size
            while left > 0:
                chunk = fileobj.read(min(FILE_CHUNK, left))
                if not chunk:
                    raise ShortBody(f"the upload ended {left} bytes early")
                digest.update(chunk)
                sock.sendall(chunk)
                left -= len(chunk)
            mac = _sign(session.key, "data", container, session.daemon_nonce, exec_id, digest.hexdigest())
            sock.sendall(mac.encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # sandboxd gave up on the data: its answer says why, if it is there
        response = connection.getresponse()
        payload = response.read(_length(response, FILE_ANSWER_LIMIT))
        if response.status != 200:
            raise _refused(response.status, payload)
        session.verify(response, exec_id, hashlib.sha256(payload).hexdigest())
        try:
            data = bounded.loads(payload, max_bytes=FILE_ANSWER_LIMIT)
        except ValueError:
            raise bounded.Malformed(f"sandboxd's {kind} answer is not valid JSON") from None
        if not isinstance(data, dict) or data.get("exec_id") != exec_id or not isinstance(data.get("result"), dict):
            raise bounded.Malformed(f"sandboxd's {kind} answer is malformed")
        return data["result"]
    finally:
        session.close()
