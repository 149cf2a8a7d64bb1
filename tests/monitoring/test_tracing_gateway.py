"""The model gateway's traces: the real gateway process (`manage.py rungateway`, as
tests/agents/test_gateway_failures.py runs it, in front of the recording Anthropic stub) exporting to
an OTLP/HTTP receiver on loopback. A sandbox's model call sent with a traceparent is a server span in
that trace, the upstream call (httpx) its descendant, and the upstream got the trace's traceparent."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.agents.test_gateway_failures import (  # noqa: F401 (local_stub, make_token: fixtures)
    MESSAGE,
    OPERATOR_KEY,
    gateway,
    local_stub,
    make_token,
)
from tests.monitoring.otel_stack import new_traceparent
from tests.monitoring.otlp import OtlpReceiver, ancestors
from tests.waiting import wait_for


@pytest.fixture
def otlp():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(300)
def test_the_gateway_s_upstream_call_is_a_span_of_the_model_request(local_stub, make_token, otlp, monkeypatch):  # noqa: F811
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.endpoint)  # the gateway's environment
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    _, token = make_token("running")
    header, trace_id, caller = new_traceparent()
    with gateway(upstream=local_stub.url, operator_key=OPERATOR_KEY) as base:
        request = urllib.request.Request(
            base + "/v1/messages",
            data=json.dumps(MESSAGE).encode(),
            method="POST",
            headers={
                "content-type": "application/json",
                "anthropic-version": "2023-06-01",
                "x-api-key": token,
                "traceparent": header,
            },
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
            assert answer.headers["x-request-id"].startswith("req_")
            assert answer.headers["traceparent"].split("-")[1] == trace_id

        def upstream_span():
            spans = otlp.trace(trace_id)
            calls = [s for s in spans if s.kind == "client" and local_stub.url in (s.attributes.get("http.url") or "")]
            return (spans, calls[0]) if calls else None

        spans, call = wait_for(upstream_span, timeout=120, interval=0.2, what="the gateway's upstream span")
    server = next(s for s in spans if s.kind == "server")
    assert server.parent_id == caller and server in ancestors(call, spans)
    [upstream] = [r for r in local_stub.requests if r["path"].startswith("/v1/messages")]
    headers = {name.lower(): value for name, value in upstream["headers"].items()}
    assert headers["traceparent"].split("-")[1] == trace_id
    # The operator's key went upstream; it is in no span.
    assert OPERATOR_KEY not in json.dumps([s.attributes for s in spans], default=str)
