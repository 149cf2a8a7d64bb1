"""WebSocket streams, async side: streamed commands, log iteration, terminals (see streams.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from . import errors
from .models import ExecutionResult, LogEntry
from .streams import (
    HANDSHAKE_ATTEMPTS,
    OPEN_TIMEOUT,
    CommandState,
    StreamEvent,
    TerminalProtocol,
    auth_headers,
    refused,
    refused_upgrade,
)


async def open_ws(url: str, api_key: str | None) -> ClientConnection:
    for attempt in range(HANDSHAKE_ATTEMPTS):
        try:
            headers = auth_headers(api_key)
            return await connect(url, additional_headers=headers, open_timeout=OPEN_TIMEOUT, max_size=None)
        except InvalidStatus as error:
            raise refused_upgrade(error) from error
        except (OSError, InvalidMessage, ConnectionClosed) as error:  # also one dropped mid-handshake
            if attempt + 1 == HANDSHAKE_ATTEMPTS:
                raise errors.ConnectionError(f"cannot open {url.split('?')[0]}: {error}") from error
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


class AsyncCommandStream:
    """A streamed command: `async for event in stream`, or `await stream.wait()`; callbacks
    (`on_data`, `on_complete`) are called from a task reading the stream."""

    def __init__(self, connection: ClientConnection, sandbox: Any = None) -> None:
        self._ws = connection
        self._state = CommandState(sandbox)
        self._queue: asyncio.Queue[StreamEvent | BaseException | None] = asyncio.Queue()
        self._data_callbacks: list[Callable[[str], Any]] = []
        self._complete_callbacks: list[Callable[[ExecutionResult], Any]] = []
        self._task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            async for raw in self._ws:
                event = self._state.feed(raw)
                if event is None:
                    continue
                await self._dispatch(event)
                if event.type == "exit":
                    break
            if self._state.result is None:
                raise refused(self._ws.close_code, self._ws.close_reason or "")
        except ConnectionClosed as error:
            if self._state.result is None:
                code = error.rcvd.code if error.rcvd else None
                await self._queue.put(refused(code, error.rcvd.reason if error.rcvd else ""))
        except Exception as error:  # handed to the waiting caller
            await self._queue.put(error)
        finally:
            await self._queue.put(None)
            await self._ws.close()

    async def _dispatch(self, event: StreamEvent) -> None:
        await self._queue.put(event)
        callbacks: list[Any] = (
            [(cb, event.result) for cb in self._complete_callbacks]
            if event.type == "exit"
            else [(cb, event.data) for cb in self._data_callbacks]
        )
        for callback, value in callbacks:
            outcome = callback(value)
            if asyncio.iscoroutine(outcome):
                await outcome

    def on_data(self, callback: Callable[[str], Any]) -> AsyncCommandStream:
        self._data_callbacks.append(callback)
        return self

    def on_complete(self, callback: Callable[[ExecutionResult], Any]) -> AsyncCommandStream:
        self._complete_callbacks.append(callback)
        return self

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[StreamEvent]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def wait(self) -> ExecutionResult:
        await self._task
        if self._state.result is None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if isinstance(item, BaseException):
                    raise item
            raise errors.ConnectionError("the stream ended without a result")
        return self._state.result

    async def send_stdin(self, data: str) -> None:
        await self._ws.send(json.dumps({"type": "stdin", "data": data}))

    async def close_stdin(self) -> None:
        await self._ws.send(json.dumps({"type": "close_stdin"}))

    async def signal(self, name: str) -> None:
        await self._ws.send(json.dumps({"type": "signal", "signal": name}))

    async def kill(self) -> None:
        await self.signal("KILL")


async def iter_logs(connection: ClientConnection) -> AsyncIterator[LogEntry]:
    try:
        async for raw in connection:
            yield LogEntry.from_api(json.loads(raw))
    except ConnectionClosed:
        return
    finally:
        await connection.close()


class AsyncTerminal(TerminalProtocol):
    """An interactive terminal (PTY), async: `await term.send(b"ls\\r")`, `await term.recv()`."""

    @classmethod
    async def open(cls, connection: ClientConnection) -> AsyncTerminal:
        return cls(connection, json.loads(await connection.recv()))

    async def recv(self) -> bytes | None:
        """The next output bytes; None once the shell has exited (see `exit_code`)."""
        while True:
            try:
                frame = await self._ws.recv()
            except ConnectionClosed as error:
                self._ended(error)
                return None
            if (output := self._output(frame)) is not None:
                return output

    async def send(self, keys: bytes | str) -> None:
        await self._ws.send(keys.encode() if isinstance(keys, str) else keys)

    async def resize(self, cols: int, rows: int) -> None:
        await self._ws.send(self._resize_message(cols, rows))
        self.cols, self.rows = cols, rows

    async def kill(self) -> None:
        """As `Terminal.kill`."""
        await self._ws.send(self._KILL)

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> AsyncTerminal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
