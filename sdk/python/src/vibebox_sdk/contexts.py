"""Stateful code contexts: a long-lived interpreter (a kernel) in the sandbox that keeps variables,
imports and state between runs, answering rich results (tables, images) as a notebook does.

    ctx = sandbox.contexts.create(language="python")
    ctx.run("x = 41")
    print(ctx.run("x + 1").text)                                   # 42
    ctx.run("for i in range(3): print(i)", on_stdout=print)       # streamed as printed
    ctx.delete()

Without callbacks `run` is one REST call (`POST …/contexts/{ctx}/execute`); with `on_stdout`,
`on_stderr` or `on_result` it streams over the sandbox's exec WebSocket (`context.execute`), calling
them as output arrives, and answers the same `CodeExecution`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from . import calls, errors
from .aio_streams import open_ws as aopen_ws
from .durations import Duration
from .interpreter import CodeExecution, ContextInfo, ExecutionError, Result
from .streams import open_ws, refused, sandbox_ws

OutputCallback = Callable[[str], Any]
ResultCallback = Callable[[Result], Any]


class ExecutionState:
    """Turns the `context.execute` stream's messages into callbacks' arguments and the final
    `CodeExecution` (the same fields as the REST answer)."""

    def __init__(self) -> None:
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.results: list[Result] = []
        self.error: ExecutionError | None = None
        self.execution: CodeExecution | None = None

    def feed(self, raw: str | bytes) -> tuple[str, Any] | None:
        """('stdout'|'stderr', text), ('result', Result), ('error', ExecutionError), ('done', CodeExecution)."""
        message = json.loads(raw)
        kind = message.get("type")
        if kind in ("stdout", "stderr"):
            data = message.get("data", "")
            (self.stdout if kind == "stdout" else self.stderr).append(data)
            return kind, data
        if kind == "result":
            result = Result.from_api(message)
            self.results.append(result)
            return "result", result
        if kind == "error" and isinstance(message.get("error"), dict):  # the server refused the request
            raise errors.from_payload(400, {"error": message["error"]})
        if kind == "error":
            self.error = ExecutionError.from_api(message)
            return "error", self.error
        if kind == "context.done":
            self.execution = CodeExecution(
                results=self.results,
                stdout="".join(self.stdout),
                stderr="".join(self.stderr),
                error=self.error,
                truncated=bool(message.get("truncated", False)),
                execution_count=message.get("executionCount"),
                duration_ms=message.get("durationMs"),
                execution_id=message.get("executionId"),
                raw=message,
            )
            return "done", self.execution
        return None


REFUSED: Any = object()


def refusal_or(state: ExecutionState, raw: str | bytes) -> Any:
    """`state.feed(raw)`, or REFUSED when the server refused the request before anything ran (a
    server whose exec stream has no `context.execute`): the caller then runs the code over REST."""
    nothing_yet = not (state.stdout or state.stderr or state.results or state.error)
    try:
        return state.feed(raw)
    except errors.ValidationError:
        if nothing_yet:
            return REFUSED
        raise


def execute_message(context_id: str, code: str, timeout: Duration | None) -> str:
    return json.dumps(calls.body(type="context.execute", context=context_id, code=code, timeout=timeout))


def _callback_for(kind: str, on_stdout: Any, on_stderr: Any, on_result: Any) -> Callable[[Any], Any] | None:
    return {"stdout": on_stdout, "stderr": on_stderr, "result": on_result}.get(kind)


def replay(execution: CodeExecution, on_stdout: Any, on_stderr: Any, on_result: Any) -> list[Any]:
    """Callbacks' calls for an answer that arrived whole (the REST fallback)."""
    pending: list[Any] = []
    if on_stdout and execution.stdout:
        pending.append(on_stdout(execution.stdout))
    if on_stderr and execution.stderr:
        pending.append(on_stderr(execution.stderr))
    if on_result:
        pending.extend(on_result(result) for result in execution.results)
    return pending


class Context:
    """A code context. Its attributes (`id`, `language`, `cwd`, `status`, `execution_count`,
    `created_at`, `last_used_at`) are what the server last said; `refresh()` asks again."""

    def __init__(self, sandbox: Any, data: dict[str, Any]) -> None:
        self._sandbox = sandbox
        self._set(data)

    def _set(self, data: dict[str, Any]) -> Context:
        self.info = ContextInfo.from_api(data)
        return self

    id = property(lambda self: self.info.id)
    language = property(lambda self: self.info.language)
    cwd = property(lambda self: self.info.cwd)
    status = property(lambda self: self.info.status)
    execution_count = property(lambda self: self.info.execution_count)

    def __repr__(self) -> str:
        return f"<Context {self.id} {self.language} {self.status}>"

    def _send(self, call: calls.Call) -> Any:
        return self._sandbox._send(call)

    def run(
        self,
        code: str,
        *,
        timeout: Duration | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        on_result: ResultCallback | None = None,
    ) -> CodeExecution:
        """Runs code in the context; the answer is the same whether or not it streams. An exception
        in the code is not raised: it is `execution.error` (name, value, traceback)."""
        if on_stdout or on_stderr or on_result:
            streamed = self._stream(code, timeout, on_stdout, on_stderr, on_result)
            if streamed is not None:
                return streamed
        execution = self._send(calls.context_execute(self._sandbox.id, self.id, code, timeout))
        replay(execution, on_stdout, on_stderr, on_result)
        return execution

    def _stream(self, code: str, timeout: Duration | None, *callbacks: Any) -> CodeExecution | None:
        state = ExecutionState()
        ws = open_ws(
            sandbox_ws(self._sandbox._client.base_url, self._sandbox.id, "exec"), self._sandbox._client.api_key
        )
        try:
            ws.send(execute_message(self.id, code, timeout))
            for raw in ws:
                event = refusal_or(state, raw)
                if event is REFUSED:
                    return None
                if event is None:
                    continue
                kind, value = event
                if kind == "done":
                    return value
                callback = _callback_for(kind, *callbacks)
                if callback:
                    callback(value)
            raise refused(ws.close_code, ws.close_reason or "the stream ended before the code finished")
        except ConnectionClosed as error:
            received = error.rcvd
            raise refused(received.code if received else None, received.reason if received else "") from error
        finally:
            ws.close()

    def refresh(self) -> Context:
        return self._set(self._send(calls.context_get(self._sandbox.id, self.id)))

    def interrupt(self) -> Context:
        """Interrupts the running code (KeyboardInterrupt in Python); state is kept."""
        return self._set(self._send(calls.context_action(self._sandbox.id, self.id, "interrupt")))

    def restart(self) -> Context:
        """A fresh interpreter in the same context: variables and imports are gone."""
        return self._set(self._send(calls.context_action(self._sandbox.id, self.id, "restart")))

    def delete(self) -> None:
        self._send(calls.context_delete(self._sandbox.id, self.id))
        self.info.status = "dead"


class Contexts:
    """`sandbox.contexts`: create, list and get code contexts."""

    def __init__(self, sandbox: Any) -> None:
        self._sandbox = sandbox

    def create(self, language: str = "python", cwd: str | None = None) -> Context:
        """A new context (`python` or `javascript`); `cwd` defaults to the sandbox's working directory."""
        return Context(self._sandbox, self._sandbox._send(calls.context_create(self._sandbox.id, language, cwd)))

    def list(self) -> list[Context]:
        return [Context(self._sandbox, item) for item in self._sandbox._send(calls.contexts_list(self._sandbox.id))]

    def get(self, context_id: str) -> Context:
        return Context(self._sandbox, self._sandbox._send(calls.context_get(self._sandbox.id, context_id)))


class AsyncContext(Context):
    """The async twin of `Context`: the same methods, awaited; callbacks may be coroutines."""

    def __repr__(self) -> str:
        return f"<AsyncContext {self.id} {self.language} {self.status}>"

    async def run(  # type: ignore[override]
        self,
        code: str,
        *,
        timeout: Duration | None = None,
        on_stdout: Callable[[str], Any] | None = None,
        on_stderr: Callable[[str], Any] | None = None,
        on_result: Callable[[Result], Any] | None = None,
    ) -> CodeExecution:
        if on_stdout or on_stderr or on_result:
            streamed = await self._astream(code, timeout, on_stdout, on_stderr, on_result)
            if streamed is not None:
                return streamed
        execution = await self._send(calls.context_execute(self._sandbox.id, self.id, code, timeout))
        for outcome in replay(execution, on_stdout, on_stderr, on_result):
            if isinstance(outcome, Awaitable):
                await outcome
        return execution

    async def _astream(self, code: str, timeout: Duration | None, *callbacks: Any) -> CodeExecution | None:
        state = ExecutionState()
        url = sandbox_ws(self._sandbox._client.base_url, self._sandbox.id, "exec")
        ws = await aopen_ws(url, self._sandbox._client.api_key)
        try:
            await ws.send(execute_message(self.id, code, timeout))
            async for raw in ws:
                event = refusal_or(state, raw)
                if event is REFUSED:
                    return None
                if event is None:
                    continue
                kind, value = event
                if kind == "done":
                    return value
                callback = _callback_for(kind, *callbacks)
                if callback:
                    outcome = callback(value)
                    if isinstance(outcome, Awaitable):
                        await outcome
            raise refused(ws.close_code, ws.close_reason or "the stream ended before the code finished")
        except ConnectionClosed as error:
            received = error.rcvd
            raise refused(received.code if received else None, received.reason if received else "") from error
        finally:
            await ws.close()

    async def refresh(self) -> AsyncContext:  # type: ignore[override]
        self._set(await self._send(calls.context_get(self._sandbox.id, self.id)))
        return self

    async def interrupt(self) -> AsyncContext:  # type: ignore[override]
        self._set(await self._send(calls.context_action(self._sandbox.id, self.id, "interrupt")))
        return self

    async def restart(self) -> AsyncContext:  # type: ignore[override]
        self._set(await self._send(calls.context_action(self._sandbox.id, self.id, "restart")))
        return self

    async def delete(self) -> None:  # type: ignore[override]
        await self._send(calls.context_delete(self._sandbox.id, self.id))
        self.info.status = "dead"


class AsyncContexts:
    """`sandbox.contexts` of an `AsyncSandbox`."""

    def __init__(self, sandbox: Any) -> None:
        self._sandbox = sandbox

    async def create(self, language: str = "python", cwd: str | None = None) -> AsyncContext:
        data = await self._sandbox._send(calls.context_create(self._sandbox.id, language, cwd))
        return AsyncContext(self._sandbox, data)

    async def list(self) -> list[AsyncContext]:
        items = await self._sandbox._send(calls.contexts_list(self._sandbox.id))
        return [AsyncContext(self._sandbox, item) for item in items]

    async def get(self, context_id: str) -> AsyncContext:
        return AsyncContext(self._sandbox, await self._sandbox._send(calls.context_get(self._sandbox.id, context_id)))
