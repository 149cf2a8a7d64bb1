"""GraphQL subscriptions: the REST WebSockets' live streams, over `graphql-transport-ws` (consumer.py).

Each one is fed by the same source as its REST WebSocket, with the same scopes and access checks:

- `sandboxEvents(id)`: the sandbox's events (the log stream's channel-layer group), after its kept
  ones (apps/sandboxes/events.py), as WS /ws/sandboxes/{id}/logs sends them; ends with the sandbox.
- `activity`: the caller's own events, as WS /ws/activity (billing ones only where it may see them).
- `logs(sandboxId, follow)`: the container's output and VibeBox's events, as WS …/logs.
- `execStream(executionId)`: a command's output and exit: a background process's as WS
  …/processes/{id} (kept from the start, then live), a finished command's from its record.
- `claudeEvents(sandboxId)`: Claude's activity in a sandbox, as WS …/claude.

Every subscription listens on a channel of its own (never the connection's), so two subscriptions of
one socket never see, wait for or block each other's messages. Producers in threads (engine streams)
hand over through a bounded queue: a client that stops reading is dropped (its socket closed with 4008,
as the other WebSockets drop it), never buffered without end. Errors are REST's codes in `extensions`
(consumer.py maps them as errors.py does).
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from strawberry.scalars import JSON
from strawberry.types import Info

from apps.agents import selectors as agent_selectors
from apps.agents.asks import claude_group
from apps.agents.consumers import _backlog as claude_backlog
from apps.keys.actors import actor_for
from apps.keys.scopes import EXECUTE, SANDBOXES_READ
from apps.sandboxes import events, logs, processes, selectors
from apps.sandboxes.models import Execution, Status
from vibebox import exceptions as errors

from .relay import from_global_id

logger = logging.getLogger(__name__)

EVENT_MESSAGE = "sandbox.event"  # the channel-layer message type every publisher sends (events.py)
ENDED = ("sandbox.destroyed", "sandbox.expired")


SLOW_CLIENT_CLOSE = 4008  # as the other WebSockets close a client that stopped reading (consumers/streams.py)


class TooSlow(Exception):
    """The client stopped reading: its socket is closed with 4008 (the operation's end goes nowhere)."""


# ---- types ----


@strawberry.type(description="A VibeBox event, as the activity feed, the log stream and the webhooks carry it.")
class SandboxEvent:
    type: str = strawberry.field(description="sandbox.created, sandbox.started, exec.started, exec.finished, …")
    sandbox_id: str | None = strawberry.field(description="The sandbox's id (sbx_…); null for events of no sandbox.")
    text: str
    data: JSON = strawberry.field(description="The event's payload, as the webhooks deliver it.")
    timestamp: float = strawberry.field(description="Unix time, seconds.")
    replayed: bool = strawberry.field(default=False, description="Kept from before the subscription started.")

    @classmethod
    def of(cls, event: dict, replayed: bool = False) -> "SandboxEvent":
        return cls(
            type=event["type"],
            sandbox_id=event.get("sandboxId"),
            text=event.get("text") or "",
            data=event.get("data") or {},
            timestamp=event.get("timestamp") or 0.0,
            replayed=replayed,
        )


@strawberry.type(description="A line of a sandbox's log: the container's output, or a VibeBox event.")
class LogLine:
    type: str = strawberry.field(description="log (the container's output) or event (VibeBox's).")
    stream: str = strawberry.field(description="stdout, stderr, or vibebox for events.")
    text: str
    timestamp: float
    event: str | None = strawberry.field(default=None, description="The event's type, for an event line.")

    @classmethod
    def of(cls, entry: dict) -> "LogLine":
        return cls(
            type=entry["type"],
            stream=entry["stream"],
            text=entry["text"],
            timestamp=entry["timestamp"],
            event=entry.get("event"),
        )


@strawberry.type(description="How a command ended.")
class ExecExit:
    status: str = strawberry.field(description="completed, failed, timeout; error when the engine failed.")
    execution_id: str | None
    exit_code: int | None
    duration_ms: int | None
    truncated: bool
    oom_killed: bool
    error_code: str | None = strawberry.field(description="With status error: the REST error code.")
    error_message: str | None


@strawberry.type(description="One message of a command's stream: stdout, stderr, truncated, then exit.")
class ExecStreamMessage:
    type: str = strawberry.field(description="stdout, stderr, truncated (the start is no longer kept) or exit.")
    data: str | None = None
    dropped_bytes: int | None = None
    exit: ExecExit | None = None


@strawberry.type(description="Claude's activity in a sandbox (claude.<kind>, claude.ask.*, claude.changes*).")
class ClaudeEvent:
    type: str
    sandbox_id: str
    text: str
    ask_id: str | None
    session_id: str | None
    seq: int | None
    kind: str | None
    data: JSON = strawberry.field(description="The event's whole payload.")
    timestamp: float
    replayed: bool = False

    @classmethod
    def of(cls, event: dict) -> "ClaudeEvent":
        data = event.get("data") or {}
        return cls(
            type=event["type"],
            sandbox_id=event.get("sandboxId") or "",
            text=event.get("text") or "",
            ask_id=data.get("askId"),
            session_id=data.get("sessionId"),
            seq=data.get("seq"),
            kind=data.get("kind"),
            data=data,
            timestamp=event.get("timestamp") or 0.0,
            replayed=bool(event.get("replayed")),
        )


# ---- sources ----


def _ref(value: str, type_name: str) -> str:
    """A raw id (or a sandbox's name), or a global id naming a `type_name`."""
    value = str(value)
    if value.startswith(("sbx_", "exe_", "exec_")):
        return value
    try:
        kind, pk = from_global_id(value)
    except errors.ApplicationError:
        return value
    return pk if kind == type_name else value


async def _sandbox(info: Info, ref: str, need: str = selectors.READ):
    """As the REST views reach it: another organization's is sandbox_not_found (404)."""
    return await sync_to_async(_sandbox_sync)(info.context, _ref(ref, "Sandbox"), need)


def _sandbox_sync(context, ref: str, need: str):
    return selectors.sandbox_get(actor=context.actor, ref=ref, need=need)


@contextlib.asynccontextmanager
async def _listening(*groups: str):
    """A channel of this subscription's own, in `groups`; yields its next event (a coroutine)."""
    layer = get_channel_layer()
    # The layer's default prefix: channels_redis reads one real channel per process for all of them
    # (another prefix would wait behind the consumers' reads of theirs).
    channel = await layer.new_channel()
    added: list[str] = []

    async def next_event() -> dict:
        while True:
            message = await layer.receive(channel)
            if message.get("type") == EVENT_MESSAGE:
                return message["event"]

    try:
        for group in groups:
            await layer.group_add(group, channel)
            added.append(group)
        yield next_event
    finally:
        for group in added:
            with contextlib.suppress(Exception):  # Redis away: groups expire on their own
                await layer.group_discard(group, channel)


class _Feed:
    """Items from threads and tasks to one subscription, in a bounded queue (a slow client is dropped)."""

    def __init__(self, info: Info):
        self.socket = getattr(info.context, "ws", None)  # the consumer (consumer.py), to close when dropped
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.VIBEBOX_WS_QUEUE_MESSAGES)
        self.dropped = False

    async def put(self, item) -> bool:
        if self.dropped:
            return False
        try:
            async with asyncio.timeout(settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS):
                await self.queue.put(item)
            return True
        except TimeoutError:
            self._drop()
            return False

    def put_nowait(self, item) -> None:
        """From the event loop, never blocking (a listener that must not wait)."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drop()

    def put_from_thread(self, item) -> bool:
        """Blocks the producer thread while the client is behind (backpressure); False once dropped."""
        if self.dropped or self.loop.is_closed():
            return False
        future = asyncio.run_coroutine_threadsafe(self.put(item), self.loop)
        try:
            return future.result(timeout=settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS + 5)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
            self.dropped = True
            return False

    def _drop(self) -> None:
        self.dropped = True
        if self.socket is not None:
            self.loop.create_task(self.socket.close(code=SLOW_CLIENT_CLOSE))
        with contextlib.suppress(asyncio.QueueEmpty):  # room for the marker that ends the subscription
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    async def get(self):
        item = await self.queue.get()
        if item is None and self.dropped:
            raise TooSlow()
        return item


async def _watched(context, sandbox_id: str, need: str, source: AsyncGenerator):
    """`source`'s items until the caller may no longer reach the sandbox as `need` says (a role
    changed, a team left, a grant revoked: read afresh every VIBEBOX_WS_RECHECK_SECONDS, as the REST
    WebSockets' watchdog does): then the subscription ends with that 403 (`permission_denied`)."""
    check = asyncio.ensure_future(_access_lost(context, sandbox_id, need))
    item: asyncio.Future | None = None
    try:
        while True:
            item = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({item, check}, return_when=asyncio.FIRST_COMPLETED)
            if item not in done:
                raise check.result()
            try:
                value = item.result()
            except StopAsyncIteration:
                return
            yield value
    finally:
        check.cancel()
        if item is not None and not item.done():  # the source is mid-step: stop it there first
            item.cancel()
            with contextlib.suppress(BaseException):
                await item
        await source.aclose()


async def _access_lost(context, sandbox_id: str, need: str) -> errors.ApplicationError:
    def problem():
        actor = actor_for(user=context.user, key=context.key, session=context.session, fresh=True)
        try:
            selectors.sandbox_get(actor=actor, ref=sandbox_id, need=need)
        except errors.PermissionDenied as exc:
            return exc
        except errors.ApplicationError:
            return None  # gone: its stream ends by itself
        return None

    while True:
        await asyncio.sleep(settings.VIBEBOX_WS_RECHECK_SECONDS)
        try:
            found = await sync_to_async(problem, thread_sensitive=False)()
        except Exception as exc:  # the database is busy or away: try again next time
            logger.warning("subscription re-check failed: %s", exc)
            continue
        if found is not None:
            return found


async def _pump_events(next_event, feed: _Feed, convert) -> None:
    while True:
        event = await next_event()
        if not await feed.put(convert(event)):
            return


def _exit_of(exit_info: processes.ProcessExit) -> ExecStreamMessage:
    error = exit_info.error
    return ExecStreamMessage(
        type="exit",
        exit=ExecExit(
            status=exit_info.status,
            execution_id=exit_info.execution_id or None,
            exit_code=exit_info.exit_code,
            duration_ms=exit_info.duration_ms,
            truncated=exit_info.truncated,
            oom_killed=exit_info.oom_killed,
            error_code=error.code if error is not None else None,
            error_message=error.message if error is not None else None,
        ),
    )


def _output(stream: str, data: bytes) -> ExecStreamMessage:
    return ExecStreamMessage(type=stream, data=data.decode("utf-8", errors="replace"))


def _execution(context, ref: str):
    """The execution and its sandbox, reached as the process WebSocket reaches them (use); another
    organization's execution is not found, whatever its sandbox says. `ref`: an execution's id, or
    the `<sandbox id>/<execution id>` inside an Execution's global id (types.py)."""
    sandbox_ref, _, execution_id = ref.rpartition("/")
    execution = Execution.objects.filter(pk=execution_id).only("id", "sandbox_id").first()
    if execution is None or (sandbox_ref and execution.sandbox_id != sandbox_ref):
        raise errors.ExecutionNotFound(details={"executionId": ref})
    try:
        sandbox = selectors.sandbox_get(actor=context.actor, ref=execution.sandbox_id, need=selectors.USE)
    except errors.SandboxNotFound:
        raise errors.ExecutionNotFound(details={"executionId": ref}) from None
    return sandbox, selectors.execution_get(sandbox=sandbox, id=execution_id)


def _may_see(context, event: dict) -> bool:
    """As WS /ws/activity: billing events reach a session, and a key of that organization with billing:read."""
    key = context.key
    if not str(event.get("type", "")).startswith("billing.") or key is None:
        return True
    org_id = (event.get("data") or {}).get("orgId")
    return "billing:read" in (key.scopes or []) and key.org_id == org_id


# ---- the type ----


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="A sandbox's events (sandbox.created, sandbox.started, exec.started, exec.finished, …): "
        "those kept from before (`replayed`, since `since` if given) then live ones; ends once the sandbox "
        "is destroyed. Scope sandboxes:read."
    )
    async def sandbox_events(
        self,
        info: Info,
        id: strawberry.ID,
        since: Annotated[float | None, strawberry.argument(description="Unix time: replay only from then.")] = None,
    ) -> AsyncGenerator[SandboxEvent, None]:
        info.context.require_scopes(SANDBOXES_READ)
        sandbox = await _sandbox(info, id)

        async def source():
            async with _listening(events.logs_group(sandbox.id)) as next_event:
                # Listening first, then the kept ones: nothing falls between; what both had comes once.
                kept = await sync_to_async(events.recent, thread_sensitive=False)(sandbox.id, since)
                seen = {(event["type"], event["timestamp"]) for event in kept}
                for event in kept:
                    yield SandboxEvent.of(event, replayed=True)
                    if event["type"] in ENDED:
                        return
                while True:
                    event = await next_event()
                    if (event["type"], event["timestamp"]) in seen:
                        continue
                    yield SandboxEvent.of(event)
                    if event["type"] in ENDED:
                        return

        async for item in _watched(info.context, sandbox.id, selectors.READ, source()):
            yield item

    @strawberry.subscription(
        description="The caller's own events, live, as the webhooks deliver them (billing ones only to a "
        "session, or a key of that organization with billing:read). Scope sandboxes:read."
    )
    async def activity(self, info: Info) -> AsyncGenerator[SandboxEvent, None]:
        context = info.context
        context.require_scopes(SANDBOXES_READ)
        async with _listening(events.activity_group(context.user.pk)) as next_event:
            while True:
                event = await next_event()
                if _may_see(context, event):
                    yield SandboxEvent.of(event)

    @strawberry.subscription(
        description="A sandbox's log: the last `tail` lines (since `since`: '1h' or a unix time), then, with "
        "`follow` (default), its output and VibeBox's events as they come. Scope sandboxes:read."
    )
    async def logs(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        follow: bool = True,
        since: str | None = None,
        tail: Annotated[int | None, strawberry.argument(description="At most 100000; null: all.")] = 100,
        stdout: bool = True,
        stderr: bool = True,
    ) -> AsyncGenerator[LogLine, None]:
        info.context.require_scopes(SANDBOXES_READ)
        sandbox = await _sandbox(info, sandbox_id)

        async def source():
            since_at = logs.parse_since(since)
            tail_n = logs.parse_tail("all" if tail is None else str(tail))
            streams = [name for name, wanted in (("stdout", stdout), ("stderr", stderr)) if wanted]
            if not follow:
                for entry in await sync_to_async(logs.read, thread_sensitive=False)(
                    sandbox=sandbox, since=since_at, tail=tail_n, streams=streams
                ):
                    yield LogLine.of(entry)
                return
            feed = _Feed(info)
            followers: list = []
            pump: asyncio.Task | None = None
            try:
                async with _listening(events.logs_group(sandbox.id)) as next_event:
                    started_at = time.time()
                    backlog = await sync_to_async(logs.read, thread_sensitive=False)(
                        sandbox=sandbox, since=since_at, tail=tail_n, streams=streams
                    )
                    for entry in backlog:
                        yield LogLine.of(entry)
                    pump = asyncio.ensure_future(_pump_events(next_event, feed, events.as_log_line))
                    if sandbox.status in (Status.RUNNING, Status.PAUSED):
                        for stream in streams:
                            followers.append(await asyncio.to_thread(_follow, sandbox, stream, started_at, feed))
                    while True:
                        yield LogLine.of(await feed.get())
            finally:
                if pump is not None:
                    pump.cancel()
                for handle in followers:
                    await asyncio.to_thread(handle.close)

        async for item in _watched(info.context, sandbox.id, selectors.READ, source()):
            yield item

    @strawberry.subscription(
        description="A command's output and exit: a background process's from the start (as much as is kept), "
        "then live, then `exit`; a finished command's stored output and exit; a running foreground command's "
        "once it has ended. Leaving does not stop the command. Scope execute, as WS …/processes/{id}."
    )
    async def exec_stream(self, info: Info, execution_id: strawberry.ID) -> AsyncGenerator[ExecStreamMessage, None]:
        context = info.context
        context.require_scopes(EXECUTE)
        sandbox, execution = await sync_to_async(_execution)(context, _ref(execution_id, "Execution"))

        async def source(execution=execution):
            if not execution.background and execution.status == Execution.Status.RUNNING:
                # A foreground command streams only to its caller: wait for its end, then answer its record.
                async with _listening(events.logs_group(sandbox.id)) as next_event:
                    execution = await sync_to_async(selectors.execution_get)(sandbox=sandbox, id=execution.id)
                    while execution.status == Execution.Status.RUNNING:
                        event = await next_event()
                        if event["type"] == "exec.finished" and event["data"].get("executionId") == execution.id:
                            execution = await sync_to_async(selectors.execution_get)(sandbox=sandbox, id=execution.id)
            if execution.status != Execution.Status.RUNNING:
                ended = processes.EndedProcess.from_execution(execution)
                for stream, data in ended.chunks:
                    yield _output(stream, data)
                yield _exit_of(ended.exit)
                return
            process = await sync_to_async(processes.process_get)(sandbox=sandbox, id=execution.id)
            feed = _Feed(info)
            loop = asyncio.get_running_loop()

            def listener(item):  # from the attach's thread: never block it
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                    loop.call_soon_threadsafe(feed.put_nowait, item)

            backlog, dropped, exit_info = process.attach(listener)
            try:
                if dropped:
                    yield ExecStreamMessage(type="truncated", dropped_bytes=dropped)
                for stream, data in backlog:
                    yield _output(stream, data)
                if exit_info is not None:
                    yield _exit_of(exit_info)
                    return
                while True:
                    item = await feed.get()
                    if item[0] == "output":
                        yield _output(item[1], item[2])
                    elif item[0] == "lost":
                        yield ExecStreamMessage(type="truncated", dropped_bytes=item[1])
                    elif item[0] == "exit":
                        yield _exit_of(item[1])
                        return
            finally:
                process.detach(listener)

        async for item in _watched(info.context, sandbox.id, selectors.USE, source()):
            yield item

    @strawberry.subscription(
        description="Claude's activity in a sandbox, live (claude.<kind>, claude.ask.started|finished, "
        "claude.changes…); with `askId`, that ask's events so far first; `sessionId` keeps to one session. "
        "Scope sandboxes:read."
    )
    async def claude_events(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        ask_id: str | None = None,
        session_id: str | None = None,
    ) -> AsyncGenerator[ClaudeEvent, None]:
        info.context.require_scopes(SANDBOXES_READ)
        sandbox = await _sandbox(info, sandbox_id)

        async def source():
            if session_id:  # another sandbox's session is not found here, as over REST
                await sync_to_async(agent_selectors.session_get)(sandbox=sandbox, session_id=session_id)
            seen: set = set()

            def fresh(event: dict) -> bool:
                data = event.get("data") or {}
                if ask_id and data.get("askId") != ask_id:
                    return False
                if session_id and data.get("sessionId") != session_id:
                    return False
                mark = (data.get("askId"), data.get("seq"), event["type"] if data.get("seq") is None else "")
                if mark in seen:
                    return False
                seen.add(mark)
                return True

            async with _listening(claude_group(sandbox.id)) as next_event:
                backlog = await sync_to_async(claude_backlog)(sandbox, ask_id) if ask_id else []
                for event in backlog:
                    if fresh(event):
                        yield ClaudeEvent.of(event)
                while True:
                    event = await next_event()
                    if fresh(event):
                        yield ClaudeEvent.of(event)

        async for item in _watched(info.context, sandbox.id, selectors.READ, source()):
            yield item


def _follow(sandbox, stream: str, since: float, feed: _Feed):
    """Follows the container's `stream` in a thread of its own; answers the handle that stops it."""
    handle = logs.follow(sandbox=sandbox, stream=stream, since=since)

    def pump():
        for timestamp, text in handle:
            if not feed.put_from_thread(logs.line(stream, timestamp, text)):
                break
        handle.close()

    threading.Thread(target=pump, daemon=True, name=f"gql-logs-{sandbox.id}-{stream}").start()
    return handle
