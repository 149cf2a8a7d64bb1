"""A container's log stream from the engine, as (unix time, line) pairs; closable from any thread.

The lines are the sandbox's own output (its main process, and anything that writes to it), so
they are read as hostile: frames are demultiplexed as bytes arrive (bounded.Frames, whatever size
a frame header claims) and a line longer than LINE_LIMIT is cut into pieces of that size instead
of being buffered whole.
"""

import contextlib
import datetime as dt
import socket

from . import bounded

LINE_LIMIT = 64 * 1024  # bytes of one log line (the engine splits its own entries at 16 KiB)
READ_BYTES = 64 * 1024


def _timestamp(text: str) -> float:
    # RFC 3339 with nanoseconds: 2026-11-26T18:22:13.112746749Z
    base, _, fraction = text.rstrip("Z").partition(".")
    moment = dt.datetime.fromisoformat(base).replace(tzinfo=dt.UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def _entry(line: bytes) -> tuple[float, str]:
    stamp, _, text = line.decode("utf-8", errors="replace").partition(" ")
    try:
        return _timestamp(stamp), text
    except (ValueError, OverflowError):
        return 0.0, line.decode("utf-8", errors="replace")


class LogStream:
    def __init__(self, response):
        self._response = response

    def _chunks(self):
        """The stream's bytes, each read no larger than what the engine has announced (a read of
        more would wait for bytes a quiet, followed log may not send for hours)."""
        raw = self._response.raw
        while True:
            header = raw.read(bounded.FRAME_HEADER)
            if len(header) < bounded.FRAME_HEADER:
                return
            yield header
            size = int.from_bytes(header[4:8], "big")
            while size:
                piece = raw.read(min(size, READ_BYTES))
                if not piece:
                    return
                size -= len(piece)
                yield piece

    def __iter__(self):
        frames = bounded.Frames()
        lines = bounded.Lines(LINE_LIMIT)
        try:
            for chunk in self._chunks():
                for _, data in frames.feed(chunk):
                    for line, _ in lines.feed(data):
                        yield _entry(line)
            for line, _ in lines.flush():
                yield _entry(line)
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
