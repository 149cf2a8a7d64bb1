"""A code context's execute streamed over the exec WebSocket (docs/api.md, "Code contexts").

The client's first message is {type: "context.execute", context: "ctx_…", code, timeout?}; the
server sends {type: "stdout"|"stderr", data}, {type: "result", data, isMainResult}, {type:
"error", name, value, traceback} as they come, then {type: "context.done", executionCount,
durationMs} and closes. While it runs the client may send {type: "interrupt"} (or {type:
"signal", signal: "INT"}): the kernel's SIGINT. A client that leaves does not stop the code
(the context's state is what it is for); interrupt it first to stop it.
"""

import asyncio
import logging

from asgiref.sync import sync_to_async

from vibebox import exceptions as errors
from vibebox.units import parse_duration

from .. import contexts
from .base import close_code, error_message
from .streams import Outbox

logger = logging.getLogger(__name__)
EXECUTE = "context.execute"
FIELDS = {"type", "context", "code", "timeout"}


def _lookup(sandbox, context_id):
    return contexts.context_get(sandbox=sandbox, id=context_id)


async def start(consumer, message: dict):
    """Starts the execute; answers its task (None when the message was refused: the client may
    send another)."""
    unknown = sorted(set(message) - FIELDS)
    if unknown:
        await consumer.send_json(error_message(errors.UnknownField(details={"fields": unknown})))
        return None
    context_id, code = message.get("context"), message.get("code")
    if type(context_id) is not str or type(code) is not str:
        await consumer.send_json(error_message(errors.ValidationFailed("context and code are strings.")))
        return None
    try:
        timeout = parse_duration(message["timeout"]) if message.get("timeout") is not None else None
    except (TypeError, ValueError) as exc:
        await consumer.send_json(error_message(errors.InvalidDuration(str(exc))))
        return None
    consumer.context_id = context_id
    consumer.outbox = outbox = Outbox(consumer)

    def on_event(event: dict):
        outbox.put_from_thread("json", event)

    def execute():
        context = _lookup(consumer.sandbox, context_id)
        return contexts.context_execute(
            context=context, code=code, timeout=timeout, api_key=consumer.key, on_event=on_event
        )

    task = asyncio.ensure_future(sync_to_async(execute, thread_sensitive=False)())
    task.add_done_callback(lambda done: asyncio.ensure_future(_finished(consumer, done)))
    return task


async def receive(consumer, message: dict):
    """A message while the execute runs: an interrupt, or nothing."""
    if consumer.task.done():
        return
    kind = message.get("type")
    signal = str(message.get("signal", "")).upper().removeprefix("SIG")
    if kind == "interrupt" or (kind == "signal" and signal == "INT"):
        try:
            context = await sync_to_async(_lookup, thread_sensitive=False)(consumer.sandbox, consumer.context_id)
            await sync_to_async(contexts.context_interrupt, thread_sensitive=False)(context=context)
        except errors.ApplicationError as exc:
            await consumer.send_json(error_message(exc))
    else:
        await consumer.send_json(error_message(errors.ValidationFailed("While code runs, send interrupt.")))


async def _finished(consumer, task):
    outbox = consumer.outbox
    try:
        outcome = task.result()
    except errors.ApplicationError as exc:
        await outbox.put("json", error_message(exc))
        await outbox.finish()
        await consumer.close(code=close_code(exc))
        return
    except Exception:
        logger.exception("context execute in %s failed", consumer.sandbox.id)
        await outbox.put("json", error_message(errors.ApplicationError()))
        await outbox.finish()
        await consumer.close(code=1011)
        return
    done = {"type": "context.done", "executionCount": outcome.execution_count, "durationMs": outcome.duration_ms}
    await outbox.put("json", {**done, "executionId": outcome.execution_id, "truncated": outcome.truncated})
    await outbox.finish()
    await consumer.close(code=1000)
