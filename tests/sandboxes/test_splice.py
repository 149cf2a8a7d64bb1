"""The one splice of the egress proxy's tunnels and the back links' gateway pairings
(apps/sandboxes/splice.py), on real loopback sockets: its idle deadline is no byte in either
direction; a long answer streaming back past it, while the request side is quiet, arrives whole
and the service never sees the request side end."""

import asyncio

from apps.sandboxes.splice import splice

IDLE = 0.2


async def _pair(handler):
    """A client connected to `splice`, itself connected to a service run by `handler`."""
    service = await asyncio.start_server(handler, "127.0.0.1", 0)

    async def front(reader, writer):
        upstream = await asyncio.open_connection("127.0.0.1", service.sockets[0].getsockname()[1])
        try:
            await splice(reader, writer, *upstream, idle=IDLE)
        finally:
            upstream[1].close()
            writer.close()

    server = await asyncio.start_server(front, "127.0.0.1", 0)
    client = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    return client, (service, server)


def test_a_long_answer_streams_past_the_idle_deadline_while_the_request_side_is_quiet():
    async def main():
        loop = asyncio.get_running_loop()
        seen = {}

        async def service(reader, writer):
            await reader.readexactly(4)  # the request; then nothing more comes from the client
            start, sent = loop.time(), 0
            while loop.time() - start < 3 * IDLE:  # answers for three idle deadlines, paced by the client's reads
                writer.write(b"x" * 100)
                await writer.drain()
                sent += 100
                await asyncio.wait_for(acked.wait(), 5)
                acked.clear()
            seen["eof"] = reader.at_eof()
            seen["sent"] = sent
            writer.close()

        acked = asyncio.Event()
        (reader, writer), servers = await _pair(service)
        writer.write(b"ask!")
        await writer.drain()
        got = 0
        while data := await reader.read(65536):
            got += len(data)
            acked.set()
        assert seen == {"eof": False, "sent": got}
        writer.close()
        for server in servers:
            server.close()

    asyncio.run(main())


def test_quiet_both_ways_for_the_idle_deadline_ends_it():
    async def main():
        async def service(reader, writer):
            await reader.read()  # says nothing; its side ends when the splice ends it

        (reader, writer), servers = await _pair(service)
        assert await asyncio.wait_for(reader.read(), 30) == b""  # the splice closed the client's side
        writer.close()
        for server in servers:
            server.close()

    asyncio.run(main())
