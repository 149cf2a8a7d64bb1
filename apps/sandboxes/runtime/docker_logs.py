"""A container's log stream from the engine, as (unix time, line) pairs; closable from any thread."""

import contextlib
import datetime as dt
import socket
import struct

_HEADER = struct.Struct(">BxxxL")


def _timestamp(text: str) -> float:
    # RFC 3339 with nanoseconds: 2026-11-26T18:22:13.112746749Z
    base, _, fraction = text.rstrip("Z").partition(".")
    moment = dt.datetime.fromisoformat(base).replace(tzinfo=dt.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


class LogStream:
    def __init__(self, response):
        self._response = response

    def _frames(self):
        raw = self._response.raw
        while True:
            header = raw.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            _, size = _HEADER.unpack(header)
            yield raw.read(size)

    def __iter__(self):
        partial = b""
        try:
            for frame in self._frames():
                partial += frame
                *lines, partial = partial.split(b"\n")
                for line in lines:
                    stamp, _, text = line.decode("utf-8", errors="replace").partition(" ")
                    try:
                        yield _timestamp(stamp), text
                    except ValueError:
                        yield 0.0, line.decode("utf-8", errors="replace")
        except Exception:  # closed from another thread, or the engine went away
            return
        finally:
            self.close()

    def close(self) -> None:
        # Shut the socket down first: that wakes a thread blocked reading it (closing the
        # response alone would wait for that thread).
        with contextlib.suppress(Exception):
            sock = self._response.raw._fp.fp.raw._sock
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()
