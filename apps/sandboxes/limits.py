"""Per-owner caps on what a user holds open at once: streams (every WebSocket connection),
terminals (PTY sessions) and background processes. The one place they are counted.

Counts live in Redis, so they hold across several web processes (issue 19 makes the server
stateless): one sorted set per owner and kind, a member per held slot, scored with the end of its
lease. A web process renews the leases of the slots it holds every LEASE_SECONDS / 3 (one thread),
so the slots of a process that crashed free themselves after at most LEASE_SECONDS, and the slots a
restarted Redis forgot are counted again within LEASE_SECONDS / 3. Taking a slot
is one Lua script (prune expired, count, add): two requests cannot both take the last one.

Redis down (decided in issue 18): a slot that cannot be counted is refused, 503
`rate_limiter_unavailable`. A stream or a background process is held open for as long as the
client likes, which is what these caps bound; granting them uncounted would let one user open
thousands during the outage. Streams already open keep their slots (their leases are renewed once
Redis is back, or expire).
"""

import logging
import threading
import time
import uuid

import redis
from django.conf import settings

from vibebox import exceptions as errors
from vibebox import redisdb

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
RETRY_AFTER_UNAVAILABLE = 5  # seconds, when Redis is down
STREAMS, TERMINALS, PROCESSES = "streams", "terminals", "processes"
_LIMITS = {
    STREAMS: ("VIBEBOX_MAX_STREAMS_PER_OWNER", "open streams"),
    TERMINALS: ("VIBEBOX_MAX_TERMINALS_PER_OWNER", "open terminals"),
    PROCESSES: ("VIBEBOX_MAX_PROCESSES_PER_OWNER", "running background processes"),
}

# KEYS[1]: the owner's slots of one kind. ARGV: now, lease end, limit, slot id, key ttl (ms).
# Answers {1, count with this slot} or {0, count} when the limit is reached.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[3]) then
  return {0, count}
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, count + 1}
"""

_held: dict[str, "Slot"] = {}
_held_lock = threading.Lock()
_renewer: threading.Thread | None = None


def _key(kind: str, owner_id) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:limits:{kind}:{owner_id}"


def limit(kind: str) -> int:
    return getattr(settings, _LIMITS[kind][0])


class Slot:
    """One held unit of a per-owner limit; `release()` (idempotent) gives it back."""

    def __init__(self, kind: str, owner_id, key: str, member: str):
        self.kind, self.owner_id, self.key, self.member = kind, owner_id, key, member

    def release(self) -> None:
        with _held_lock:
            if _held.pop(self.member, None) is None:
                return
        try:
            redisdb.client(settings.REDIS_URL).zrem(self.key, self.member)
        except redis.RedisError as exc:  # the lease runs out on its own
            logger.warning("limits: could not release a %s slot: %s", self.kind, exc)


def acquire(kind: str, owner_id) -> Slot:
    """Takes a slot of `kind` for the owner, or raises TooManyStreams (429) naming the limit, or
    RateLimiterUnavailable (503) when Redis cannot count it."""
    maximum = limit(kind)
    key = _key(kind, owner_id)
    slot = Slot(kind, owner_id, key, uuid.uuid4().hex)
    now = time.time()
    try:
        taken, count = redisdb.script(settings.REDIS_URL, _TAKE)(
            keys=[key], args=[now, now + LEASE_SECONDS, maximum, slot.member, LEASE_SECONDS * 2000]
        )
    except redis.RedisError as exc:
        logger.error("limits: Redis unavailable, %s refused: %s", kind, exc)
        raise errors.RateLimiterUnavailable(
            details={"dependency": "redis"}, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
        ) from None
    if not taken:
        raise errors.TooManyStreams(
            f"At most {maximum} {_LIMITS[kind][1]} per user; close one first.",
            details={"kind": kind, "limit": maximum, "current": int(count)},
        )
    with _held_lock:
        _held[slot.member] = slot
    _ensure_renewer()
    return slot


def current(kind: str, owner_id) -> int:
    """How many slots of `kind` the owner holds now (all web processes)."""
    return int(redisdb.client(settings.REDIS_URL).zcount(_key(kind, owner_id), time.time(), "+inf"))


def _ensure_renewer() -> None:
    global _renewer
    with _held_lock:
        if _renewer is not None and _renewer.is_alive():
            return
        _renewer = threading.Thread(target=_renew_forever, daemon=True, name="limits-renewer")
        _renewer.start()


def _renew_forever() -> None:
    while True:
        time.sleep(LEASE_SECONDS / 3)
        with _held_lock:
            slots = list(_held.values())
        if not slots:
            continue
        until = time.time() + LEASE_SECONDS
        try:
            client = redisdb.client(settings.REDIS_URL)
            pipeline = client.pipeline(transaction=False)
            for slot in slots:
                # not only the slots still there: a Redis restarted empty, or an outage longer than
                # the lease, lost them while their streams and processes stayed open
                pipeline.zadd(slot.key, {slot.member: until})
                pipeline.pexpire(slot.key, LEASE_SECONDS * 2000)
            pipeline.execute()
            with _held_lock:  # one released meanwhile must not come back
                gone = [slot for slot in slots if slot.member not in _held]
            for slot in gone:
                client.zrem(slot.key, slot.member)
        except redis.RedisError as exc:
            logger.warning("limits: could not renew %d slots: %s", len(slots), exc)
