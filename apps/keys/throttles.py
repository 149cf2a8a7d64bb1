"""The API's request rate limit, per key.

Counted in Redis, so every server process spends one budget: a sliding window kept as a sorted
set of request times per key, checked and added to by one Lua script, so requests racing on
several processes cannot all take the last place (DRF's own throttle reads the history, then
writes it back, and let 15 of 10 through across two processes).

Redis down (decided in issue 18): reads (GET, HEAD, OPTIONS) pass uncounted, with a warning, so
listings, inspection and downloads keep working and monitoring is not blinded; everything else
(what creates, changes, starts or deletes) is refused with 503 `rate_limiter_unavailable`, since an
uncounted write path is what a runaway client or an attacker would use.
"""

import logging
import time
import uuid

import redis
from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from vibebox import exceptions as errors
from vibebox import redisdb

from .models import ApiKey

logger = logging.getLogger(__name__)

# KEYS[1]: the caller's request times. ARGV: now, window start, limit, member, key ttl (ms).
# Answers {1, 0} when counted, else {0, oldest time still in the window}.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, oldest[2]}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, '0'}
"""

RETRY_AFTER_UNAVAILABLE = 5  # seconds; Redis is usually back (or restarted) by then


def _key(ident) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:throttle:{ident}"


def forget(ident) -> None:
    """Drops the window of a key (by id) or of `user-<id>` / `addr-<address>`."""
    redisdb.client(settings.REDIS_URL).delete(_key(ident))


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per-key request rate (the key's own `rate_limit`, else VIBEBOX_RATE_LIMIT). A session
    user is limited per user, an anonymous caller per address, at the default rate."""

    scope = "key"

    def __init__(self):  # the rate depends on the request, see allow_request
        self.wait_seconds = None

    def allow_request(self, request, view):
        key = request.auth if isinstance(request.auth, ApiKey) else None
        self.rate = (key.rate_limit if key else "") or settings.VIBEBOX_RATE_LIMIT
        self.num_requests, self.duration = self.parse_rate(self.rate)
        now = time.time()
        try:
            taken, oldest = redisdb.script(settings.REDIS_URL, _TAKE)(
                keys=[_key(self.ident(request))],
                args=[now, now - self.duration, self.num_requests, uuid.uuid4().hex, int(self.duration * 1000) + 1000],
            )
        except redis.RedisError as exc:
            if request.method in SAFE_METHODS:
                logger.warning("rate limiting skipped for a read, Redis unavailable: %s", exc)
                return True
            logger.error("write refused, Redis unavailable for the rate limit: %s", exc)
            raise errors.RateLimiterUnavailable(
                details={"dependency": "redis"}, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)}
            ) from None
        if taken:
            return True
        self.wait_seconds = max(0.0, float(oldest) + self.duration - now)
        return False

    def wait(self):
        return self.wait_seconds

    def ident(self, request) -> str:
        if isinstance(request.auth, ApiKey):
            return request.auth.pk
        if request.user is not None and request.user.is_authenticated:
            return f"user-{request.user.pk}"
        return f"addr-{self.get_ident(request)}"

    def get_cache_key(self, request, view):  # part of SimpleRateThrottle's interface
        return _key(self.ident(request))
