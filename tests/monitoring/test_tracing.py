"""vibebox/tracing.py in-process: off without an endpoint (nothing wrapped, no SDK set up), the
engine's span names, the W3C ids it answers. The traces themselves: test_tracing_live.py."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from vibebox import tracing


def test_off_without_an_endpoint(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert not tracing.wanted() and not tracing.configure(django=True) and not tracing.enabled()

    def app(scope, receive, send):
        pass

    assert tracing.asgi(app) is app
    assert tracing.current_ids() == ("", "") and tracing.traceparent() == ""


def test_an_endpoint_asks_for_it_unless_the_sdk_is_disabled(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    assert tracing.wanted()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.wanted()


class FakeSpan:
    """Records what the request hook does to a span (a stand-in for the SDK's span, not our code)."""

    def __init__(self):
        self.name, self.attributes = "GET", {}

    def is_recording(self):
        return True

    def update_name(self, name):
        self.name = name

    def set_attribute(self, key, value):
        self.attributes[key] = value


class Request:
    def __init__(self, method, url):
        self.method, self.url = method, url


@pytest.mark.parametrize(
    ("method", "url", "name"),
    [
        ("POST", "http+docker://localhost/v1.41/containers/create?name=sbx_1", "docker POST /containers/create"),
        ("POST", "http+docker://localhost/v1.41/containers/sbx_1/start", "docker POST /containers/{id}/start"),
        ("GET", "http+docker://localhost/v1.41/containers/json?all=1", "docker GET /containers/json"),
        ("GET", "http+docker://localhost/version", "docker GET /version"),
        ("GET", "http+docker://localhost/v1.41/images/vibebox/base:trixie-1/json", "docker GET /images/{id}/json"),
        ("DELETE", "http+docker://localhost/v1.41/images/vibebox/x:1?force=1", "docker DELETE /images/{id}"),
        ("POST", "http+docker://localhost/v1.41/exec/abc/start", "docker POST /exec/{id}/start"),
        ("GET", "http+docker://localhost/v1.41/networks/vibebox-default", "docker GET /networks/{id}"),
    ],
)
def test_engine_calls_are_named_by_operation_never_by_id(method, url, name):
    span = FakeSpan()
    tracing._engine_span_name(span, Request(method, url))
    assert span.name == name and span.attributes["peer.service"] == "docker"


def test_other_requests_calls_keep_their_name():
    span = FakeSpan()
    tracing._engine_span_name(span, Request("GET", "https://api.stripe.com/v1/customers/cus_1"))
    assert span.name == "GET" and not span.attributes


def test_ids_and_traceparent_of_a_recording_span():
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("x") as span:
        trace_id, span_id = tracing.current_ids()
        context = span.get_span_context()
        assert trace_id == f"{context.trace_id:032x}" and span_id == f"{context.span_id:016x}"
        assert tracing.traceparent() == f"00-{trace_id}-{span_id}-{int(context.trace_flags):02x}"
        assert context.trace_flags.sampled
    assert trace.get_current_span().get_span_context().is_valid is False
