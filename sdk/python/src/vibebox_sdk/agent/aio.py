"""`AsyncVibeBoxAgent`: the orchestrator for asyncio agents (the same behaviour as `VibeBoxAgent`).

async with AsyncVibeBoxAgent(max_parallel_sandboxes=10) as agent:
    results = await agent.map(items, fn, parallelism=3)      # async def fn(item, sandbox)
    async for update in agent.stream_results(tasks, parallelism=3): ...
    result = await agent.task("Add tests", git=url)
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from .. import errors
from ..aio import AsyncSandbox, AsyncVibeBox
from ..durations import Duration
from .context import Context
from .core import (
    GATEWAY_ENV,
    STRATEGIES,
    _label,
    check_orchestrated,
    claude_code_result,
    claude_credentials,
    claude_model,
    create_fields,
    orchestrated_call,
)
from .records import AsyncRecorder
from .results import TaskFailedError, TaskResult, Update
from .tools import TOOLS, Loop, run_tool_async

logger = logging.getLogger("vibebox_sdk.agent")


async def _maybe_await(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future) else value


class AsyncVibeBoxAgent:
    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        claude_api_key: str | None = None,
        claude_base_url: str | None = None,
        max_parallel_sandboxes: int = 10,
        sandbox_ttl: Duration = "30m",
        record: bool = True,
        client: AsyncVibeBox | None = None,
    ) -> None:
        self.vb = client or AsyncVibeBox(api_key=api_key, base_url=base_url)
        self.claude_api_key = claude_api_key
        self.claude_base_url = claude_base_url
        self.max_parallel_sandboxes = max_parallel_sandboxes
        self.sandbox_ttl = sandbox_ttl
        self.record = record
        self._slots = asyncio.BoundedSemaphore(max_parallel_sandboxes)
        self._alive: dict[str, AsyncSandbox] = {}
        self.last_run_id: str | None = None

    async def __aenter__(self) -> AsyncVibeBoxAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.cleanup()
        await self.vb.close()

    def alive(self) -> list[str]:
        return list(self._alive)

    async def cleanup(self) -> None:
        await asyncio.gather(*(self._drop(sandbox) for sandbox in list(self._alive.values())))

    async def _make(self, template: str, options: dict[str, Any]) -> AsyncSandbox:
        await self._slots.acquire()
        try:
            sandbox = await self.vb.sandbox(template, **create_fields(options, self.sandbox_ttl))
        except BaseException:
            self._slots.release()
            raise
        self._alive[sandbox.id] = sandbox
        return sandbox

    async def _drop(self, sandbox: AsyncSandbox) -> None:
        if self._alive.pop(sandbox.id, None) is None:
            return
        try:
            await sandbox.destroy()
        except errors.NotFoundError:
            pass
        except errors.VibeBoxError as error:
            logger.warning("could not destroy %s (its TTL will): %s", sandbox.id, error)
        finally:
            self._slots.release()

    def create_context(self, shared_data: dict[str, Any] | None = None) -> Context:
        return Context(shared_data)

    @staticmethod
    def reduce(results: Iterable[Any], fn: Callable[[Any, Any], Any], initial: Any) -> Any:
        return functools.reduce(fn, results, initial)

    async def map(
        self,
        items: Iterable[Any],
        fn: Callable[..., Awaitable[Any] | Any],
        *,
        parallelism: int = 3,
        template: str = "node-20",
        context: Context | None = None,
        retries: int = 0,
        fallback_strategy: str = "cleanup-and-retry",
        on_error: Callable[[BaseException, Any, int], Any] | None = None,
        return_exceptions: bool = False,
        name: str | None = None,
        on_update: Callable[[Update], Any] | None = None,
        kind: str = "map",
        **sandbox_options: Any,
    ) -> list[Any]:
        """As `VibeBoxAgent.map`; `fn` may be a coroutine function."""
        if fallback_strategy not in STRATEGIES:
            raise ValueError(f"fallback_strategy is one of {', '.join(STRATEGIES)}")
        items = list(items)
        if not items:
            return []
        workers = max(1, min(parallelism, len(items), self.max_parallel_sandboxes))
        recorder = AsyncRecorder(self.vb._transport.send, enabled=self.record)
        await recorder.start(name or f"{kind} of {len(items)}", kind, workers, template, [_label(i) for i in items])
        self.last_run_id = recorder.run_id or self.last_run_id
        attempts = 1 if fallback_strategy == "fail" else retries + 1
        results: list[Any] = [None] * len(items)
        pending: asyncio.Queue = asyncio.Queue()
        for index in range(len(items)):
            pending.put_nowait(index)

        async def notify(update: Update) -> None:
            if on_update is not None:
                await _maybe_await(on_update(update))

        async def worker() -> None:
            sandbox: AsyncSandbox | None = None
            try:
                while not pending.empty():
                    index = pending.get_nowait()
                    error: BaseException | None = None
                    for attempt in range(1, attempts + 1):
                        try:
                            sandbox = sandbox or await self._make(template, sandbox_options)
                        except errors.VibeBoxError as exc:
                            error = exc
                            continue
                        await recorder.task(index, status="running", sandbox_id=sandbox.id, attempts=attempt)
                        await notify(Update(index, "started", sandbox_id=sandbox.id))
                        try:
                            args = (items[index], sandbox) if context is None else (items[index], sandbox, context)
                            value = await _maybe_await(fn(*args))
                        except Exception as exc:
                            error = exc
                            await self._drop(sandbox)  # replaced, never reused
                            sandbox = None
                            if on_error is not None:
                                await _maybe_await(on_error(exc, items[index], attempt))
                            continue
                        results[index] = value
                        await recorder.task(index, status="completed", result=value)
                        await notify(Update(index, "completed", sandbox_id=sandbox.id, result=value))
                        break
                    else:
                        failure = TaskFailedError(index, items[index], attempts, error or RuntimeError("no sandbox"))
                        results[index] = failure
                        await recorder.task(index, status="failed", error=repr(error))
                        await notify(Update(index, "failed", error=failure))
            finally:
                if sandbox is not None:
                    await self._drop(sandbox)

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        status = "cancelled"
        try:
            await asyncio.gather(*tasks)
            status = "completed"
        finally:
            for task in tasks:
                task.cancel()
            if status != "completed":
                await asyncio.shield(self.cleanup())
            failures = [r for r in results if isinstance(r, TaskFailedError)]
            await recorder.finish("failed" if failures and status == "completed" else status)
        failures = [r for r in results if isinstance(r, TaskFailedError)]
        if failures and not return_exceptions:
            raise failures[0]
        return results

    async def stream_results(
        self, tasks: Iterable[Any], *, parallelism: int = 3, template: str = "node-20", **options: Any
    ) -> AsyncIterator[Update]:
        """Shell command strings or `fn(sandbox)` (sync or async), yielding `Update`s as they happen."""
        updates: asyncio.Queue = asyncio.Queue()
        done = object()

        async def job(numbered: tuple[int, Any], sandbox: AsyncSandbox) -> Any:
            index, task = numbered
            if not isinstance(task, str):
                return await _maybe_await(task(sandbox))
            stream = await sandbox.exec(task, stream=True)
            async for event in stream:
                if event.type in ("stdout", "stderr"):
                    updates.put_nowait(Update(index, "output", sandbox_id=sandbox.id, logs=event.data))
            result = await stream.wait()
            if result.exit_code != 0:
                raise errors.CommandExitError(result)
            return result

        async def run() -> None:
            try:
                await self.map(
                    list(enumerate(tasks)),
                    job,
                    parallelism=parallelism,
                    template=template,
                    return_exceptions=True,
                    on_update=updates.put_nowait,
                    kind="stream",
                    **options,
                )
            except BaseException as error:
                updates.put_nowait(Update(-1, "failed", error=error))
            finally:
                updates.put_nowait(done)

        runner = asyncio.create_task(run())
        try:
            while (update := await updates.get()) is not done:
                yield update
        finally:
            if not runner.done():
                runner.cancel()

    async def execute_all(self, tasks: Iterable[Any], *, max_workers: int = 5, template: str = "node-20", **options):
        """`orchestrate(...).execute_all(tasks)` in one call: command strings, `fn(sandbox)`, or the
        spec's `{"repo": url, "task": prompt}` / `{"repo": url, "command": cmd}` (see `Orchestrator`)."""
        model, engine = options.pop("model", None), options.pop("engine", "messages")

        async def job(task: Any, sandbox: AsyncSandbox) -> Any:
            if isinstance(task, str):
                return await sandbox.exec(task)
            if not isinstance(task, dict):
                return await _maybe_await(task(sandbox))
            if task.get("repo"):
                await sandbox.git.clone(task["repo"], branch=task.get("branch"), path="/repo")
            fn, args, *kwargs = orchestrated_call(self, task, sandbox, model, engine)
            result = await fn(*args, **(kwargs[0] if kwargs else {}))
            if task.get("command") and result.exit_code != 0:
                raise errors.CommandExitError(result)
            return result

        return await self.map(
            check_orchestrated(list(tasks)),
            job,
            parallelism=max_workers,
            template=template,
            kind="orchestrate",
            **options,
        )

    async def task(
        self,
        prompt: str,
        *,
        git: str | dict[str, Any] | None = None,
        template: str = "node-22-claude-code",
        engine: str = "messages",
        model: str | None = None,
        max_turns: int = 20,
        max_tokens: int = 4096,
        retries: int = 0,
        fallback_strategy: str = "cleanup-and-retry",
        on_error: Callable[[BaseException, Any, int], Any] | None = None,
        **sandbox_options: Any,
    ) -> TaskResult:
        """As `VibeBoxAgent.task`, awaited to its `TaskResult` (run it in a task to do other things meanwhile)."""
        if engine not in ("messages", "claude-code"):
            raise ValueError("engine is 'messages' or 'claude-code'")
        if git is not None:
            sandbox_options["git"] = git
        repo = git is not None

        async def run(item: str, sandbox: AsyncSandbox) -> TaskResult:
            return await self._claude_run(sandbox, item, engine, model, max_turns, max_tokens, repo)

        [result] = await self.map(
            [prompt],
            run,
            parallelism=1,
            template=template,
            retries=retries,
            fallback_strategy=fallback_strategy,
            on_error=on_error,
            kind="task",
            name=prompt[:200],
            **sandbox_options,
        )
        return result

    async def _claude_run(self, sandbox, prompt, engine, model, max_turns, max_tokens, repo) -> TaskResult:
        if engine == "claude-code":
            await sandbox.claude.enable()
            done = await sandbox.claude.ask(prompt, review=False, max_turns=max_turns, model=model)
            return claude_code_result(done, sandbox.id)
        import anthropic

        key, base_url = claude_credentials(self)
        if not key:  # the sandbox's own gateway token
            await sandbox.claude.enable()
            key, base_url = (await sandbox.exec(GATEWAY_ENV)).stdout.split()
        model = claude_model(model)
        loop = Loop(prompt, repo=repo)
        async with anthropic.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=2) as client:
            for _ in range(max_turns):
                response = await client.messages.create(
                    model=model, max_tokens=max_tokens, system=loop.system, tools=TOOLS, messages=loop.messages
                )
                uses = loop.step(response)
                if not uses:
                    break
                outcomes = []
                for use in uses:
                    try:
                        outcomes.append((use, await run_tool_async(sandbox, use.name, dict(use.input)), False))
                    except Exception as exc:
                        outcomes.append((use, f"error: {exc}", True))
                loop.results(outcomes)
        return loop.result(sandbox.id)
