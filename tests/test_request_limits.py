"""Request bodies: a size limit enforced on the bytes as they arrive (vibebox/bodylimit.py), JSON
with a nesting limit (vibebox/api/parsers.py), and Django's own refusals mapped to 413, on every
endpoint (issue 17, items 7, 16 and 17)."""

import http.client
import json
import socket
import urllib.parse

import pytest
from django.test import Client

from apps.agents.models import AgentRun, AgentTask
from apps.keys.models import ApiKey
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import CodeContext, Sandbox
from apps.webhooks.models import Delivery, Webhook
from tests.conftest import sandbox_row
from vibebox import bodylimit
from vibebox.api.parsers import JSONParser

from .conftest import live_server
from .test_openapi import _generate

DEEP = "[" * 100_000 + "]" * 100_000
KEYS = "/api/v1/keys"


def code(response) -> str:
    return response.json()["error"]["code"]


# ---- JSON nesting and numbers (in-process: the DRF parser of every view) ----


@pytest.fixture(scope="module")
def json_operations(tmp_path_factory):
    """(method, path template) of every operation of the OpenAPI document that takes a JSON body."""
    doc = _generate(tmp_path_factory.mktemp("openapi") / "schema.json")
    return sorted(
        (method, path)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
        # Stripe's webhook reads raw bytes that only a valid Stripe signature lets through to a
        # parser (404 while payments are off, else 400 stripe_signature_invalid: tests/billing).
        and path != "/api/v1/billing/stripe/webhook"
        # The same for git hooks' receiving URL (the signature first, then the body: tests/sandboxes/test_git_hooks.py).
        and path != "/api/v1/git-hooks/{hook_id}"
    )


@pytest.fixture
def objects(owner, templates, api_key):
    """One object of each kind a path names, owned by `owner`: the views find them, then parse the body."""
    sandbox = sandbox_row(owner, templates["python-3"])
    run = AgentRun.objects.create(owner=owner, org=personal_org_ensure(user=owner), name="run")
    task = AgentTask.objects.create(run=run, index=0, name="task")
    org = personal_org_ensure(user=owner)
    member = org.memberships.get(user=owner)
    webhook = Webhook.objects.create(org=org, url="https://hooks.example/in", events=["*"], secret="x")
    delivery = Delivery.objects.create(webhook=webhook, event_id="evt_limits", event="webhook.test", payload={})
    context = CodeContext.objects.create(sandbox=sandbox, language="python", cwd="/workspace")
    return {
        **{"sandbox_id": sandbox.id, "run_id": run.id, "task_id": task.id, "key_id": api_key[0].id},
        # A body is read before a role or team is looked up; a template is looked up first (a real one).
        **{"slug": org.slug, "member_id": member.pk, "name": "python-3.13"},
        **{"webhook_id": webhook.id, "delivery_id": delivery.id},
        **{"submission_id": "sub_any", "version": "1.0.0"},  # the body is read before they are looked up
        **{"port": 3000},  # a preview port (PATCH …/ports/{port})
        **{"context_id": context.id},  # a code context (its row; no kernel needed to refuse the body)
    }


def test_deep_json_is_invalid_json_on_every_endpoint(api_client, json_operations, objects):
    assert len(json_operations) >= 25, json_operations  # the document lists them all
    for method, template in json_operations:
        path = template.format(**objects)
        response = getattr(api_client, method)(path, DEEP, content_type="application/json")
        assert response.status_code == 400, (method, path, response.content[:300])
        assert code(response) == "invalid_json", (method, path)
    assert Sandbox.objects.count() == 1 and AgentRun.objects.count() == 1 and ApiKey.objects.count() == 1


@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        '{"a":' * 65 + "1" + "}" * 65,  # parses, but deeper than 64 levels
        '{"name": "k", "expiresIn": NaN}',
        '{"name": "k", "expiresIn": Infinity}',
        '{"name": "k", "expiresIn": 1e400}',
        '{"name": "k"',
        b'{"name": "\xff"}',
    ],
)
def test_bodies_that_are_not_json_documents_are_invalid_json(api_client, body):
    response = api_client.post(KEYS, body, content_type="application/json")
    assert response.status_code == 400 and code(response) == "invalid_json", response.content
    assert response.json()["error"]["message"].startswith("The request body is not valid JSON")
    assert ApiKey.objects.count() == 1  # the caller's own


def test_a_nul_character_in_the_path_the_query_or_a_body_is_a_400(api_client, client):
    """PostgreSQL cannot compare a string holding NUL (a 500 there, found by the schema fuzzer on
    `?event=%C3%A6%00`): refused before any view reads it, on either database."""
    for path in (
        "/api/v1/sandboxes?name=a%00b",
        "/api/v1/sandboxes/sbx%00x",
        "/api/v1/webhooks/whk_x/deliveries?event=%C3%A6%00",
    ):
        response = api_client.get(path)
        assert response.status_code == 400 and code(response) == "nul_character", path
    assert client.get("/?next=%00").status_code == 400  # outside the API: a plain 400
    assert api_client.get("/api/v1/sandboxes?name=a%2500b").status_code == 200  # "%00" as text is fine
    # In a JSON body, in a string or a map's key (metadata: a JSON field, no CharField to refuse it).
    for body in ('{"name": "k\\u0000"}', '{"name": "k", "metadata": {"a\\u0000": "b"}}'):
        response = api_client.post(KEYS, body, content_type="application/json")
        assert response.status_code == 400 and code(response) == "nul_character", response.content
    assert ApiKey.objects.count() == 1  # the caller's own


def test_nesting_up_to_the_limit_is_fine(api_client):
    body = {"name": "nested", "scopes": ["sandboxes:read"]}
    response = api_client.post(KEYS, json.dumps(body), content_type="application/json")
    assert response.status_code == 201
    parser = JSONParser()
    deep_ok = '{"a":' * 63 + "1" + "}" * 63
    assert parser.parse(_Stream(deep_ok.encode()))["a"]["a"]


class _Stream:
    def __init__(self, data: bytes):
        self.data = data

    def read(self):
        return self.data


# ---- Django's own limits, mapped (in-process) ----


def test_a_body_above_djangos_limit_is_413_not_500(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = json.dumps({"name": "x" * 2000})
    response = api_client.post(KEYS, body, content_type="application/json")
    assert response.status_code == 413 and code(response) == "request_too_large", response.content
    assert response.json()["error"]["details"] == {"limit": 1000}
    assert ApiKey.objects.count() == 1


def test_too_many_query_fields_is_413_not_500(api_client):
    query = "&".join(f"f{n}=1" for n in range(1001))
    response = api_client.get(f"/api/v1/sandboxes?{query}")
    assert response.status_code == 413 and code(response) == "request_too_large", response.content
    assert response.json()["error"]["details"] == {"maxFields": 1000}


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def test_dashboard_form_with_too_many_fields_is_413(browser):
    response = browser.post("/keys/new", {f"f{n}": "1" for n in range(1001)})
    assert response.status_code == 413, response.content[:300]
    assert code(response) == "request_too_large"
    assert ApiKey.objects.count() == 0


def test_a_dashboard_body_above_djangos_limit_is_413(browser, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = browser.post("/keys/new", {"name": "x" * 2000})
    assert response.status_code == 413 and code(response) == "request_too_large"
    assert ApiKey.objects.count() == 0


def test_the_default_limits_fit_the_largest_legitimate_bodies(settings):
    """stdin and code are JSON strings: escaping can double them (quotes, backslashes, newlines)."""
    largest = max(settings.VIBEBOX_EXEC_STDIN_LIMIT, settings.VIBEBOX_CODE_LIMIT)
    assert 2 * largest + 1024**2 <= settings.VIBEBOX_REQUEST_MAX_BYTES
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == settings.VIBEBOX_REQUEST_MAX_BYTES


# ---- the ASGI limit, on the real server (uvicorn) ----

LIMIT = 1024**2
UPLOAD_LIMIT = 2 * 1024**2


@pytest.fixture
def small_limits_server(transactional_db, templates):
    env = {"VIBEBOX_REQUEST_MAX_BYTES": str(LIMIT), "VIBEBOX_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT)}
    with live_server(**env) as (url, _pid):
        yield url


def _raw(url: str, method: str, path: str, headers: dict, chunks=(), chunked=False, timeout=60):
    """Sends the request line, the headers and `chunks` (chunked encoding when `chunked`), never
    the end of a chunked body, then reads the answer: (status, headers, body)."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        head = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        if chunked:
            head.append("Transfer-Encoding: chunked")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for chunk in chunks:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def _auth(api_key) -> dict:
    return {"Authorization": f"Bearer {api_key[1]}", "Content-Type": "application/json"}


ROUTES = [
    ("POST", "/api/v1/sandboxes", LIMIT),
    ("POST", KEYS, LIMIT),
    ("PATCH", "/api/v1/sandboxes/sbx_nothing", LIMIT),
    ("POST", "/mcp", LIMIT),
    ("POST", "/keys/new", LIMIT),  # the dashboard
    ("POST", "/login/", LIMIT),
    ("POST", "/api/v1/nothing-here", LIMIT),
    ("POST", "/api/v1/sandboxes/sbx_nothing/files", UPLOAD_LIMIT),
    ("POST", "/graphql", LIMIT),  # JSON; multipart (uploads) below
]


def test_a_declared_oversize_body_is_413_before_a_byte_is_read(small_limits_server, api_key):
    """Content-Length above the limit, and no body sent: the answer comes without waiting for it
    (the old server waited for the 60 MB until the socket's deadline), on every route."""
    headers = {**_auth(api_key), "Content-Length": str(60_000_000)}
    for method, path, limit in ROUTES:
        status, response_headers, body = _raw(small_limits_server, method, path, headers)
        assert status == 413, (path, body[:300])
        error = json.loads(body)["error"]
        assert error["code"] == "request_too_large" and error["details"] == {"limit": limit}, path
        assert response_headers["connection"] == "close"


def test_a_multipart_graphql_request_has_the_upload_limit(small_limits_server, api_key):
    """GraphQL's uploads (the multipart request spec) may be as large as REST's, plus the form's room."""
    multipart = {**_auth(api_key), "Content-Type": "multipart/form-data; boundary=x"}
    status, _, body = _raw(small_limits_server, "POST", "/graphql", {**multipart, "Content-Length": "60000000"})
    assert status == 413
    assert json.loads(body)["error"]["details"] == {"limit": UPLOAD_LIMIT + bodylimit.SUBMISSION_ROOM}
    # a body past the JSON limit gets through to the view (a malformed form here: its 400, not a 413)
    over_json_limit = b"--x\r\n" + b" " * (LIMIT + 10)
    headers = {**multipart, "Content-Length": str(len(over_json_limit))}
    status, _, body = _raw(small_limits_server, "POST", "/graphql", headers, [over_json_limit])
    assert status == 400, body[:300]


def test_a_chunked_body_is_cut_off_at_the_limit(small_limits_server, api_key):
    """No Content-Length: the bytes are counted as they come, and the first past the limit ends
    the request; the rest of the body is never sent (nor read)."""
    for method, path, limit in ROUTES:
        status, _, body = _raw(small_limits_server, method, path, _auth(api_key), [b" " * (limit + 1)], chunked=True)
        assert status == 413, (path, body[:300])
        assert json.loads(body)["error"] == {
            "code": "request_too_large",
            "message": f"The request body is too large (at most {limit} bytes).",
            "details": {"limit": limit},
        }, path


def _padded_key_body(name: str, size: int) -> bytes:
    """A valid key-create body of exactly `size` bytes (JSON allows the padding whitespace)."""
    start = json.dumps({"name": name, "scopes": ["sandboxes:read"]})[:-1].encode()
    return start + b" " * (size - len(start) - 1) + b"}"


def test_the_app_never_sees_a_cut_off_body(small_limits_server, api_key):
    over = _padded_key_body("over", LIMIT + 1)
    status, _, _ = _raw(small_limits_server, "POST", KEYS, _auth(api_key), [over], chunked=True)
    assert status == 413
    at = _padded_key_body("at", LIMIT)
    headers = {**_auth(api_key), "Content-Length": str(len(at))}
    status, _, body = _raw(small_limits_server, "POST", KEYS, headers, [at])
    assert status == 201, body[:300]
    assert set(ApiKey.objects.values_list("name", flat=True)) == {"test key", "at"}


def test_deep_json_to_mcp_is_a_client_error(small_limits_server, api_key):
    headers = {**_auth(api_key), "Accept": "application/json, text/event-stream", "Content-Length": str(len(DEEP))}
    status, _, body = _raw(small_limits_server, "POST", "/mcp", headers, [DEEP.encode()])
    assert status == 400, body[:300]


@pytest.fixture
def default_server(transactional_db, templates):
    with live_server() as (url, _pid):
        yield url


def test_a_10_mib_stdin_fits_even_when_escaping_doubles_it(default_server, api_key, create_sandbox, settings):
    """The largest legitimate JSON body: stdin at its limit, every character escaped (\\" is two
    bytes). The old server refused anything over Django's 2.5 MB with a 500."""
    sandbox_id = create_sandbox()["id"]
    stdin = '"' * settings.VIBEBOX_EXEC_STDIN_LIMIT
    body = json.dumps({"command": "wc -c", "stdin": stdin}).encode()
    assert len(body) > 2 * settings.VIBEBOX_EXEC_STDIN_LIMIT
    headers = {**_auth(api_key), "Content-Length": str(len(body))}
    status, _, answer = _raw(default_server, "POST", f"/api/v1/sandboxes/{sandbox_id}/exec", headers, [body])
    assert status == 200, answer[:300]
    assert json.loads(answer)["stdout"].strip() == str(settings.VIBEBOX_EXEC_STDIN_LIMIT)
