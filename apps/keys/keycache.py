"""Authenticated keys kept in each server process, so a request's authentication is no database query.

A key is read from the database on its first request; later requests with the same secret find it
here. Whatever can make a key stop working, or change what it may do, bumps one generation counter
in Redis (`bump`, on commit): a revoke, a rotation, an edit or delete of the key (admin included),
an edit of its user (deactivation) or of its organization (whose settings a create reads: node
labels, egress policy, registry mirrors). Each request reads the counter in the same round trip
that counts its usage (usage.count_if_current); a counter that moved empties this process's cache
and the key is read again. Expiry needs no bump: it is checked on every request against the clock.

Redis down: nothing is cached or counted there; every request reads the database (and usage
falls back to it, as before). A change made while Redis was down could not bump the counter, so a
process that cached the key before the outage and served nothing during it would not see it: every
entry is also read again after MAX_AGE, which bounds that window.
"""

import copy
import threading
import time
from collections import OrderedDict

import redis
from django.conf import settings
from django.db import transaction

from vibebox import redisdb

from .models import ApiKey

SIZE = 4096  # keys kept per process (least recently used go first)
MAX_AGE = 30.0  # seconds an entry is trusted at most, whatever the counter says

_lock = threading.Lock()
_keys: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()  # key hash -> (key, read at)
_generation: bytes | None = None  # the counter the cached keys were read under


def generation_key() -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:keys:generation"


def current() -> bytes | None:
    """The counter now (None when Redis cannot say: nothing may be cached then)."""
    try:
        return redisdb.client(settings.REDIS_URL).get(generation_key()) or b"0"
    except redis.RedisError:
        return None


def get(key_hash: str) -> tuple[ApiKey | None, bytes | None]:
    """(a private copy of the cached key, the generation it was read under), or (None, None)."""
    with _lock:
        entry = _keys.get(key_hash)
        if entry is None or time.monotonic() - entry[1] > MAX_AGE:
            return None, None
        _keys.move_to_end(key_hash)
        return _copy(entry[0]), _generation


def _copy(key: ApiKey) -> ApiKey:
    """Each request its own key and user: a request may change them (the key's last use), never
    the cached ones or another request's."""
    copied = copy.copy(key)
    copied.scopes = list(key.scopes)
    copied.user = copy.copy(key.user)
    return copied


def put(key_hash: str, key: ApiKey, generation: bytes | None) -> None:
    """Keeps `key`, read from the database after `current()` answered `generation`."""
    global _generation
    if generation is None:
        return
    with _lock:
        if generation != _generation:
            _keys.clear()
            _generation = generation
        _keys[key_hash] = (_copy(key), time.monotonic())
        while len(_keys) > SIZE:
            _keys.popitem(last=False)


def used(key_hash: str, when) -> None:
    """The key's last use, as just written to the database (so the next request need not)."""
    with _lock:
        entry = _keys.get(key_hash)
        if entry is not None:
            entry[0].last_used_at = when


def forget() -> None:
    """Empties this process's cache (the counter moved)."""
    global _generation
    with _lock:
        _keys.clear()
        _generation = None


def bump() -> None:
    """Every process reads its keys again, once the current transaction commits."""

    def incr():
        try:
            redisdb.client(settings.REDIS_URL).incr(generation_key())
        except redis.RedisError:  # no process caches while Redis is away; they re-read on return
            forget()

    forget()
    transaction.on_commit(incr)
