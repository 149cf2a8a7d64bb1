"""Requests per key per day, counted in Redis and moved into ApiKeyUsage in batches.

Counting each request with a database write cost every API request a write transaction (on SQLite,
the database's one write lock). So a request adds one to a Redis hash (`HINCRBY`, one round trip),
and a periodic flush (Celery beat, VIBEBOX_USAGE_FLUSH_INTERVAL) moves the counts into the database:

- RENAME takes the pending hash as a batch with a fresh id, atomically: requests counted meanwhile
  start a new pending hash, nothing is counted twice or lost between the two.
- The batch's counts and an ApiKeyUsageFlush row with its id are written in one transaction; the
  hash is deleted after the commit. A flush that dies between the commit and the delete leaves the
  hash; the next flush finds its id already written and only deletes it.
- Reads add the counts still in Redis, so usage is exact at any moment.
- Redis down: the request is counted in the database directly (as before), so nothing is lost.
"""

import contextlib
import datetime as dt
import logging
import uuid

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from vibebox import redisdb

from . import keycache
from .models import ApiKey, ApiKeyUsage, ApiKeyUsageFlush

logger = logging.getLogger(__name__)

FLUSHES_KEPT = dt.timedelta(days=7)  # batch ids remembered (a crashed flush retries within seconds)


def _prefix() -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:keyusage"


def _pending() -> str:
    return f"{_prefix()}:pending"


def _batch(batch_id: str) -> str:
    return f"{_prefix()}:batch:{batch_id}"


def _field(key_id: str, day: dt.date) -> str:
    return f"{key_id}|{day.isoformat()}"


def count(*, key: ApiKey, now: dt.datetime) -> None:
    """Counts one request of `key`."""
    try:
        redisdb.client(settings.REDIS_URL).hincrby(_pending(), _field(key.pk, now.date()), 1)
    except redis.RedisError as exc:
        logger.warning("key usage counted in the database, Redis unavailable: %s", exc)
        _add(key.pk, now.date(), 1)


# KEYS[1]: the keys' generation (keycache.py), KEYS[2]: the pending counts. ARGV: the generation the
# caller's key was read under, the count's field. Counts only while the generation is unchanged.
_COUNT_IF_CURRENT = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 1
"""


def count_if_current(*, key: ApiKey, now: dt.datetime, generation: bytes) -> bool:
    """Counts one request of a cached `key` in the same round trip that checks the key is still
    current; False (nothing counted) when the generation moved or Redis cannot say."""
    try:
        counted = redisdb.script(settings.REDIS_URL, _COUNT_IF_CURRENT)(
            keys=[keycache.generation_key(), _pending()], args=[generation, _field(key.pk, now.date())]
        )
    except redis.RedisError:
        return False
    return bool(counted)


def _add(key_id: str, day: dt.date, requests: int) -> None:
    if ApiKeyUsage.objects.filter(key_id=key_id, day=day).update(requests=F("requests") + requests):
        return
    try:
        with transaction.atomic():
            ApiKeyUsage.objects.create(key_id=key_id, day=day, requests=requests)
    except IntegrityError:  # created meanwhile by a concurrent writer (or the key is gone)
        ApiKeyUsage.objects.filter(key_id=key_id, day=day).update(requests=F("requests") + requests)


def _parse(field: bytes, value: bytes) -> tuple[str, dt.date, int] | None:
    try:
        key_id, _, day = field.decode().partition("|")
        return key_id, dt.date.fromisoformat(day), int(value)
    except ValueError:
        return None


def flush() -> int:
    """Moves the counts in Redis into the database; answers how many requests it moved."""
    client = redisdb.client(settings.REDIS_URL)
    with contextlib.suppress(redis.ResponseError):  # "no such key": nothing pending
        client.rename(_pending(), _batch(f"{timezone.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"))
    moved = 0
    for name in client.scan_iter(match=_batch("*"), count=100):
        batch_id = name.decode().rsplit(":", 1)[1]
        counts = [parsed for f, v in client.hgetall(name).items() if (parsed := _parse(f, v))]
        live = set(ApiKey.objects.filter(pk__in={key_id for key_id, _, _ in counts}).values_list("pk", flat=True))
        try:
            with transaction.atomic():
                ApiKeyUsageFlush.objects.create(id=batch_id)
                for key_id, day, requests in counts:
                    if key_id in live:  # a key deleted meanwhile takes its counts with it
                        _add(key_id, day, requests)
                        moved += requests
        except IntegrityError:
            logger.info("key usage batch %s was already written; dropping it", batch_id)
        client.delete(name)
    ApiKeyUsageFlush.objects.filter(flushed_at__lt=timezone.now() - FLUSHES_KEPT).delete()
    return moved


def pending(*, key: ApiKey) -> dict[dt.date, int]:
    """The counts of `key` still in Redis, per day ({} when Redis cannot say)."""
    days: dict[dt.date, int] = {}
    try:
        client = redisdb.client(settings.REDIS_URL)
        for name in [_pending(), *client.scan_iter(match=_batch("*"), count=100)]:
            for field, value in client.hscan_iter(name, match=f"{key.pk}|*", count=1000):
                parsed = _parse(field, value)
                if parsed:
                    days[parsed[1]] = days.get(parsed[1], 0) + parsed[2]
    except redis.RedisError as exc:
        logger.warning("key usage without the counts still in Redis: %s", exc)
    return days
