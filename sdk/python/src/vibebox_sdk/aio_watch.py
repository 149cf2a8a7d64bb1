"""`await sandbox.files.watch(...)` for the async client (see watch.py).

async def changed(event):            # plain functions work too
    print(event.type, event.path)

watch = await sandbox.files.watch("/workspace", changed)
...
await watch.stop()

async with await sandbox.files.watch("/workspace") as watch:
    async for event in watch:
        ...
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import errors
from .aio_streams import open_ws
from .durations import Duration
from .watch import RECONNECT_ATTEMPTS, FileEvent, WatchProtocol


class AsyncFileWatch(WatchProtocol):
    """An open file watch of the async client: a task calls `callback` (plain or async) with each
    `FileEvent`; without a callback, `async for` the watch. `await stop()` ends it."""

    def __init__(self, url: str, api_key: str | None, root: str, *, timeout: Duration | None = None) -> None:
        super().__init__(root, timeout)
        self._url, self._api_key = url, api_key
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task | None = None
        self.error: BaseException | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        api_key: str | None,
        root: str,
        callback: Callable[[FileEvent], Any] | None = None,
        *,
        timeout: Duration | None = None,
    ) -> AsyncFileWatch:
        watch = cls(url, api_key, root, timeout=timeout)
        watch._ws = await open_ws(url, api_key)  # accepted: the watch is in place
        if callback is not None:
            watch._task = asyncio.ensure_future(watch._run(callback))
        return watch

    async def _run(self, callback: Callable[[FileEvent], Any]) -> None:
        try:
            async for event in self._events():
                outcome = callback(event)
                if inspect.isawaitable(outcome):
                    await outcome
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # kept for wait()
            self.error = error

    async def _reopen(self) -> bool:
        for attempt in range(RECONNECT_ATTEMPTS):
            if self.stopped:
                return False
            try:
                connection = await open_ws(self._url, self._api_key)
            except errors.ConnectionError:
                await asyncio.sleep(min(5.0, 0.5 * 2**attempt))
                continue
            if self.stopped:
                await connection.close()
                return False
            self._ws = connection
            return True
        raise errors.ConnectionError("the file watch's connection dropped and could not be opened again")

    async def _events(self) -> AsyncIterator[FileEvent]:
        assert self._ws is not None
        while True:
            try:
                async for raw in self._ws:
                    event = self.feed(raw)
                    if event.type == "end":
                        if self.renews(event):
                            break
                        self.ended = event.reason or "error"
                        yield event
                        return
                    yield event
            except ConnectionClosed as error:
                if not self.stopped and (problem := self.close_error(error)) is not None:
                    raise problem from error
            finally:
                await self._ws.close()
            if self.stopped or not await self._reopen():
                self.ended = self.ended or "stopped"
                return
            yield self.reconnected()

    def __aiter__(self) -> AsyncIterator[FileEvent]:
        if self._task is not None:
            raise TypeError("this watch calls its callback; iterate a watch opened without one")
        return self._events()

    async def stop(self) -> None:
        """Ends the watch (the server frees it in the sandbox at once)."""
        self.stopped = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None and self._task is not asyncio.current_task():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    async def wait(self, timeout: float | None = None) -> str | None:
        """Waits until a callback watch ends (or `timeout` seconds); answers why it ended (None if it
        goes on). Raises what stopped it, if it failed."""
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=timeout)
        if self.error is not None:
            raise self.error
        return self.ended

    async def __aenter__(self) -> AsyncFileWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
