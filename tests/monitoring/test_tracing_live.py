"""Traces end to end (vibebox/tracing.py): the live server (the Procfile's uvicorn) and a real Celery
worker export over OTLP/HTTP to a receiver on loopback (tests/monitoring/otlp.py, decoded with
opentelemetry-proto). A create sent with the caller's traceparent is one trace: the request's server
span, the create in the request thread, the warm pool's claim, the engine's calls, the publish of
the webhook's sender, the worker's run of it and the delivery's POST, each under the right parent;
the webhook request carries that trace's traceparent too. An exec's sandboxd call is a span of its
request."""

from __future__ import annotations

import http.client
import urllib.parse

import httpx
import pytest
from django.conf import settings
from django.db import connection

from apps.sandboxes.models import WarmPool
from tests.monitoring.otel_stack import new_traceparent, stack  # noqa: F401 (stack: a fixture)
from tests.monitoring.otlp import ancestors
from tests.waiting import WaitTimeout, wait_for

pytestmark = [pytest.mark.timeout(600)]
DEADLINE = 120.0  # a span's way out of a busy server or worker, a delivery's through Redis and the worker


@pytest.fixture
def api(transactional_db, stack, owner, make_key, templates, cleanup_sandbox_ids):  # noqa: F811
    _key, secret = make_key(owner)
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {secret}"}, timeout=120) as client:
        yield client


def url_of(span) -> str:
    return span.attributes.get("url.full") or span.attributes.get("http.url") or ""


def named(spans, name):
    return [span for span in spans if span.name == name]


def one(spans, predicate, what):
    found = [span for span in spans if predicate(span)]
    assert found, f"no {what} among {sorted({s.name for s in spans})}"
    return found[0]


def test_a_create_is_one_trace_from_the_api_through_the_pool_and_the_engine_to_the_webhook_delivery(
    api,
    stack,  # noqa: F811
    templates,
    cleanup_sandbox_ids,
):
    hook = api.post("/api/v1/webhooks", json={"url": stack.hooks.url, "events": ["sandbox.created"]})
    assert hook.status_code == 201, hook.text
    # An empty warm pool of the template (the server has pools on): the create asks it first, misses,
    # and goes cold.
    template = templates["python-3"]
    WarmPool.objects.create(
        template=template,
        cpu=settings.VIBEBOX_DEFAULT_CPU,
        memory=settings.VIBEBOX_DEFAULT_MEMORY,
        min_size=0,
        target_size=0,
        max_size=0,
    )
    header, trace_id, caller_span = new_traceparent()

    created = api.post("/api/v1/sandboxes", json={"template": "python-3"}, headers={"traceparent": header})
    assert created.status_code == 201, created.text
    sandbox_id = created.json()["id"]
    cleanup_sandbox_ids.append(sandbox_id)
    # The answer names the request's server span, in the caller's trace.
    answered = created.headers["traceparent"].split("-")
    assert answered[1] == trace_id and answered[2] != caller_span

    def delivered():
        return [r for r in stack.hooks.received() if r["json"]["data"].get("id") == sandbox_id]

    delivery = wait_for(delivered, timeout=DEADLINE, interval=0.2, what="the sandbox.created delivery")[0]
    # The delivery's POST carried the create's trace (httpx's instrumentation, in the worker).
    assert delivery["headers"]["traceparent"].split("-")[1] == trace_id

    def complete():
        spans = stack.otlp.trace(trace_id)
        names = {span.name for span in spans}
        wanted = {"sandbox.create", "run/apps.webhooks.tasks.deliver_webhook"}
        # The server span ends after its answer went out: it may reach the receiver after the
        # worker's spans (CI), so it is waited for too.
        served = any(s.kind == "server" and s.parent_id == caller_span for s in spans)
        if wanted <= names and served and any(s.kind == "client" and url_of(s) == stack.hooks.url for s in spans):
            return spans
        return None

    try:
        spans = wait_for(complete, timeout=DEADLINE, interval=0.2, what="the create's spans at the OTLP receiver")
    except WaitTimeout:
        seen = sorted({(s.name, s.kind) for s in stack.otlp.trace(trace_id)})
        raise AssertionError(f"spans of the trace so far: {seen}") from None

    server = one(spans, lambda s: s.kind == "server" and s.parent_id == caller_span, "server span under the caller's")
    assert server.name == "POST /api/v1/sandboxes" and server.attributes.get("http.route") == "/api/v1/sandboxes"
    # The create ran in the request thread (vibebox/requestthreads.py), under the request's span.
    create = named(spans, "sandbox.create")[0]
    assert server in ancestors(create, spans)
    # The warm pool was asked (a miss) within the create, before the engine's calls.
    [claim] = named(spans, "pool.claim")
    assert create in ancestors(claim, spans)
    assert WarmPool.objects.get(template=template).misses == 1
    # The engine's calls (docker-py's HTTP over the socket), inside the create.
    engine = [s for s in spans if s.name.startswith("docker POST /containers/")]
    assert {s.name for s in engine} >= {"docker POST /containers/create", "docker POST /containers/{id}/start"}
    assert all(create in ancestors(s, spans) for s in engine)
    # SQL statements, from the request thread too, named by the database the server uses (the
    # tests' own: SQLite, or PostgreSQL under scripts/test-postgres.sh).
    system = {"sqlite": "sqlite", "postgresql": "postgresql"}[connection.vendor]
    assert any(s.attributes.get("db.system") == system and server in ancestors(s, spans) for s in spans)
    # The sender's task: published from the request, run by the worker as the publish's child,
    # the delivery's POST inside the run.
    publish = one(spans, lambda s: s.kind == "producer" and "deliver_webhook" in s.name, "publish of the sender")
    assert server in ancestors(publish, spans)
    run = one(spans, lambda s: s.kind == "consumer" and s.parent_id == publish.span_id, "the worker's run")
    post = one(spans, lambda s: s.kind == "client" and url_of(s) == stack.hooks.url, "delivery")
    assert run in ancestors(post, spans)
    assert {s.service for s in spans} == {"vibebox"}


def test_an_exec_s_sandboxd_call_is_a_span_of_its_request(api, stack, cleanup_sandbox_ids):  # noqa: F811
    created = api.post("/api/v1/sandboxes", json={"template": "python-3"})
    assert created.status_code == 201, created.text
    sandbox_id = created.json()["id"]
    cleanup_sandbox_ids.append(sandbox_id)
    header, trace_id, _ = new_traceparent()

    ran = api.post(f"/api/v1/sandboxes/{sandbox_id}/exec", json={"command": "echo hi"}, headers={"traceparent": header})
    assert ran.status_code == 200 and ran.json()["stdout"] == "hi\n", ran.text

    def with_sandboxd():
        spans = stack.otlp.trace(trace_id)
        # The server span ends after the answer went out, so it may leave in a later batch than the
        # sandboxd call's (a busy server): both are waited for.
        sandboxd = any(s.name.startswith("sandboxd ") for s in spans)
        return spans if sandboxd and any(s.kind == "server" for s in spans) else None

    try:
        spans = wait_for(with_sandboxd, timeout=DEADLINE, interval=0.2, what="the exec's sandboxd and server spans")
    except WaitTimeout:
        seen = sorted({(s.name, s.kind) for s in stack.otlp.trace(trace_id)})
        raise AssertionError(f"spans of the trace so far: {seen}") from None
    server = one(spans, lambda s: s.kind == "server", "server span")
    assert server.name == "POST /api/v1/sandboxes/<str:sandbox_id>/exec"
    call = one(spans, lambda s: s.name.startswith("sandboxd "), "sandboxd call")
    assert call.kind == "client" and call.attributes["vibebox.container"].startswith(sandbox_id)
    assert server in ancestors(call, spans)


def test_request_ids_are_echoed_when_sane_else_made_and_answered_on_every_response(stack):  # noqa: F811
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        sane = "client-1.A_b"
        assert client.get("/healthz", headers={"X-Request-Id": sane}).headers["x-request-id"] == sane
        longest = "a" * 128
        assert client.get("/healthz", headers={"X-Request-Id": longest}).headers["x-request-id"] == longest
        for bad in ("a" * 129, "has space", "semi;colon", "ünï"):
            answered = client.get("/healthz", headers={"X-Request-Id": bad.encode()}).headers["x-request-id"]
            assert answered != bad and answered.startswith("req_") and len(answered) == 20
        made = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
        assert len(made) == 3
        # Probes are not traced (vibebox/tracing.py, DEFAULT_EXCLUDED_URLS): no traceparent.
        assert "traceparent" not in client.get("/healthz").headers
        # Not only Django's answers: an anonymous API call (401), an unknown path (404), /mcp,
        # the body limit's 413, and a preview URL's refusal all carry one, and a traceparent.
        answers = [
            client.get("/api/v1/sandboxes"),
            client.get("/no/such/page"),
            client.post("/mcp", json={}),
            client.get("/preview/sbx_none/3000/"),
            too_large(stack.url),
        ]
        for answer in answers:
            assert answer.headers["x-request-id"].startswith("req_"), (answer.request.url, answer.headers)
            assert len(answer.headers.get_list("x-request-id")) == 1
            assert answer.headers["traceparent"].startswith("00-"), (answer.request.url, answer.headers)
        assert answers[-1].status_code == 413
        assert answers[-1].json()["requestId"] == answers[-1].headers["x-request-id"]


def too_large(url: str) -> httpx.Response:
    """A POST that declares a terabyte (the body limit answers 413 before reading a byte of it)."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(url).netloc, timeout=60)
    try:
        connection.putrequest("POST", "/api/v1/sandboxes")
        connection.putheader("Content-Length", str(10**12))
        connection.endheaders()
        answer = connection.getresponse()
        request = httpx.Request("POST", f"{url}/api/v1/sandboxes")
        return httpx.Response(answer.status, headers=answer.getheaders(), content=answer.read(), request=request)
    finally:
        connection.close()
