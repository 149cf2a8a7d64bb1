"""OpenTelemetry traces (docs/monitoring.md, "Traces and logs").

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; then each
process that calls `configure` (the web server in vibebox/asgi.py, Celery workers and beat in
vibebox/celery.py, the model gateway in `manage.py rungateway`) exports its spans over OTLP/HTTP
(protobuf), batched. The standard `OTEL_*` variables are the SDK's own: service name
(`OTEL_SERVICE_NAME`, default "vibebox"), resource attributes, headers, sampler, batch sizes.

What is traced:
- every HTTP request (the ASGI instrumentation around the whole app, named by the Django route once
  it is known; Django's instrumentation inside it), with the W3C `traceparent` from the caller;
- Celery: publishing a task puts the context in its headers, the worker's run continues the trace
  (the webhook sender queued by a create's event belongs to the create's trace);
- outgoing calls: httpx (webhook deliveries, the gateway's upstream call), requests (the Docker
  engine's API, as docker-py talks it), redis-py, and every SQL statement Django runs (any backend:
  SQLite or PostgreSQL through psycopg);
- VibeBox's own spans (`span` below): sandbox creates, warm-pool claims, sandboxd calls.

Threads: Django's sync views run on request threads (vibebox/requestthreads.py) through asgiref,
which runs each call in a copy of the caller's contextvars, and OpenTelemetry's context is a
contextvar: the request's span is the parent there too.

A span with no parent that only calls out (a Celery worker's broker polling, a background Redis or
engine call) is not sampled unless `OTEL_TRACES_SAMPLER` says otherwise: traces start at a request, a
task or a beat tick.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult

logger = logging.getLogger(__name__)

_tracer = trace.get_tracer("vibebox")
_lock = threading.Lock()
_configured = False


def wanted() -> bool:
    """Whether the environment asks for traces (an OTLP endpoint is set, and the SDK is not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def enabled() -> bool:
    return _configured


@contextmanager
def span(name: str, *, client: bool = False, **attributes):
    """A span of VibeBox's own around a block (a no-op span when tracing is off), `vibebox.<name>`
    attributes (None values left out); `client`: a call out of the process (span kind CLIENT)."""
    kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
    with _tracer.start_as_current_span(name, kind=kind) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"vibebox.{key}", value)
        yield current


def traced(name: str):
    """Decorator: the function runs in a span named `name`."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with _tracer.start_as_current_span(name):
                return function(*args, **kwargs)

        return wrapper

    return decorate


def current_ids() -> tuple[str, str]:
    """The current span's trace id and span id in hex, or two empty strings."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def traceparent(current=None) -> str:
    """The W3C traceparent of `current` (default: the current span), or "" when it is not recording."""
    context = (current or trace.get_current_span()).get_span_context()
    if not context.is_valid:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def configure(*, django: bool = False) -> bool:
    """Sets up the tracer provider, the exporter and the instrumentations in this process when
    `wanted()`; once per process (a forked child inherits them: the SDK restarts its batch thread).
    With `django`, also Django's instrumentation (call before Django loads its middleware, i.e.
    before get_asgi_application). Answers whether tracing is on."""
    global _configured
    if not wanted():
        return False
    with _lock:
        if _configured:
            return True
        _setup_provider()
        _instrument_libraries()
        _trace_sql()
        if django:
            _instrument_django()
        _configured = True
    return True


class NoOrphanCalls(Sampler):
    """Roots: everything but client spans (an outgoing call made outside any request or task)."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None, trace_state=None):
        if kind == trace.SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "NoOrphanCalls"


def _setup_provider() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (read by Resource.create) win over the default name.
    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "vibebox"}))
    # No sampler given: the SDK reads OTEL_TRACES_SAMPLER.
    sampler = None if os.environ.get("OTEL_TRACES_SAMPLER", "").strip() else ParentBased(root=NoOrphanCalls())
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


_ENGINE_VERSION = re.compile(r"^/v[\d.]+(?=/)")
_ENGINE_OBJECT = re.compile(r"^/(containers|volumes|networks|exec|plugins)/(?!(?:create|json|prune)(?:/|$))[^/]+")
# Image names hold slashes (vibebox/base:trixie): the operations that follow one are known.
_ENGINE_IMAGE = re.compile(
    r"^/images/(?!(?:create|json|prune|search|load|get)(?:/|$)).+?(/json|/history|/push|/tag|/get)?$"
)


def _engine_span_name(span, request) -> None:
    """docker-py talks to the engine over requests (http+docker://): name the span after the call
    (`docker POST /containers/{id}/start`), names and ids left out (they are in the span's URL)."""
    url = getattr(request, "url", "") or ""
    if not span.is_recording() or not url.startswith("http+docker://"):
        return
    path = "/" + url.split("://", 1)[1].partition("/")[2].partition("?")[0]
    path = _ENGINE_VERSION.sub("", path)
    path = _ENGINE_IMAGE.sub(r"/images/{id}\1", _ENGINE_OBJECT.sub(r"/\1/{id}", path))
    span.update_name(f"docker {request.method} {path}")
    span.set_attribute("peer.service", "docker")


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    CeleryInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    RedisInstrumentor().instrument()
    RequestsInstrumentor().instrument(request_hook=_engine_span_name)


# Probes and scrapes are not traced (a trace every few seconds per prober says nothing); the
# standard OTEL_PYTHON_EXCLUDED_URLS (comma-separated regular expressions) replaces this list.
DEFAULT_EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"


def excluded_urls() -> str:
    return os.environ.get("OTEL_PYTHON_EXCLUDED_URLS", "").strip() or DEFAULT_EXCLUDED_URLS


def _instrument_django() -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().instrument(excluded_urls=excluded_urls())


def _trace_sql() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_trace_queries, dispatch_uid="vibebox.tracing.queries")


def _trace_queries(sender, connection, **kwargs) -> None:
    if _sql_span not in connection.execute_wrappers:
        connection.execute_wrappers.append(_sql_span)


def _sql_span(execute, sql, params, many, context):
    """Django's execute wrapper: one client span per statement, named by its first word."""
    connection = context["connection"]
    operation = (sql.split(None, 1)[0] if sql else "SQL").upper()
    system = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql"}.get(connection.vendor, "other_sql")
    with _tracer.start_as_current_span(f"{operation} {system}", kind=trace.SpanKind.CLIENT) as current:
        if current.is_recording():
            current.set_attribute("db.system", system)
            current.set_attribute("db.statement", sql[:2000])  # placeholders only: values stay in params
            current.set_attribute("db.operation", operation)
        return execute(sql, params, many, context)


def asgi(app):
    """The ASGI app wrapped in the ASGI instrumentation when tracing is on (its send/receive spans
    left out), else the app itself."""
    if not _configured:
        return app
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        app, excluded_urls=excluded_urls(), default_span_details=_span_details, exclude_spans=["receive", "send"]
    )


def _span_details(scope) -> tuple[str, dict]:
    """A request's span starts named by its method only, never its raw path (ids in paths would make
    every name unique); vibebox.logs renames it after the Django route once one matched. /mcp's is
    `POST /mcp`."""
    if scope["type"] == "websocket":
        return "WebSocket", {}
    method = scope.get("method", "HTTP")
    return (f"{method} /mcp", {}) if scope.get("path", "").rstrip("/") == "/mcp" else (method, {})
