"""Redis for the counters every server process must share (API rate limits, per-owner stream and
process caps): one connection pool per URL, with short timeouts so that a Redis that hangs fails
like one that is down (callers decide what that means: writes fail closed)."""

from functools import cache

import redis


@cache
def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)


@cache
def script(url: str, source: str):
    """A Lua script registered once per URL: one atomic check-and-count on the server."""
    return client(url).register_script(source)
