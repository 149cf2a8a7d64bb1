"""Bridging blocking producers (engine streams in threads) to a WebSocket, with a bounded queue.

A producer thread hands messages over with `put_from_thread`; when the queue stays full for
VIBEBOX_WS_SLOW_CLIENT_SECONDS (the client is not reading), the client is dropped and the
producer told to stop, so server memory stays bounded whatever the client does.
"""

import asyncio
import concurrent.futures

from django.conf import settings


class Outbox:
    def __init__(self, consumer):
        self.consumer = consumer
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.VIBEBOX_WS_QUEUE_MESSAGES)
        self.dropped = False
        self.task = self.loop.create_task(self._pump())

    async def _pump(self):
        while True:
            message = await self.queue.get()
            if message is None:
                return
            kind, payload = message
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
                # the send completes, and the pump would outlive its connection.
                async with asyncio.timeout(settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS):
                    await self._send(kind, payload)
            except TimeoutError:
                self.dropped = True
                await self.consumer.close(code=4008)  # too slow: dropped
                return

    async def _send(self, kind, payload):
        if kind == "json":
            await self.consumer.send_json(payload)
        elif kind == "bytes":
            await self.consumer.send(bytes_data=payload)
        elif kind == "close":
            await self.consumer.close(code=payload)

    async def put(self, kind: str, payload) -> bool:
        if self.dropped:
            return False
        try:
            async with asyncio.timeout(settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS):
                await self.queue.put((kind, payload))
            return True
        except TimeoutError:
            self.dropped = True
            self.loop.create_task(self.consumer.close(code=4008))
            return False

    def put_from_thread(self, kind: str, payload) -> bool:
        """Blocks the producer thread while the client is behind (backpressure); False once dropped."""
        if self.dropped or self.loop.is_closed():
            return False
        future = asyncio.run_coroutine_threadsafe(self.put(kind, payload), self.loop)
        try:
            return future.result(timeout=settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS + 5)
        except (concurrent.futures.TimeoutError, RuntimeError):
            self.dropped = True
            return False

    async def finish(self):
        """Waits until everything queued has been sent."""
        if not self.dropped:
            await self.queue.put(None)
            await self.task

    def cancel(self):
        self.dropped = True
        self.task.cancel()
