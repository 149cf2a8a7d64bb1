"""Structured logs from the live server and a real Celery worker (tests/monitoring/otel_stack.py,
VIBEBOX_LOG_FORMAT=json, tracing on): every line of their output is a JSON object; one access line
per request with its id, trace id, route, caller, sandbox, status and duration; lines written while a
request is handled carry its ids; a task's lines carry the trace that queued it; no API key, ever."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.monitoring.otel_stack import log_lines, new_traceparent, stack  # noqa: F401 (stack: a fixture)
from tests.waiting import wait_for

pytestmark = [pytest.mark.timeout(600)]
DEADLINE = 120.0


def parsed(path, *, banner: bool = False) -> list[dict]:
    """The file's lines as JSON objects (every one must be). With `banner`, the lines that do not
    start with "{" are left out: Celery's start-up banner, which it prints on standard output (not a
    log line; `celery worker --quiet` leaves it out)."""
    lines = log_lines(path)
    if banner:
        lines = [line for line in lines if line.startswith("{")]
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line: a JSON object
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    return entries


def test_every_line_is_json_with_the_request_s_ids_and_never_a_key(
    transactional_db,
    stack,  # noqa: F811
    owner,
    make_key,
    templates,
    cleanup_sandbox_ids,
):
    key, secret = make_key(owner)
    headers = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=120) as api:
        hook = api.post("/api/v1/webhooks", json={"url": stack.hooks.url, "events": ["sandbox.created"]})
        assert hook.status_code == 201, hook.text
        header, trace_id, _ = new_traceparent()
        created = api.post(
            "/api/v1/sandboxes",
            json={"template": "python-3"},
            headers={"traceparent": header, "X-Request-Id": "create-1"},
        )
        assert created.status_code == 201, created.text
        sandbox_id = created.json()["id"]
        cleanup_sandbox_ids.append(sandbox_id)
        missing = api.get("/api/v1/sandboxes/sbx_nope", headers={"X-Request-Id": "missing-1"})
        assert missing.status_code == 404
        # A key in the query string is never accepted, nor logged.
        api.get(f"/api/v1/sandboxes?api_key={secret}", headers={"X-Request-Id": "query-1"})

    def access(request_id):
        def find():
            entries = parsed(stack.server_log)
            return [e for e in entries if e["logger"] == "vibebox.access" and e.get("request_id") == request_id]

        return wait_for(find, timeout=DEADLINE, interval=0.2, what=f"the access line of {request_id}")

    [line] = access("create-1")
    assert line["trace_id"] == trace_id and len(line["span_id"]) == 16
    assert line["route"] == "api/v1/sandboxes" and line["status"] == 201 and line["method"] == "POST"
    assert line["key_id"] == key.pk and line["org"] == key.org_id and line["sandbox_id"] == sandbox_id
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0

    [line] = access("missing-1")
    assert line["route"] == "api/v1/sandboxes/<str:sandbox_id>" and line["sandbox_id"] == "sbx_nope"
    assert line["status"] == 404
    # Django's own warning about the 404, written while the request was handled, carries its ids.
    warning = next(
        e for e in parsed(stack.server_log) if e["logger"] == "django.request" and e.get("request_id") == "missing-1"
    )
    assert warning["level"] == "WARNING" and warning["trace_id"] == line["trace_id"]

    [line] = access("query-1")
    assert line["path"] == "/api/v1/sandboxes" and "api_key" not in json.dumps(line)

    # The worker's lines: JSON too, and the sender's run in the create's trace.
    def task_lines():
        return [e for e in parsed(stack.worker_log, banner=True) if e.get("trace_id") == trace_id]

    assert wait_for(task_lines, timeout=DEADLINE, interval=0.2, what="a worker line in the create's trace")

    for path in (stack.server_log, stack.worker_log):
        text = path.read_text()
        assert secret not in text and secret[8:] not in text
