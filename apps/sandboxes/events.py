"""The one publisher of sandbox events: lifecycle, commands, files.

An event is kept in Redis (the last VIBEBOX_EVENTS_KEPT per sandbox, for the log stream's
`since`/`tail`) and sent, after the database transaction commits, to two channel-layer groups:
the sandbox's log stream and its owner's activity feed. Delivery happens in one background
thread per process, in publishing order, so requests do not wait for Redis. Celery workers can
publish too. Redis being down never fails the request that caused the event. Events that
belong to no sandbox (agent runs) go through `publish_owner`, to the activity feed alone.
"""

import asyncio
import json
import logging
import queue
import threading
import time

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from vibebox import redisdb

from . import signals

logger = logging.getLogger(__name__)


def _key(sandbox_id: str) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:events:{sandbox_id}"


def logs_group(sandbox_id: str) -> str:
    return f"logs.{sandbox_id}"


def activity_group(owner_id) -> str:
    return f"activity.{owner_id}"


def publish(*, sandbox, type: str, text: str = "", data: dict | None = None, groups: tuple[str, ...] = ()) -> None:
    """Sends an event to the sandbox's log stream and its owner's activity feed, and to `groups`;
    tells the apps above at once (signals.sandbox_event: webhooks write their deliveries in the
    caller's transaction)."""
    signals.sandbox_event.send(sender=sandbox.__class__, sandbox=sandbox, type=type, data=data or {})
    event = {
        "type": type,
        "sandboxId": sandbox.id,
        "text": text or type.replace(".", " "),
        "data": data or {},
        "timestamp": time.time(),
    }
    transaction.on_commit(lambda: _enqueue(event, sandbox.owner_id, groups))


def publish_owner(owner_id, type: str, text: str = "", data: dict | None = None) -> None:
    """Sends an event that belongs to no sandbox (`sandboxId` null) to the owner's activity feed
    only: it is not kept in Redis and reaches no log stream."""
    event = {
        "type": type,
        "sandboxId": None,
        "text": text or type.replace(".", " "),
        "data": data or {},
        "timestamp": time.time(),
    }
    transaction.on_commit(lambda: _enqueue(event, owner_id))


# Delivery takes a few Redis round trips (~4 ms); a thread does it so no request waits for it,
# for all the events waiting at once.
_queue: queue.SimpleQueue = queue.SimpleQueue()
_pending = 0
_idle = threading.Condition()
_worker: threading.Thread | None = None


def _enqueue(event: dict, owner_id, groups: tuple[str, ...] = ()) -> None:
    global _pending, _worker
    with _idle:
        _pending += 1
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, daemon=True, name="vibebox-events")
            _worker.start()
    _queue.put((event, owner_id, groups))


BATCH = 64  # events delivered together: one Redis pipeline, one pass of the event loop


def _work() -> None:
    global _pending
    loop = asyncio.new_event_loop()  # one loop for the thread: the channel layer keeps its connections
    while True:
        batch = [_queue.get()]
        while len(batch) < BATCH:
            try:
                batch.append(_queue.get_nowait())
            except queue.Empty:
                break
        try:
            _deliver(batch, loop)
        finally:
            with _idle:
                _pending -= len(batch)
                _idle.notify_all()


def flush(timeout: float = 5.0) -> None:
    """Waits until the events published so far are delivered (readers call this first)."""
    with _idle:
        _idle.wait_for(lambda: _pending == 0, timeout=timeout)


def _targets(event: dict, owner_id, groups: tuple[str, ...]) -> list[str]:
    targets = [activity_group(owner_id), *groups]
    if event["sandboxId"] is not None:
        targets.append(logs_group(event["sandboxId"]))
    return targets


def _group_key(layer, group: str) -> bytes | None:
    """Where channels_redis keeps a group's members (None: another layer, or several hosts)."""
    hosts = getattr(layer, "hosts", None)
    if not hasattr(layer, "_group_key") or not hosts or len(hosts) != 1:
        return None
    if hosts[0].get("address") != settings.REDIS_URL:
        return None
    return layer._group_key(group)


def listening(owner_ids) -> set:
    """Which of these owners have an activity feed open now (one Redis round trip), for a publisher
    whose events cost something to compute. When it cannot tell (another channel layer, Redis
    down), all of them."""
    owner_ids = list(owner_ids)
    layer = get_channel_layer()
    keys = [_group_key(layer, activity_group(owner_id)) for owner_id in owner_ids]
    if not owner_ids or any(key is None for key in keys):
        return set(owner_ids)
    try:
        pipe = redisdb.client(settings.REDIS_URL).pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
        counts = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("listeners unknown: %s", exc)
        return set(owner_ids)
    return {owner_id for owner_id, count in zip(owner_ids, counts, strict=True) if count}


# KEYS: the event lists of the kept events (one per event, in order), then the groups' member sets.
# ARGV: how many events, how many a sandbox keeps, their lists' ttl, then the events' JSON.
# Answers each group's member count. One command: a pipeline of five per event cost more to parse
# (redis-py, in Python) than the delivery itself.
_KEEP = """
local kept = tonumber(ARGV[1])
for i = 1, kept do
  redis.call('LPUSH', KEYS[i], ARGV[3 + i])
  redis.call('LTRIM', KEYS[i], 0, tonumber(ARGV[2]) - 1)
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
local members = {}
for i = kept + 1, #KEYS do
  members[#members + 1] = redis.call('ZCARD', KEYS[i])
end
return members
"""


def _deliver(batch: list[tuple[dict, object, tuple[str, ...]]], loop: asyncio.AbstractEventLoop) -> None:
    """Keeps the batch's sandbox events in Redis and learns which groups have listeners (one round
    trip), then sends each event to those of its groups that have any. Most events have none (no
    log stream or activity feed open): a send to an empty group still costs channels_redis two
    round trips."""
    kept = []
    for event, _, _ in batch:
        if event["sandboxId"] is not None:
            try:
                kept.append((_key(event["sandboxId"]), json.dumps(event)))
            except (TypeError, ValueError) as exc:  # one bad event costs only itself
                logger.warning("event %s not kept: %s", event["type"], exc)
    layer = get_channel_layer()
    groups = list(dict.fromkeys(group for item in batch for group in _targets(*item)))
    group_keys = {group: _group_key(layer, group) for group in groups}
    counted = [group for group in groups if group_keys[group] is not None]
    listened: set[str] = set(groups) - set(counted)  # those we cannot count are sent to
    try:
        members = redisdb.script(settings.REDIS_URL, _KEEP)(
            keys=[key for key, _ in kept] + [group_keys[group] for group in counted],
            args=[len(kept), settings.VIBEBOX_EVENTS_KEPT, 30 * 86400] + [text for _, text in kept],
        )
        listened.update(group for group, count in zip(counted, members, strict=True) if count)
    except Exception as exc:  # events are best effort; the actions themselves have happened
        logger.warning("%d events not kept: %s", len(kept), exc)
        listened.update(groups)
    if not listened:
        return
    try:  # each send catches its own failure, so none is left pending on the loop
        loop.run_until_complete(_send(layer, batch, listened))
    except Exception as exc:  # the channel layer itself failed
        logger.warning("%d events not delivered: %s", len(batch), exc)


async def _send(layer, batch: list[tuple[dict, object, tuple[str, ...]]], listened: set[str]) -> None:
    """Each group gets its events in publishing order; the groups are sent to side by side."""
    by_group: dict[str, list[dict]] = {}
    for event, owner_id, groups in batch:
        for group in _targets(event, owner_id, groups):
            if group in listened:
                by_group.setdefault(group, []).append({"type": "sandbox.event", "event": event})

    async def in_order(group: str, messages: list[dict]) -> None:
        for message in messages:
            try:
                await layer.group_send(group, message)
            except Exception as exc:  # that one message is lost; the group's next ones still go
                logger.warning("event %s not sent to %s: %s", message["event"]["type"], group, exc)

    await asyncio.gather(*(in_order(group, messages) for group, messages in by_group.items()))


def recent(sandbox_id: str, since: float | None = None) -> list[dict]:
    """Kept events of a sandbox, oldest first."""
    flush()
    try:
        raw = redisdb.client(settings.REDIS_URL).lrange(_key(sandbox_id), 0, -1)
    except redis.RedisError as exc:
        logger.warning("events unavailable: %s", exc)
        return []
    events = [json.loads(item) for item in reversed(raw)]
    return [e for e in events if since is None or e["timestamp"] >= since]


def as_log_line(event: dict) -> dict:
    return {
        "type": "event",
        "stream": "vibebox",
        "text": event["text"],
        "timestamp": event["timestamp"],
        "event": event["type"],
    }
