"""Reading what comes out of a sandbox: every byte of it is hostile.

Sandbox code controls what its commands print (which sandboxd relays; and the address cached for
its sandboxd may by then be another container's), what it logs and what Claude prints. So every
reader of sandbox output holds a `Budget`: a cap on the bytes read and a TOTAL deadline (not a
per-read timeout, which a sender dripping one byte a second never trips). The pieces here are the one way to read such
output in the engine layer:

- `SocketReader` / `BoundedSocket`: a socket whose reads are charged to a budget (http.client
  runs over it, so headers and body are both capped and both under the deadline);
- `Frames`: Docker's multiplexed stdout/stderr stream, demultiplexed as bytes arrive (a frame
  header announcing 4 GiB buffers nothing);
- `Lines`: a line splitter that cuts lines longer than a limit instead of buffering them;
- `loads`: JSON with a size cap, a nesting limit (vibebox.safejson) and no NaN or Infinity
  (strict JSON renderers refuse them later, as a 500).

A reader that runs out raises `HostileOutput` with a short `reason`; the driver turns it into a
clean `502 runtime_error` with that reason in `details`, never a hang or a 500.
"""

from __future__ import annotations

import io
import json
import math
import socket
import struct
import time

from vibebox import safejson


class HostileOutput(Exception):
    """A sandbox sent more than allowed, too slowly, or something malformed."""

    reason = "invalid"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or self.reason


class TooLarge(HostileOutput):
    reason = "too_large"


class TooSlow(HostileOutput):
    reason = "deadline"


class Malformed(HostileOutput):
    reason = "malformed"


class Budget:
    """A byte cap and a total deadline (time.monotonic()) for reading one answer."""

    def __init__(self, *, limit: int, deadline: float, what: str = "the sandbox's answer"):
        self.limit = limit
        self.deadline = deadline
        self.what = what
        self.used = 0

    @classmethod
    def within(cls, seconds: float, *, limit: int, what: str = "the sandbox's answer") -> Budget:
        return cls(limit=limit, deadline=time.monotonic() + seconds, what=what)

    def remaining(self) -> float:
        """Seconds left; raises TooSlow once the deadline has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TooSlow(f"{self.what} did not arrive in time")
        return left

    def room(self) -> int:
        """Bytes that may still be read; raises TooLarge when none."""
        left = self.limit - self.used
        if left <= 0:
            raise TooLarge(f"{self.what} is larger than {self.limit} bytes")
        return left

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise TooLarge(f"{self.what} is larger than {self.limit} bytes")


class SocketReader(io.RawIOBase):
    """A socket's incoming bytes, each read charged to `budget` (cap and total deadline)."""

    def __init__(self, sock: socket.socket, budget: Budget):
        self._sock = sock
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        room = self.budget.room()
        self._sock.settimeout(self.budget.remaining())
        try:
            size = self._sock.recv_into(memoryview(buffer)[: min(len(buffer), room)])
        except TimeoutError:
            raise TooSlow(f"{self.budget.what} did not arrive in time") from None
        self.budget.charge(size)
        return size


class BoundedSocket:
    """What http.client needs of a socket, with every read under `budget` (set one per answer)."""

    def __init__(self, sock: socket.socket, budget: Budget):
        self._sock = sock
        self.budget = budget

    def makefile(self, mode: str = "rb", *args, **kwargs):
        return io.BufferedReader(_Delegating(self), 65536)

    def sendall(self, data) -> None:
        self._sock.settimeout(self.budget.remaining())
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise TooSlow(f"sending to {self.budget.what.removeprefix('the ')} took too long") from None

    def settimeout(self, value) -> None:  # http.client sets timeouts; the budget decides them
        pass

    def fileno(self) -> int:  # for select(): whether an idle connection has something to read
        return self._sock.fileno()

    def close(self) -> None:
        if not self.held:
            self._sock.close()

    # http.client closes the socket of an answer without a length when it has read its headers
    # (it "passes the connection to the response"); a stream's frames follow on it, both ways.
    held = False

    def hold(self) -> socket.socket:
        """Keeps the socket open past http.client's close; the caller closes what this answers."""
        self.held = True
        return self._sock


class _Delegating(SocketReader):
    """A SocketReader that follows its BoundedSocket's current budget."""

    def __init__(self, owner: BoundedSocket):
        super().__init__(owner._sock, owner.budget)
        self._owner = owner

    def readinto(self, buffer) -> int:
        self.budget = self._owner.budget
        return super().readinto(buffer)


_FRAME = struct.Struct(">BxxxL")
FRAME_HEADER = _FRAME.size
STREAMS = {1: "stdout", 2: "stderr"}


class Frames:
    """Docker's multiplexed attach/log stream (8-byte header: stream, size), demultiplexed as the
    bytes arrive: `feed` answers (stream, payload piece) pairs and keeps at most a partial header,
    whatever size a header announces."""

    def __init__(self):
        self._header = b""
        self._stream = "stdout"
        self._left = 0

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        view = memoryview(data)
        while view:
            if self._left == 0:
                need = _FRAME.size - len(self._header)
                self._header += bytes(view[:need])
                view = view[need:]
                if len(self._header) == _FRAME.size:
                    kind, self._left = _FRAME.unpack(self._header)
                    self._stream = STREAMS.get(kind, "stdout")
                    self._header = b""
                continue
            piece = view[: self._left]
            self._left -= len(piece)
            view = view[len(piece) :]
            out.append((self._stream, bytes(piece)))
        return out

    @property
    def partial(self) -> bool:
        return bool(self._header or self._left)


class Lines:
    """Splits a byte stream into lines of at most `limit` bytes: a longer line is cut into
    pieces of `limit` bytes (each reported as cut), so no line is ever buffered whole."""

    def __init__(self, limit: int):
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """(line without its newline, cut?) for each line completed by `data`."""
        out: list[tuple[bytes, bool]] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            chunk = data[start:] if end < 0 else data[start:end]
            while len(self._buffer) + len(chunk) > self.limit:
                room = self.limit - len(self._buffer)
                self._buffer += chunk[:room]
                chunk = chunk[room:]
                out.append((bytes(self._buffer), True))
                self._buffer.clear()
            self._buffer += chunk
            if end < 0:
                return out
            out.append((bytes(self._buffer), False))
            self._buffer.clear()
            start = end + 1

    def flush(self) -> list[tuple[bytes, bool]]:
        rest, self._buffer = bytes(self._buffer), bytearray()
        return [(rest, False)] if rest else []


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str, *, max_bytes: int, max_depth: int = safejson.MAX_DEPTH):
    """JSON from a sandbox: at most `max_bytes`, nested at most `max_depth`, numbers finite.
    Raises ValueError (safejson.TooDeep for nesting) for anything else."""
    if len(data) > max_bytes:
        raise ValueError(f"JSON larger than {max_bytes} bytes")
    try:
        value = json.loads(data, parse_constant=_no_constants)
    except RecursionError:
        raise safejson.TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    safejson.check_depth(value, max_depth=max_depth)
    stack = [value]
    while stack:  # 1e999 parses as inf: refuse it as NaN and Infinity are
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("JSON number out of range")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value
