"""The platform's Prometheus metrics (docs/monitoring.md, "Metrics"): the metric objects every app
records with, e.g. `metrics.SANDBOX_CREATE_SECONDS.labels(template="python-3.13", source="warm").observe(s)`.

Infrastructure like vibebox/exceptions.py: any app imports it, it imports no app. The gauges
read from the database or probed at scrape time (vibebox_sandboxes, vibebox_pool_ready,
vibebox_engine_up, vibebox_redis_up, vibebox_celery_queue_length, vibebox_build_info, the
per-sandbox memory and disk) are not here: apps/monitoring/collectors.py makes them for each scrape.

Every process (uvicorn's workers, Celery's workers and beat, the gateway) records into files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode; `make run` and the tests' live
servers set it, the Makefile clears it at start), and `GET /metrics` in any web process adds them
up. The variable must be in the environment before prometheus_client is imported: it is read once.
Without it (a shell, a test in process) the metrics live in this process's registry alone.
"""

import atexit
import functools
import os
import subprocess
import time
from pathlib import Path

from django.conf import settings

_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if _MULTIPROC_DIR:
    Path(_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

from prometheus_client import Counter, Gauge, Histogram, multiprocess  # noqa: E402  (after the directory exists)

# Buckets, in seconds: each includes 0.1 and 0.5 (the SLOs' thresholds, docs/monitoring.md) and
# spans what docs/benchmarks.md measured: API requests 2-150 ms, exec 3-30 ms (minutes for long
# commands), warm creates tens of ms and cold ones 0.5-1.5 s, 100 MiB transfers 0.2-1.4 s.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LIFECYCLE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
EXEC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
TRANSFER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

SANDBOX_CREATE_SECONDS = Histogram(
    "vibebox_sandbox_create_seconds",
    "Time to create a sandbox (API create to running), by template and source (warm: from a pool; cold).",
    ["template", "source"],
    buckets=LIFECYCLE_BUCKETS,
)
SANDBOX_START_SECONDS = Histogram(
    "vibebox_sandbox_start_seconds",
    "Time to start a stopped sandbox again.",
    ["template"],
    buckets=LIFECYCLE_BUCKETS,
)
POOL_HITS = Counter("vibebox_pool_hits_total", "Creates served by a warm pool's container.", ["template"])
POOL_MISSES = Counter(
    "vibebox_pool_misses_total", "Creates of a pooled template that found its pool empty.", ["template"]
)
EXEC_SECONDS = Histogram(
    "vibebox_exec_seconds",
    'Duration of commands (kind="exec"), code executions (kind="execute", by language) and streamed commands.',
    ["kind", "language"],
    buckets=EXEC_BUCKETS,
)
EXEC_TOTAL = Counter(
    "vibebox_exec",
    "Commands and code executions by kind and outcome (ok, error, timeout, killed).",
    ["kind", "outcome"],
)
FILE_TRANSFER_BYTES = Counter(
    "vibebox_file_transfer_bytes", "Bytes moved into (upload) and out of (download) sandboxes.", ["direction"]
)
FILE_TRANSFER_SECONDS = Histogram(
    "vibebox_file_transfer_seconds", "Duration of file uploads and downloads.", ["direction"], buckets=TRANSFER_BUCKETS
)
WEBSOCKET_CONNECTIONS = Gauge(
    "vibebox_websocket_connections",
    "Open WebSocket connections by route template.",
    ["route"],
    multiprocess_mode="livesum",  # a process that exits takes its connections with it
)
WEBSOCKET_MESSAGES = Counter(
    "vibebox_websocket_messages",
    "WebSocket messages by route template and direction (in, out).",
    ["route", "direction"],
)
HTTP_REQUESTS = Counter(
    "vibebox_http_requests",
    "HTTP requests answered by Django, by route template (never the raw path), method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "vibebox_http_request_seconds",
    "Time Django took to answer, by route template and method.",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
)
SANDBOX_CPU_SECONDS = Counter(
    "vibebox_sandbox_cpu_seconds",
    "CPU time sandboxes used, as the meter sampled it (sandbox label: VIBEBOX_METRICS_PER_SANDBOX).",
    ["sandbox", "template"],
)
GATEWAY_REQUESTS = Counter("vibebox_gateway_requests", "Model gateway requests by upstream status.", ["status"])
GATEWAY_TOKENS = Counter(
    "vibebox_gateway_tokens",
    "Model tokens through the gateway (input, output, cache_read, cache_write).",
    ["kind"],
)
WEBHOOK_DELIVERIES = Counter(
    "vibebox_webhook_deliveries", "Webhook delivery attempts by outcome (delivered, failed, retrying).", ["outcome"]
)

UNMATCHED = "unmatched"

if _MULTIPROC_DIR:
    # A process that exits (a uvicorn worker, the gateway) drops its live gauges itself; one that is
    # killed is found at the next scrape (apps/monitoring/exporter.py), Celery's pool processes at
    # worker_process_shutdown (vibebox/celery.py).
    atexit.register(lambda: mark_process_dead(os.getpid()))


def multiprocess_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR as this process started with it ("" when single-process)."""
    return _MULTIPROC_DIR


def route_of(request) -> str:
    """The URL pattern that served `request` (e.g. `api/v1/sandboxes/<str:sandbox_id>`), the same
    for every id; `unmatched` when none did (a 404 of an unknown path, a request refused before
    URL resolution). Never the raw path: label values stay bounded."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None) if match is not None else None
    return route or UNMATCHED


ROUTE_KEY = "vibebox.route"


def websocket_route(scope) -> str:
    """The route template of a WebSocket scope (`ws/sandboxes/<str:sandbox_id>/exec`), which
    label_routes put there; `unmatched` when none did."""
    return scope.get(ROUTE_KEY) or UNMATCHED


class _Routed:
    """An ASGI app that names its route in the scope, then runs `app`."""

    def __init__(self, app, route: str):
        self.app = app
        self.route = route

    async def __call__(self, scope, receive, send):
        return await self.app({**scope, ROUTE_KEY: self.route}, receive, send)


def label_routes(routes: list) -> list:
    """Channels' URLRouter routes (path(), re_path()), each app wrapped to put its pattern in the
    scope (websocket_route): Channels keeps only the matched arguments."""
    for route in routes:
        route.callback = _Routed(route.callback, str(route.pattern))
    return routes


def mark_process_dead(pid: int | None = None, directory: str = "") -> None:
    """Drops the live gauges (websocket connections) of a process that is exiting or gone, from
    `directory` (default this process's PROMETHEUS_MULTIPROC_DIR); its counters and histograms
    stay counted. A no-op outside multiprocess mode."""
    directory = directory or _MULTIPROC_DIR
    if directory:
        multiprocess.mark_process_dead(pid or os.getpid(), directory)


def per_sandbox(sandboxes: int) -> bool:
    """Whether per-sandbox series carry the `sandbox` label: VIBEBOX_METRICS_PER_SANDBOX (default
    on) while at most VIBEBOX_METRICS_PER_SANDBOX_MAX sandboxes are metered; above it the label is
    "" (one series per template), so a big fleet cannot blow up the series count."""
    return settings.VIBEBOX_METRICS_PER_SANDBOX and sandboxes <= settings.VIBEBOX_METRICS_PER_SANDBOX_MAX


@functools.cache
def version() -> str:
    """VIBEBOX_VERSION if set, else the API's version and the checkout's commit (`1.0.0+4a7082f`)."""
    if settings.VIBEBOX_VERSION:
        return settings.VIBEBOX_VERSION
    base = settings.SPECTACULAR_SETTINGS["VERSION"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+{commit}" if commit else base


METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class HttpMetricsMiddleware:
    """Counts and times every request Django answers (first in MIDDLEWARE, so the whole chain is
    timed), labelled with route_of(request), the method (`other` for unusual ones) and the status.
    A streamed answer is timed until its first byte is ready. /mcp and preview URLs do not pass
    through Django (vibebox/asgi.py) and are not counted here."""

    sync_capable = True
    async_capable = False  # sync-only like the rest of the chain (vibebox/middleware.py says why)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        route = route_of(request)
        method = request.method if request.method in METHODS else "other"
        HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        HTTP_REQUEST_SECONDS.labels(route, method).observe(elapsed)
        return response
