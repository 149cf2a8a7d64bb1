"""Component health for the public status (GET /api/v1/status, the /status page).

Each check has a short deadline and runs in a thread of its own; one that has not answered by
VIBEBOX_STATUS_CHECK_TIMEOUT is reported down ("no answer") and left to finish on its own. The
result is kept VIBEBOX_STATUS_CACHE_SECONDS per process, and only one request per process runs the
checks at a time (the others wait for its result), so the public page cannot be used to load the
engine, Redis or the workers. Messages are short and fixed: no addresses, hosts or error texts.
Nothing here raises: a failing check is a component that is down.
"""

import datetime as dt
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from apps.agents.setup import gateway_url
from apps.sandboxes.engine import engine_ping
from apps.sandboxes.services.pools import pool_stats
from vibebox.celery import app as celery_app

from .models import SliSample

OK, DEGRADED, DOWN = "ok", "degraded", "down"
COMPONENTS = ("api", "engine", "redis", "workers", "gateway", "pools")
CORE = ("api", "engine", "redis")  # any of these down: the platform is down; the others degrade it
PROBE_TIMEOUT = 1.0  # seconds, each network probe's own


@dataclass(frozen=True)
class Component:
    name: str
    status: str
    message: str


def _api() -> Component:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return Component("api", OK, "Answering; the database answers.")


def _engine() -> Component:
    engine_ping()
    return Component("engine", OK, "The container engine answers.")


def _redis_ping() -> None:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
    )
    try:
        client.ping()
    finally:
        client.close()


def _redis() -> Component:
    _redis_ping()
    return Component("redis", OK, "Redis answers.")


def _workers() -> Component:
    try:
        _redis_ping()
    except Exception:  # any failure: the broker is out of reach
        return Component("workers", DOWN, "Cannot be asked: Redis (the task broker) does not answer.")
    replies = celery_app.control.ping(timeout=PROBE_TIMEOUT)
    if not replies:
        return Component("workers", DOWN, f"No Celery worker answered within {PROBE_TIMEOUT:g} s.")
    answered = f"{len(replies)} Celery worker{'s' if len(replies) != 1 else ''} answered."
    try:
        newest = SliSample.objects.filter(total_cumulative__isnull=False).order_by("-minute").first()
    except DatabaseError:  # the api component reports the database
        return Component("workers", OK, answered)
    late = dt.timedelta(seconds=5 * settings.VIBEBOX_SLO_SAMPLE_INTERVAL)
    if newest is not None and timezone.now() - newest.minute > late + dt.timedelta(minutes=1):
        minutes = int((timezone.now() - newest.minute).total_seconds() // 60)
        return Component("workers", DEGRADED, f"{answered} Beat's last SLI sample is {minutes} min old.")
    return Component("workers", OK, answered)


def _gateway() -> Component:
    with urllib.request.urlopen(f"{gateway_url()}/healthz", timeout=PROBE_TIMEOUT) as response:  # noqa: S310
        if response.status != 200:
            return Component("gateway", DOWN, "The model gateway answers with an error.")
    return Component("gateway", OK, "The model gateway answers.")


def _pools() -> Component:
    if not settings.VIBEBOX_POOL_ENABLED:
        return Component("pools", OK, "Warm pools are off: sandboxes start cold.")
    pools = [pool for pool in pool_stats() if pool.enabled and pool.target_size > 0]
    if not pools:
        return Component("pools", OK, "No warm pool is configured.")
    empty = [pool for pool in pools if pool.size == 0]
    if empty:
        names = ", ".join(sorted({pool.template for pool in empty}))
        return Component("pools", DEGRADED, f"Empty (sandboxes start cold): {names}.")
    ready = sum(pool.size for pool in pools)
    sandboxes = f"{ready} warm sandbox{'es' if ready != 1 else ''}"
    return Component("pools", OK, f"{sandboxes} ready in {len(pools)} pool{'s' if len(pools) != 1 else ''}.")


CHECKS = {
    "api": (_api, "The database does not answer."),
    "engine": (_engine, "The container engine does not answer."),
    "redis": (_redis, "Redis does not answer."),
    "workers": (_workers, "The Celery workers could not be asked."),
    "gateway": (_gateway, "The model gateway does not answer."),
    "pools": (_pools, "The warm pools could not be read."),
}


def _run(name: str, results: dict) -> None:
    check, failed = CHECKS[name]
    try:
        results[name] = check()
    except Exception:  # a check that fails is a component that is down
        results[name] = Component(name, DOWN, failed)
    finally:
        connection.close()  # this thread's own database connection


def check_components() -> list[Component]:
    """Runs every check at once (not cached); each has VIBEBOX_STATUS_CHECK_TIMEOUT at most."""
    results: dict[str, Component] = {}
    threads = [threading.Thread(target=_run, args=(name, results), daemon=True) for name in COMPONENTS]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + settings.VIBEBOX_STATUS_CHECK_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    timeout = f"No answer within {settings.VIBEBOX_STATUS_CHECK_TIMEOUT:g} s."
    return [results.get(name) or Component(name, DOWN, timeout) for name in COMPONENTS]


def overall(components: list[Component]) -> str:
    if any(c.status == DOWN and c.name in CORE for c in components):
        return DOWN
    return OK if all(c.status == OK for c in components) else DEGRADED


_lock = threading.Lock()
_cached: tuple[float, dict] | None = None


def platform_status() -> dict:
    """{"status", "components": [{"name", "status", "message"}], "checkedAt"}, at most
    VIBEBOX_STATUS_CACHE_SECONDS old; one request per process runs the checks."""
    global _cached
    with _lock:
        if _cached is not None and time.monotonic() - _cached[0] < settings.VIBEBOX_STATUS_CACHE_SECONDS:
            return _cached[1]
        components = check_components()
        result = {
            "status": overall(components),
            "components": [asdict(component) for component in components],
            "checkedAt": timezone.now(),
        }
        _cached = (time.monotonic(), result)
        return result


def forget() -> None:
    """Drops the kept result (tests, and after a configuration change)."""
    global _cached
    with _lock:
        _cached = None
