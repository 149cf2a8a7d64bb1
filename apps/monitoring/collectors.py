"""What a scrape of GET /metrics computes on the spot (docs/monitoring.md, "Metrics"): gauges read
from the database (sandboxes by state and template, warm pools' ready containers, each sandbox's
memory and workspace from its latest meter sample), the engine's and Redis's health and Celery's
queue lengths (probed with short deadlines), and the build's version.

A scrape never fails because of them: a probe that errs or takes longer than
VIBEBOX_METRICS_PROBE_TIMEOUT reports 0 (down, or an unknown length left out), and a database
read that fails leaves its gauges out (logged)."""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import redis
from django.conf import settings
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.sandboxes.engine import engine_ping
from vibebox import metrics

from . import selectors

logger = logging.getLogger(__name__)

# Probes run here, so a scrape waits for them at most the probe timeout; one that hangs holds a
# thread until it ends, and the next scrapes' probes queue behind it and report 0 meanwhile.
_probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="metrics-probe")
_redis_lock = threading.Lock()
_redis_clients: dict[str, redis.Redis] = {}  # by broker URL: its connection pool is reused
# kombu's Redis transport keeps a queue's prioritised messages in lists beside it (priority steps 3, 6, 9).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _redis() -> redis.Redis:
    url = settings.CELERY_BROKER_URL
    with _redis_lock:
        if url not in _redis_clients:
            timeout = settings.VIBEBOX_METRICS_PROBE_TIMEOUT
            _redis_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return _redis_clients[url]


def celery_queues() -> list[str]:
    """The queues Celery's workers consume: the default one and every routed one."""
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values() if "queue" in route}
    return sorted({settings.CELERY_TASK_DEFAULT_QUEUE, *routed})


def _redis_probe() -> dict[str, int]:
    """Pings the broker and reads each queue's length in one round trip."""
    pipe = _redis().pipeline(transaction=False)
    pipe.ping()
    queues = celery_queues()
    for queue in queues:
        for suffix in _PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    answers = pipe.execute()[1:]
    steps = len(_PRIORITY_SUFFIXES)
    return {queue: sum(answers[i * steps : (i + 1) * steps]) for i, queue in enumerate(queues)}


_inflight: dict[str, Future] = {}
_inflight_lock = threading.Lock()


def _submit(what: str, probe) -> Future:
    """One probe of a kind at a time: while the last one still hangs (an engine stuck for its whole
    client timeout), a scrape waits on that one and reports it down rather than queue another, so a
    stuck engine cannot take every thread of the pool and make Redis read as down too."""
    with _inflight_lock:
        running = _inflight.get(what)
        if running is not None and not running.done():
            return running
        _inflight[what] = future = _probes.submit(probe)
        return future


def _answer(future, what: str, deadline: float):
    """The probe's answer, or None when it raised or is not done by `deadline` (monotonic)."""
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        logger.warning("metrics: the %s probe took longer than %ss", what, settings.VIBEBOX_METRICS_PROBE_TIMEOUT)
    except Exception as exc:
        logger.warning("metrics: the %s probe failed: %s", what, exc)
    return None


def _engine_probe() -> bool:
    engine_ping()
    return True


def _read(function, default):
    try:
        return function()
    except Exception:
        logger.exception("metrics: %s failed", function.__name__)
        return default


_cache_lock = threading.Lock()
_cached: list = [0.0, []]  # (when, the families) of the last computation in this process


class PlatformCollector(Collector):
    """The scrape-time metrics, for the /metrics view's registry (never the default one: a
    collector there would run in every process that imports it). Computed at most once per
    VIBEBOX_METRICS_SCRAPE_CACHE per process (several scrapers, or a fast one, share one reading)."""

    def collect(self):
        ttl = settings.VIBEBOX_METRICS_SCRAPE_CACHE
        if ttl <= 0:
            return list(self._compute())
        with _cache_lock:
            if not _cached[0] or time.monotonic() - _cached[0] >= ttl:
                _cached[:] = [time.monotonic(), list(self._compute())]
            return _cached[1]

    def _compute(self):
        deadline = time.monotonic() + settings.VIBEBOX_METRICS_PROBE_TIMEOUT
        engine = _submit("engine", _engine_probe)
        queues = _answer(_submit("redis", _redis_probe), "redis", deadline)

        yield GaugeMetricFamily(
            "vibebox_redis_up", "1 when Redis (broker, cache) answers.", value=int(queues is not None)
        )
        lengths = GaugeMetricFamily("vibebox_celery_queue_length", "Tasks waiting in a Celery queue.", labels=["queue"])
        for queue, length in sorted((queues or {}).items()):
            lengths.add_metric([queue], length)
        yield lengths

        build = GaugeMetricFamily("vibebox_build_info", "Always 1; the running version.", labels=["version"])
        build.add_metric([metrics.version()], 1)
        yield build

        sandboxes = GaugeMetricFamily(
            "vibebox_sandboxes",
            "Sandboxes by state and template (destroyed ones left out).",
            labels=["state", "template"],
        )
        for (state, template), count in sorted(_read(selectors.sandbox_counts, {}).items()):
            sandboxes.add_metric([state, template], count)
        yield sandboxes

        ready = GaugeMetricFamily("vibebox_pool_ready", "Ready containers in warm pools.", labels=["template"])
        for template, count in sorted(_read(selectors.pool_ready, {}).items()):
            ready.add_metric([template], count)
        yield ready

        yield from self._usage()

        up = _answer(engine, "engine", deadline)
        yield GaugeMetricFamily("vibebox_engine_up", "1 when the container engine answers.", value=int(bool(up)))

    def _usage(self):
        usage = _read(selectors.sandbox_usage, [])
        per_sandbox = metrics.per_sandbox(len(usage))
        memory = GaugeMetricFamily(
            "vibebox_sandbox_memory_bytes",
            "Resident memory of sandboxes, as last sampled by the meter.",
            labels=["sandbox", "template"],
        )
        disk = GaugeMetricFamily(
            "vibebox_sandbox_disk_bytes",
            "Workspace size of sandboxes, as last measured by the meter.",
            labels=["sandbox", "template"],
        )
        totals: dict[tuple[str, str], list[int]] = {}
        for sandbox, template, memory_bytes, disk_bytes in usage:
            key = (sandbox if per_sandbox else "", template)
            total = totals.setdefault(key, [0, 0])
            total[0] += memory_bytes
            total[1] += disk_bytes
        for key, (memory_bytes, disk_bytes) in sorted(totals.items()):
            memory.add_metric(list(key), memory_bytes)
            disk.add_metric(list(key), disk_bytes)
        yield memory
        yield disk
