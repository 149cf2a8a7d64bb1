"""`sandbox.claude`: Claude Code in a sandbox (server docs: docs/claude.md).

    sandbox.claude.enable()
    ask = sandbox.claude.ask("Add a README", wait=True, on_event=lambda e: print(e["text"]))
    print(ask["status"], ask["result"])
    for change in sandbox.claude.changes():
        print(change["diff"])
    sandbox.claude.approve()          # or .reject()
    sandbox.claude.configure(mode="autonomous")   # or "human", "assist"; model=, permission_mode=

Answers are dicts with snake_case keys. Events (`on_event`, `events()`) are the server's event
messages as sent: {"type": "claude.tool_use", "text", "data": {"askId", "sessionId", "kind",
"event"}, …}. The request methods are shared by the sync and async clients; `ask(wait=True)` and
`events()` exist in both flavours.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed

from . import calls, errors
from .aio_streams import open_ws as open_ws_async
from .streams import open_ws, sandbox_ws

FINISHED = "claude.ask.finished"


class Claude:
    def __init__(self, send: Callable[[calls.Call], Any], sandbox: Any) -> None:
        self._send = send
        self._sandbox = sandbox

    def _call(self, method: str, operation: str, fields: dict | None = None, **params: Any) -> Any:
        return self._send(calls.claude(self._sandbox.id, method, operation, fields, params))

    def enable(self, *, mcp: bool = False, anthropic_api_key: str | None = None) -> Any:
        """Checks the binary and gives the sandbox a gateway token: {installed, version, …}.
        `anthropic_api_key`: your own key for this sandbox's model calls (kept on the server)."""
        return self._call("POST", "enable", {"mcp": mcp, "anthropic_api_key": anthropic_api_key})

    def status(self) -> Any:
        return self._call("GET", "status")

    def configure(
        self,
        *,
        mode: str | None = None,
        model: str | None = None,
        permission_mode: str | None = None,
        anthropic_api_key: str | None = None,
    ) -> Any:
        """Changes the sandbox's Claude setup (`PATCH …/claude/status`) and answers the status.
        `mode`: "human" (asks refused: ClaudeDisabledByModeError), "assist" (changes wait for
        review) or "autonomous" (change sets applied when their ask ends). `model`,
        `permission_mode`: the asks' defaults; `anthropic_api_key`: your own key. None leaves a
        field as it is; "" goes back to the template's default (for the key: the operator's).

            sandbox.claude.configure(mode="autonomous", model="claude-sonnet-4-5")
        """
        fields = {
            "mode": mode,
            "model": model,
            "permission_mode": permission_mode,
            "anthropic_api_key": anthropic_api_key,
        }
        return self._call("PATCH", "status", fields)

    def start(
        self,
        prompt: str,
        *,
        session_id: str | None = None,
        model: str | None = None,
        permission_mode: str | None = None,
        allowed_tools: list[str] | None = None,
        disallowed_tools: list[str] | None = None,
        max_turns: int | None = None,
        append_system_prompt: str | None = None,
        review: bool | None = None,
    ) -> Any:
        """Starts an ask and returns at once: {ask_id, session_id, status: "running", …}."""
        fields = {
            "prompt": prompt,
            "session_id": session_id,
            "model": model,
            "permission_mode": permission_mode,
            "allowed_tools": allowed_tools,
            "disallowed_tools": disallowed_tools,
            "max_turns": max_turns,
            "append_system_prompt": append_system_prompt,
            "review": review,
        }
        return self._call("POST", "ask", fields)

    def get(self, ask_id: str) -> Any:
        """One ask: status, result, cost_usd, usage, change_set_id…"""
        return self._call("GET", f"asks/{ask_id}")

    def asks(self, session_id: str | None = None) -> Any:
        return self._call("GET", "asks", session_id=session_id)

    def cancel(self, ask_id: str) -> Any:
        return self._call("POST", f"asks/{ask_id}/cancel", {})

    def sessions(self) -> Any:
        return self._call("GET", "sessions")

    def session(self, session_id: str, *, transcript: bool = False) -> Any:
        """The session with its conversation (`messages`); `transcript=True` adds Claude's own file."""
        return self._call("GET", f"sessions/{session_id}", transcript="1" if transcript else None)

    def changes(self, session_id: str | None = None, *, status: str = "pending", diff: bool = True) -> Any:
        """Change sets (default: those waiting for review), each with files, stats and diff."""
        return self._call("GET", "changes", session_id=session_id, status=status, diff="true" if diff else "false")

    def approve(self, session_id: str | None = None) -> Any:
        """Applies the pending changes to /workspace; `MergeConflictError` if they conflict."""
        return self._call("POST", "approve", {"session_id": session_id})

    def reject(self, session_id: str | None = None) -> Any:
        return self._call("POST", "reject", {"session_id": session_id})

    def _events_url(self, ask_id: str | None, session_id: str | None) -> str:
        params = {"askId": ask_id, "sessionId": session_id}
        return sandbox_ws(self._sandbox._client.base_url, self._sandbox.id, "claude", params)


class SyncClaude(Claude):
    def ask(
        self,
        prompt: str,
        *,
        wait: bool = True,
        on_event: Callable[[dict], None] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> Any:
        """Asks Claude. With `wait` (the default), follows its events (`on_event` gets each) and
        answers the finished ask; `wait=False` answers the started one (see `start`)."""
        started = self.start(prompt, **options)
        if not wait:
            return started
        return self.wait(started["ask_id"], on_event=on_event, timeout=timeout)

    def wait(self, ask_id: str, *, on_event: Callable[[dict], None] | None = None, timeout: float | None = None) -> Any:
        """Waits for an ask to end (calling `on_event` with its events) and answers it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for event in self.events(ask_id=ask_id, timeout=timeout):
                if on_event is not None:
                    on_event(event)
                if event["type"] == FINISHED and event["data"].get("askId") == ask_id:
                    break
        except errors.ConnectionError:
            pass  # the stream is a convenience: fall back to polling
        while True:
            ask = self.get(ask_id)
            if ask["status"] != "running":
                return ask
            if deadline is not None and time.monotonic() > deadline:
                raise errors.TimeoutError(f"ask {ask_id} still running after {timeout} s")
            time.sleep(0.5)

    def events(
        self, *, ask_id: str | None = None, session_id: str | None = None, timeout: float | None = None
    ) -> Iterator[dict]:
        """Claude's events as they happen (with `ask_id`: that ask's so far first)."""
        connection = open_ws(self._events_url(ask_id, session_id), self._sandbox._client.api_key)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    raw = connection.recv(timeout=left)
                except TimeoutError:
                    return
                yield json.loads(raw)
        except ConnectionClosed:
            return
        finally:
            connection.close()


class AsyncClaude(Claude):
    async def ask(
        self,
        prompt: str,
        *,
        wait: bool = True,
        on_event: Callable[[dict], Any] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> Any:
        started = await self.start(prompt, **options)
        if not wait:
            return started
        return await self.wait(started["ask_id"], on_event=on_event, timeout=timeout)

    async def wait(
        self, ask_id: str, *, on_event: Callable[[dict], Any] | None = None, timeout: float | None = None
    ) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            async for event in self.events(ask_id=ask_id, timeout=timeout):
                if on_event is not None:
                    result = on_event(event)
                    if asyncio.iscoroutine(result):
                        await result
                if event["type"] == FINISHED and event["data"].get("askId") == ask_id:
                    break
        except errors.ConnectionError:
            pass
        while True:
            ask = await self.get(ask_id)
            if ask["status"] != "running":
                return ask
            if deadline is not None and time.monotonic() > deadline:
                raise errors.TimeoutError(f"ask {ask_id} still running after {timeout} s")
            await asyncio.sleep(0.5)

    async def events(
        self, *, ask_id: str | None = None, session_id: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[dict]:
        connection = await open_ws_async(self._events_url(ask_id, session_id), self._sandbox._client.api_key)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    raw = await asyncio.wait_for(connection.recv(), left)
                except TimeoutError:
                    return
                yield json.loads(raw)
        except ConnectionClosed:
            return
        finally:
            await connection.close()
