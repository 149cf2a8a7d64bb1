"""One splice for the egress proxy's tunnels and the back links' gateway pairings (egress.py,
backlinks.py): copies both ways, each end passed on as a half-close where the transport has one.
The exchange ends when the far side's answer has ended, or when no byte has moved in either
direction for `idle` seconds (a long answer streaming back keeps a quiet request side open)."""

import asyncio
import contextlib

BUFFER = 64 * 1024


async def splice(reader, writer, upstream_reader, upstream_writer, *, idle: float) -> None:
    """`reader`/`writer`: the client's side; `upstream_*`: the service's. Answers when the
    service's side has ended (its answer is over: a client that stops sending only half-closes)
    or after `idle` seconds without a byte read or written either way; both copies are ended."""
    loop = asyncio.get_running_loop()
    last = loop.time()

    async def copy(source, sink):
        nonlocal last
        try:
            while data := await source.read(BUFFER):
                last = loop.time()
                sink.write(data)
                await sink.drain()
                last = loop.time()
        finally:
            with contextlib.suppress(Exception):
                if sink.can_write_eof():
                    sink.write_eof()

    tasks = [asyncio.create_task(copy(reader, upstream_writer)), asyncio.create_task(copy(upstream_reader, writer))]
    try:
        while not tasks[1].done():
            left = last + idle - loop.time()
            if left <= 0:
                break  # quiet both ways for `idle`: ended
            await asyncio.wait([tasks[1]], timeout=left)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
