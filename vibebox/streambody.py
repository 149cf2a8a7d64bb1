"""Raw uploads reach their view while they arrive, not after.

Django's ASGI handler reads a whole request body (into memory, then a temporary file) before the
view runs. For a 100 MiB upload that is a first copy the client waits through, and only then does
the view send the bytes on to the sandbox: the two legs add up (docs/benchmarks.md, "Files through
sandboxd"). For the upload paths (bodylimit.UPLOAD_PATHS) with a body that is not a multipart form
(Django must parse those itself), this ASGI middleware hands Django an empty body and gives the
view the real one as a blocking file, `body_stream(request)`, fed from the connection as the
client sends it. The file is one end of a socket pair: the event loop writes what arrives into the
other end, and the socket buffers give back-pressure, so a slow sandbox slows the client instead of
filling the server's memory.

A client that goes away, stops sending for VIBEBOX_UPLOAD_IDLE_TIMEOUT, or sends slower on average
than VIBEBOX_UPLOAD_MIN_RATE (after the first idle timeout), ends the file early: the view's read
refuses the upload (400), as with a body that was short.
"""

import asyncio
import contextlib
import socket
import threading
import time

from django.conf import settings

from . import exceptions as errors
from .asgiheaders import header
from .bodylimit import UPLOAD_PATHS

SCOPE_KEY = "vibebox.body_stream"
SOCKET_BUFFER = 1024 * 1024


def body_stream(request):
    """The body to read an upload from: the streamed one under ASGI, else the request itself
    (Django's test client, a body Django already read)."""
    return getattr(request, "scope", {}).get(SCOPE_KEY) or request


def _streamed(scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    if not any(pattern.match(scope["path"]) for pattern in UPLOAD_PATHS):
        return False
    content_type = header(scope, b"content-type").split(";")[0].strip().lower()
    return content_type != "multipart/form-data" and header(scope, b"content-length").strip().isdigit()


class _Body:
    """The view's end: reads block until the bytes arrive or the body is whole. A body that
    ends before its Content-Length (the client left), stalls for the idle timeout, or comes
    slower on average than VIBEBOX_UPLOAD_MIN_RATE once the idle timeout has passed, is refused
    with a 400 from the read itself, so what the view was writing is abandoned, never completed
    with part of it: a trickle cannot hold a request thread and a sandbox connection for long.
    Closed by whoever finishes last, the reading thread or the request: a socket closed under a
    thread blocked on it would not wake it (and its number could be reused)."""

    def __init__(self, sock: socket.socket, length: int, *, idle: float, min_rate: int):
        self._sock = sock
        self._left = length
        self._received = 0
        self._idle = idle
        self._min_rate = min_rate
        self._started = time.monotonic()
        self._reading = threading.Lock()
        self._closing = False
        sock.settimeout(idle)

    def read(self, size: int = -1) -> bytes:
        try:
            with self._reading:
                return self._read(self._left if size < 0 else min(size, self._left))
        finally:
            if self._closing:  # after the lock: a close() that found it held left this to us
                self._sock.close()

    def _too_slow(self) -> bool:
        late = time.monotonic() - self._started - self._idle
        return late > 0 and self._received < late * self._min_rate

    def _read(self, size: int) -> bytes:
        chunks = []
        while size > 0:
            try:
                chunk = b"" if self._closing else self._sock.recv(min(size, SOCKET_BUFFER))
            except OSError:  # the client stalled (the timeout), or the request ended under us
                chunk = b""
            if not chunk or self._too_slow():
                raise errors.ValidationFailed("The upload ended early.", details={"missing": self._left})
            chunks.append(chunk)
            size -= len(chunk)
            self._left -= len(chunk)
            self._received += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._closing = True
        if self._reading.acquire(blocking=False):  # else the reader closes it when its read returns
            try:
                self._sock.close()
            finally:
                self._reading.release()


class StreamedUploads:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if not _streamed(scope):
            return await self.app(scope, receive, send)
        view_end, loop_end = socket.socketpair()
        for sock in (view_end, loop_end):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        loop_end.setblocking(False)
        body = _Body(
            view_end,
            int(header(scope, b"content-length")),
            idle=settings.VIBEBOX_UPLOAD_IDLE_TIMEOUT,
            min_rate=settings.VIBEBOX_UPLOAD_MIN_RATE,
        )
        ended = asyncio.Event()  # the client left, or the response is complete
        pump = asyncio.create_task(self._pump(receive, loop_end, ended))
        told_django = False

        async def django_receive():
            nonlocal told_django
            if not told_django:
                told_django = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await ended.wait()
            return {"type": "http.disconnect"}

        try:
            await self.app({**scope, SCOPE_KEY: body}, django_receive, send)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            loop_end.close()  # a view still reading (its client left) reads the end
            body.close()

    @staticmethod
    async def _pump(receive, sock: socket.socket, ended: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        writing = True
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # http.disconnect: the client left (or the response is complete)
                data = message.get("body", b"")
                if data and writing:
                    try:
                        await loop.sock_sendall(sock, data)
                    except OSError:  # the view stopped reading: what is left is dropped
                        writing = False
                if not message.get("more_body", False) and writing:
                    writing = False
                    sock.shutdown(socket.SHUT_WR)  # the view's end reads the body's end
        finally:
            if writing:  # the client left mid-body: the view's read ends now, not at the timeout
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
            ended.set()
