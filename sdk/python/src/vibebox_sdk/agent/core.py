"""`VibeBoxAgent`: many sandboxes in parallel for an AI agent (map, reduce, pools, streams, Claude tasks).

Sandboxes the agent makes are ephemeral with a TTL (`sandbox_ttl`): if the process dies, the
server removes them when the TTL runs out. Otherwise they are destroyed as soon as the work that
made them ends, on errors, on Ctrl-C, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import queue
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .. import errors
from ..client import VibeBox
from ..durations import Duration
from ..sandbox import Sandbox
from . import records
from .context import Context
from .records import Recorder
from .results import TaskFailedError, TaskResult, Update

logger = logging.getLogger("vibebox_sdk.agent")

STRATEGIES = ("cleanup-and-retry", "retry", "fail")
DEFAULT_MODEL = "claude-sonnet-5-5"  # engine="messages" without `model` (or ANTHROPIC_MODEL)
_agents: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _cleanup_at_exit() -> None:
    for agent in list(_agents):
        agent.cleanup()


def create_fields(options: dict[str, Any], ttl: Duration) -> dict[str, Any]:
    """The create options of an agent's sandbox: ephemeral with a TTL, tagged `vibebox-agent`."""
    metadata = {"vibebox-agent": "1", **(options.get("metadata") or {})}
    return {**options, "ephemeral": True, "timeout": ttl, "metadata": metadata}


def claude_credentials(agent: Any) -> tuple[str | None, str | None]:
    """(key, base URL) from the agent, else ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL; a None key
    means: use the sandbox's own gateway token."""
    key = agent.claude_api_key or os.environ.get("ANTHROPIC_API_KEY")
    return key, agent.claude_base_url or os.environ.get("ANTHROPIC_BASE_URL")


def claude_model(model: str | None) -> str:
    return model or os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL


GATEWAY_ENV = "printenv ANTHROPIC_API_KEY ANTHROPIC_BASE_URL"


def claude_code_result(done: dict[str, Any], sandbox_id: str) -> TaskResult:
    """A finished `sandbox.claude.ask` as a TaskResult (an ask that did not complete raises)."""
    if done["status"] != "completed":
        raise RuntimeError(f"Claude Code ask {done['status']}: {done.get('error')}")
    return TaskResult(
        text=done.get("result") or "",
        usage=done.get("usage") or {},
        turns=done.get("num_turns") or 0,
        sandbox_id=sandbox_id,
    )


class _Failed:
    def __init__(self, error: TaskFailedError) -> None:
        self.error = error


def _call(fn: Callable, item: Any, sandbox: Sandbox, context: Context | None) -> Any:
    return fn(item, sandbox) if context is None else fn(item, sandbox, context)


class Slot:
    """One worker's sandbox: made when first needed, replaced after a failure, destroyed at the end."""

    def __init__(self, agent: VibeBoxAgent, template: str, options: dict[str, Any]) -> None:
        self.agent = agent
        self.template = template
        self.options = options
        self.sandbox: Sandbox | None = None

    def get(self) -> Sandbox:
        if self.sandbox is None:
            self.sandbox = self.agent._make_sandbox(self.template, self.options)
        return self.sandbox

    def close(self) -> None:
        if self.sandbox is not None:
            self.agent._drop_sandbox(self.sandbox)
            self.sandbox = None


class VibeBoxAgent:
    """Runs work across many sandboxes.

        agent = VibeBoxAgent(max_parallel_sandboxes=10)
        results = agent.map(repos, analyse, parallelism=3, template="node-20")   # analyse(item, sandbox)
        summary = agent.reduce(results, combine, {})
        task = agent.task("Add tests", git=url); task.wait_for_completion(); task.result.text

    `max_parallel_sandboxes` bounds the sandboxes alive at once across everything this agent runs.
    Claude tasks use `claude_api_key` / `claude_base_url` (else ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL,
    else the sandbox's own gateway token from VibeBox: see `task`).
    """

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
        client: VibeBox | None = None,
    ) -> None:
        self.vb = client or VibeBox(api_key=api_key, base_url=base_url)
        self.claude_api_key = claude_api_key
        self.claude_base_url = claude_base_url
        self.max_parallel_sandboxes = max_parallel_sandboxes
        self.sandbox_ttl = sandbox_ttl
        self.record = record
        self._slots = threading.BoundedSemaphore(max_parallel_sandboxes)
        self._alive: dict[str, Sandbox] = {}
        self._lock = threading.Lock()
        self.last_run_id: str | None = None  # the server's record of the latest map/task/pool
        _agents.add(self)

    # ---- sandboxes ----

    def _make_sandbox(self, template: str, options: dict[str, Any]) -> Sandbox:
        self._slots.acquire()
        try:
            sandbox = self.vb.sandbox(template, **create_fields(options, self.sandbox_ttl))
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._alive[sandbox.id] = sandbox
        return sandbox

    def _drop_sandbox(self, sandbox: Sandbox) -> None:
        with self._lock:
            known = self._alive.pop(sandbox.id, None) is not None
        if not known:
            return
        try:
            sandbox.destroy()
        except errors.NotFoundError:
            pass
        except errors.VibeBoxError as error:
            logger.warning("could not destroy %s (its TTL will): %s", sandbox.id, error)
        finally:
            self._slots.release()

    def alive(self) -> list[str]:
        """Ids of the sandboxes this agent has alive now."""
        with self._lock:
            return list(self._alive)

    def cleanup(self) -> None:
        """Destroys every sandbox this agent still has (also done at exit)."""
        with self._lock:
            sandboxes = list(self._alive.values())
        for sandbox in sandboxes:
            self._drop_sandbox(sandbox)

    def close(self) -> None:
        self.cleanup()
        self.vb.close()

    def __enter__(self) -> VibeBoxAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- run records ----

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Your recorded runs, newest first (dicts as the API has them: counts, no tasks)."""
        return self.vb._transport.send(records.list_runs(status))

    def run(self, run_id: str | None = None) -> dict[str, Any]:
        """One recorded run with its tasks (default: the last one this agent started)."""
        return self.vb._transport.send(records.get_run(run_id or self.last_run_id or ""))

    # ---- map / reduce ----

    def create_context(self, shared_data: dict[str, Any] | None = None) -> Context:
        return Context(shared_data)

    def map(
        self,
        items: Iterable[Any],
        fn: Callable[..., Any],
        *,
        parallelism: int = 3,
        template: str = "node-20",
        context: Context | None = None,
        retries: int = 0,
        fallback_strategy: str = "cleanup-and-retry",
        on_error: Callable[[BaseException, Any, int], None] | None = None,
        return_exceptions: bool = False,
        name: str | None = None,
        on_update: Callable[[Update], None] | None = None,
        kind: str = "map",
        **sandbox_options: Any,
    ) -> list[Any]:
        """`fn(item, sandbox)` (or `fn(item, sandbox, context)`) for every item, at most `parallelism`
        sandboxes at once, each reused for the next item; results in input order. A failing item
        is retried `retries` times in a fresh sandbox (`fallback_strategy="fail"`: no retries); its
        sandbox is never reused. After the retries, `TaskFailedError` is raised (once all items are
        done) unless `return_exceptions`, which puts it in the item's place."""
        if fallback_strategy not in STRATEGIES:
            raise ValueError(f"fallback_strategy is one of {', '.join(STRATEGIES)}")
        items = list(items)
        if not items:
            return []
        workers = max(1, min(parallelism, len(items), self.max_parallel_sandboxes))
        recorder = Recorder(self.vb._transport.send, enabled=self.record)
        recorder.start(name or f"{kind} of {len(items)}", kind, workers, template, [_label(i) for i in items])
        self.last_run_id = recorder.run_id or self.last_run_id
        results: list[Any] = [None] * len(items)
        pending: queue.SimpleQueue = queue.SimpleQueue()
        for index in range(len(items)):
            pending.put(index)
        stop = threading.Event()
        attempts = 1 if fallback_strategy == "fail" else retries + 1
        notify = on_update or (lambda update: None)

        def worker() -> None:
            slot = Slot(self, template, sandbox_options)
            try:
                while not stop.is_set():
                    try:
                        index = pending.get_nowait()
                    except queue.Empty:
                        return
                    results[index] = self._run_item(
                        slot, fn, items[index], index, context, attempts, on_error, recorder, notify
                    )
            except BaseException as error:  # on_error or on_update raised: the map fails with it
                crashed.append(error)
                stop.set()
            finally:
                slot.close()

        status = "failed"
        crashed: list[BaseException] = []
        # Daemon threads: after Ctrl-C, a worker still inside `fn` does not hold the interpreter's exit.
        threads = [threading.Thread(target=worker, daemon=True, name="vibebox-agent") for _ in range(workers)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():  # short waits, so Ctrl-C reaches this thread
                    thread.join(0.5)
            if crashed:
                raise crashed[0]
            status = "completed"
        except BaseException:
            stop.set()
            status = "cancelled"
            raise
        finally:
            if status != "completed":
                self.cleanup()
            failures = [r.error for r in results if isinstance(r, _Failed)]
            recorder.finish("failed" if failures and status == "completed" else status)
        failures = [r.error for r in results if isinstance(r, _Failed)]
        if failures and not return_exceptions:
            raise failures[0]
        return [r.error if isinstance(r, _Failed) else r for r in results]

    def _run_item(self, slot, fn, item, index, context, attempts, on_error, recorder, notify) -> Any:
        error: BaseException | None = None
        for attempt in range(1, attempts + 1):
            try:
                sandbox = slot.get()
            except errors.VibeBoxError as exc:
                error = exc
                continue
            recorder.task(index, status="running", sandbox_id=sandbox.id, attempts=attempt)
            notify(Update(index=index, status="started", sandbox_id=sandbox.id))
            try:
                value = _call(fn, item, sandbox, context)
            except Exception as exc:
                error = exc
                slot.close()  # a failed item's sandbox is replaced, never reused
                if on_error is not None:
                    on_error(exc, item, attempt)
                if attempt < attempts:
                    recorder.task(index, status="pending", error=repr(exc))
                continue
            recorder.task(index, status="completed", result=value)
            notify(Update(index=index, status="completed", sandbox_id=sandbox.id, result=value))
            return value
        assert error is not None
        failure = TaskFailedError(index, item, attempts, error)
        recorder.task(index, status="failed", error=repr(error))
        notify(
            Update(index=index, status="failed", sandbox_id=slot.sandbox.id if slot.sandbox else None, error=failure)
        )
        return _Failed(failure)

    @staticmethod
    def reduce(results: Iterable[Any], fn: Callable[[Any, Any], Any], initial: Any) -> Any:
        """`fn(accumulated, result)` over the results, starting from `initial`."""
        return functools.reduce(fn, results, initial)

    # ---- streams, orchestration, pools ----

    def stream_results(
        self, tasks: Iterable[Any], *, parallelism: int = 3, template: str = "node-20", **options: Any
    ) -> Iterator[Update]:
        """Runs tasks (shell command strings, or `fn(sandbox)`) like `map`, yielding `Update`s as
        they happen: started, output (a command's printed text in `logs`), completed, failed."""
        updates: queue.SimpleQueue = queue.SimpleQueue()
        done = object()

        def job(numbered: tuple[int, Any], sandbox: Sandbox) -> Any:
            index, task = numbered
            if not isinstance(task, str):
                return task(sandbox)
            stream = sandbox.exec(task, stream=True)
            stream.on_data(lambda text: updates.put(Update(index, "output", sandbox_id=sandbox.id, logs=text)))
            result = stream.wait()
            if result.exit_code != 0:
                raise errors.CommandExitError(result)
            return result

        numbered = list(enumerate(tasks))

        def run() -> None:
            try:
                self.map(
                    numbered,
                    job,
                    parallelism=parallelism,
                    template=template,
                    return_exceptions=True,
                    on_update=updates.put,
                    kind="stream",
                    **options,
                )
            except BaseException as error:  # map itself failed: report it as the last update
                updates.put(Update(index=-1, status="failed", error=error))
            finally:
                updates.put(done)

        thread = threading.Thread(target=run, daemon=True, name="vibebox-agent-stream")
        thread.start()
        while True:
            update = updates.get()
            if update is done:
                break
            yield update
        thread.join()

    def orchestrate(self, *, max_workers: int = 5, template: str = "node-20", **options: Any) -> Orchestrator:
        return Orchestrator(self, max_workers=max_workers, template=template, options=options)

    def create_pool(
        self, *, workers: int = 5, template: str = "node-20", persistent: bool = True, **options: Any
    ) -> WorkerPool:
        return WorkerPool(self, workers=workers, template=template, persistent=persistent, options=options)

    # ---- Claude tasks ----

    def task(
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
        on_error: Callable[[BaseException, Any, int], None] | None = None,
        keep_sandbox: bool = False,
        **sandbox_options: Any,
    ) -> AgentTask:
        """Starts Claude on `prompt` in a fresh sandbox (with `git` cloned into /repo) and returns at
        once; `wait_for_completion()` answers a `TaskResult`. `engine="messages"`: a tool-use loop
        here (tools run_command, execute_code, read_file, write_file, list_files in the sandbox), with
        the Anthropic SDK; `engine="claude-code"`: the sandbox's Claude Code (`sandbox.claude.ask`)."""
        if engine not in ("messages", "claude-code"):
            raise ValueError("engine is 'messages' or 'claude-code'")
        if git is not None:
            sandbox_options["git"] = git
        return AgentTask(
            self,
            prompt,
            template,
            engine,
            model,
            max_turns,
            max_tokens,
            retries,
            fallback_strategy,
            on_error,
            keep_sandbox,
            sandbox_options,
        )

    def _claude_client(self, sandbox: Sandbox) -> Any:
        import anthropic

        key, base_url = claude_credentials(self)
        if not key:  # the sandbox's own gateway token: VibeBox holds the real key
            sandbox.claude.enable()
            key, base_url = sandbox.exec(GATEWAY_ENV).stdout.split()
        return anthropic.Anthropic(api_key=key, base_url=base_url, max_retries=2)

    def _claude_run(
        self, sandbox: Sandbox, prompt: str, engine: str, model: str, max_turns: int, max_tokens: int, repo: bool
    ) -> TaskResult:
        if engine == "claude-code":
            sandbox.claude.enable()
            done = sandbox.claude.ask(prompt, review=False, max_turns=max_turns, model=model)
            return claude_code_result(done, sandbox.id)
        from .tools import TOOLS, Loop, run_tool

        client = self._claude_client(sandbox)
        model = claude_model(model)
        loop = Loop(prompt, repo=repo)
        for _ in range(max_turns):
            response = client.messages.create(
                model=model, max_tokens=max_tokens, system=loop.system, tools=TOOLS, messages=loop.messages
            )
            uses = loop.step(response)
            if not uses:
                break
            outcomes = []
            for use in uses:
                try:
                    outcomes.append((use, run_tool(sandbox, use.name, dict(use.input)), False))
                except Exception as exc:  # the model sees the failure and can react
                    outcomes.append((use, f"error: {exc}", True))
            loop.results(outcomes)
        return loop.result(sandbox.id)


def _label(item: Any) -> str:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int):  # stream_results' (index, task)
        item = item[1]
    if callable(item):
        return getattr(item, "__name__", "task")
    if isinstance(item, dict) and item.keys() <= ORCHESTRATED_KEYS:
        text = ": ".join(part for part in (item.get("repo"), item.get("task") or item.get("command")) if part)
    else:
        text = item if isinstance(item, str) else repr(item)
    return CREDENTIALS.sub("://", text)[:500]  # never a URL's user and password in the record


CREDENTIALS = re.compile(r"://[^/@\s]*@")


class AgentTask:
    """A Claude task running in the background: `wait_for_completion()`, `status`, `result`, `error`."""

    def __init__(
        self,
        agent,
        prompt,
        template,
        engine,
        model,
        max_turns,
        max_tokens,
        retries,
        strategy,
        on_error,
        keep_sandbox,
        options,
    ) -> None:
        self.prompt = prompt
        self.status = "running"
        self.result: TaskResult | None = None
        self.error: BaseException | None = None
        self.sandbox_id: str | None = None
        self._done = threading.Event()
        attempts = 1 if strategy == "fail" else retries + 1
        repo = "git" in options

        def run(item: str, sandbox: Sandbox) -> TaskResult:
            self.sandbox_id = sandbox.id
            return agent._claude_run(sandbox, item, engine, model, max_turns, max_tokens, repo)

        def body() -> None:
            try:
                if strategy == "retry":  # the same sandbox for every attempt
                    slot = Slot(agent, template, options)
                    try:
                        for attempt in range(1, attempts + 1):
                            try:
                                self.result = run(prompt, slot.get())
                                break
                            except Exception as exc:
                                if on_error is not None:
                                    on_error(exc, prompt, attempt)
                                if attempt == attempts:
                                    raise TaskFailedError(0, prompt, attempts, exc) from exc
                    finally:
                        if not keep_sandbox:
                            slot.close()
                else:
                    [self.result] = agent.map(
                        [prompt],
                        run,
                        parallelism=1,
                        template=template,
                        retries=retries,
                        fallback_strategy=strategy,
                        on_error=on_error,
                        kind="task",
                        name=prompt[:200],
                        **options,
                    )
                self.status = "completed"
            except BaseException as exc:
                self.error = exc
                self.status = "failed"
            finally:
                self._done.set()

        self._thread = threading.Thread(target=body, daemon=True, name="vibebox-agent-task")
        self._thread.start()

    def wait_for_completion(self, timeout: float | None = None) -> TaskResult:
        """The result; raises the task's error (`TaskFailedError`) if it failed."""
        if not self._done.wait(timeout):
            raise errors.TimeoutError(f"the task is still running after {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    @property
    def done(self) -> bool:
        return self._done.is_set()


ORCHESTRATED_KEYS = {"repo", "task", "command", "branch"}


def check_orchestrated(tasks: list[Any]) -> list[Any]:
    """The tasks of `execute_all`, checked before any sandbox is made: a command string, a
    `fn(sandbox)`, or the spec's `{"repo": url, "task": prompt}` (or `{"repo", "command"}`)."""
    for index, task in enumerate(tasks):
        if isinstance(task, str) or callable(task):
            continue
        if not isinstance(task, dict):
            raise TypeError(f"task {index}: a command string, a function of a sandbox, or a dict, not {task!r}")
        unknown = set(task) - ORCHESTRATED_KEYS
        if unknown:
            raise ValueError(f"task {index}: unknown keys {sorted(unknown)} (known: {sorted(ORCHESTRATED_KEYS)})")
        if bool(task.get("task")) == bool(task.get("command")):
            raise ValueError(f"task {index}: give one of 'task' (a prompt for Claude) or 'command'")
    return tasks


def orchestrated_call(agent: Any, task: dict[str, Any], sandbox: Any, model: str | None, engine: str):
    """(what to call, its arguments) for a dict task once its repo is cloned: shared by both agents."""
    repo = task.get("repo")
    if task.get("task"):
        return agent._claude_run, (sandbox, task["task"], engine, model, 20, 4096, bool(repo))
    return sandbox.exec, (task["command"],), {"cwd": "/repo" if repo else None}


class Orchestrator:
    """`agent.orchestrate(max_workers=5)`: `execute_all(tasks)` runs tasks across up to
    `max_workers` sandboxes; results in order. A task is a shell command string (its ExecResult),
    a `fn(sandbox)` (its value), or as in the spec `{"repo": url, "task": prompt}`: the repo is
    cloned into /repo and Claude works on the prompt there (its TaskResult); `{"repo": url,
    "command": cmd}` runs the command in /repo (a non-zero exit fails the task). `branch` picks
    the branch to clone. `model` and `engine` (as for `task`) are options of `orchestrate`."""

    def __init__(self, agent: VibeBoxAgent, *, max_workers: int, template: str, options: dict[str, Any]) -> None:
        self.agent = agent
        self.max_workers = max_workers
        self.template = template
        self.options = options

    def execute_all(self, tasks: Iterable[Any], **options: Any) -> list[Any]:
        options = {**self.options, **options}
        model, engine = options.pop("model", None), options.pop("engine", "messages")
        agent = self.agent

        def job(task: Any, sandbox: Sandbox) -> Any:
            if isinstance(task, str):
                return sandbox.exec(task)
            if not isinstance(task, dict):
                return task(sandbox)
            if task.get("repo"):
                sandbox.git.clone(task["repo"], branch=task.get("branch"), path="/repo")
            fn, args, *kwargs = orchestrated_call(agent, task, sandbox, model, engine)
            result = fn(*args, **(kwargs[0] if kwargs else {}))
            if task.get("command") and result.exit_code != 0:
                raise errors.CommandExitError(result)
            return result

        return agent.map(
            check_orchestrated(list(tasks)),
            job,
            parallelism=self.max_workers,
            template=self.template,
            kind="orchestrate",
            **options,
        )


class WorkerPool:
    """`agent.create_pool(workers=5)`: `submit(fn, *args)` runs `fn(sandbox, *args)` on a free worker
    and answers a `Future`; `wait_for_completion()` answers every result so far, in submit order;
    `shutdown()` destroys the workers' sandboxes. `persistent`: each worker keeps its sandbox across
    jobs (made at start); otherwise every job gets a fresh one. A failed job's sandbox is replaced."""

    def __init__(self, agent: VibeBoxAgent, *, workers: int, template: str, persistent: bool, options: dict) -> None:
        self.agent = agent
        self.persistent = persistent
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._futures: list[Future] = []
        self._recorder = Recorder(agent.vb._transport.send, enabled=agent.record)
        self._recorder.start(f"pool of {workers}", "pool", workers, template, [])
        agent.last_run_id = self._recorder.run_id or agent.last_run_id
        self._slots = [Slot(agent, template, options) for _ in range(min(workers, agent.max_parallel_sandboxes))]
        self._lock = threading.Lock()
        self._closed = False
        if persistent:
            with ThreadPoolExecutor(len(self._slots)) as starter:
                list(starter.map(lambda slot: slot.get(), self._slots))
        self._threads = [
            threading.Thread(target=self._work, args=(slot,), daemon=True, name="vibebox-pool") for slot in self._slots
        ]
        for thread in self._threads:
            thread.start()

    @property
    def sandbox_ids(self) -> list[str]:
        return [slot.sandbox.id for slot in self._slots if slot.sandbox is not None]

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is shut down")
            future: Future = Future()
            index = len(self._futures)
            self._futures.append(future)
        self._recorder.add([getattr(fn, "__name__", "job")])
        self._jobs.put((index, future, fn, args, kwargs))
        return future

    def _work(self, slot: Slot) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                slot.close()
                return
            index, future, fn, args, kwargs = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                sandbox = slot.get()
                self._recorder.task(index, status="running", sandbox_id=sandbox.id, attempts=1)
                value = fn(sandbox, *args, **kwargs)
            except BaseException as exc:
                slot.close()
                self._recorder.task(index, status="failed", error=repr(exc))
                future.set_exception(exc)
            else:
                self._recorder.task(index, status="completed", result=value)
                future.set_result(value)
            if not self.persistent:
                slot.close()

    def wait_for_completion(self, timeout: float | None = None, *, return_exceptions: bool = False) -> list[Any]:
        with self._lock:
            futures = list(self._futures)
        results = []
        for future in futures:
            try:
                results.append(future.result(timeout))
            except Exception as exc:
                if not return_exceptions:
                    raise
                results.append(exc)
        return results

    def shutdown(self, *, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
        failed = any(f.done() and not f.cancelled() and f.exception() for f in self._futures)
        self._recorder.finish("failed" if failed else "completed")

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


__all__ = ["AgentTask", "Orchestrator", "VibeBoxAgent", "WorkerPool"]
