"""Every sandbox endpoint as owner, outsider (404), anonymous (401) and wrong scope (403).

A row without a container is enough here: access is decided before the engine is asked.
"""

import pytest
from rest_framework.test import APIClient

from tests.conftest import sandbox_row

ENDPOINTS = [
    ("get", "/api/v1/sandboxes/{id}", "sandboxes:read"),
    ("patch", "/api/v1/sandboxes/{id}", "sandboxes:write"),
    ("delete", "/api/v1/sandboxes/{id}", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/start", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/stop", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/restart", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/pause", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/resume", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/exec", "execute"),
    ("post", "/api/v1/sandboxes/{id}/execute", "execute"),
    ("get", "/api/v1/sandboxes/{id}/executions", "sandboxes:read"),
    ("get", "/api/v1/sandboxes/{id}/executions/exec_x", "sandboxes:read"),
    ("get", "/api/v1/sandboxes/{id}/env", "sandboxes:read"),
    ("put", "/api/v1/sandboxes/{id}/env", "sandboxes:write"),
    ("patch", "/api/v1/sandboxes/{id}/env", "sandboxes:write"),
    ("get", "/api/v1/sandboxes/{id}/env/NAME", "sandboxes:read"),
    ("delete", "/api/v1/sandboxes/{id}/env/NAME", "sandboxes:write"),
    ("get", "/api/v1/sandboxes/{id}/files", "sandboxes:read"),
    ("post", "/api/v1/sandboxes/{id}/files", "sandboxes:write"),
    ("get", "/api/v1/sandboxes/{id}/files/a.txt", "sandboxes:read"),
    ("delete", "/api/v1/sandboxes/{id}/files/a.txt", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/files/mkdir", "sandboxes:write"),
    ("post", "/api/v1/sandboxes/{id}/files/move", "sandboxes:write"),
    ("get", "/api/v1/sandboxes/{id}/files/watch", "sandboxes:read"),
    *[("post", f"/api/v1/sandboxes/{{id}}/git/{action}", "sandboxes:write") for action in ("clone", "pull", "push")],
    *[("post", f"/api/v1/sandboxes/{{id}}/git/{action}", "sandboxes:write") for action in ("commit", "checkout")],
    *[("get", f"/api/v1/sandboxes/{{id}}/git/{action}", "sandboxes:read") for action in ("status", "diff", "log")],
    ("get", "/api/v1/sandboxes/{id}/git/branches", "sandboxes:read"),
    ("get", "/api/v1/sandboxes/{id}/logs", "sandboxes:read"),
    ("get", "/api/v1/sandboxes/{id}/processes", "sandboxes:read"),
    ("post", "/api/v1/sandboxes/{id}/processes/exec_x/kill", "execute"),
]
COLLECTION = [
    ("get", "/api/v1/sandboxes", "sandboxes:read"),
    ("post", "/api/v1/sandboxes", "sandboxes:write"),
]


@pytest.fixture
def row(owner, templates):
    return sandbox_row(owner, templates["python-3"], status="stopped")


def _call(client, method, url):
    return getattr(client, method)(url, {}, format="json")


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
def test_outsider_gets_404_and_changes_nothing(outsider_client, row, method, path, scope):
    response = _call(outsider_client, method, path.format(id=row.id))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "sandbox_not_found"
    row.refresh_from_db()
    assert row.status == "stopped" and row.name == "row" and row.env == {}


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS + COLLECTION)
def test_anonymous_gets_401(row, method, path, scope):
    response = _call(APIClient(), method, path.format(id=row.id))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS + COLLECTION)
def test_wrong_scope_gets_403(client_for, owner, row, method, path, scope):
    others = [s for s in ("sandboxes:read", "sandboxes:write", "execute", "keys:manage") if s != scope]
    response = _call(client_for(owner, others), method, path.format(id=row.id))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert response.json()["error"]["details"]["missing"] == [scope]


def test_owner_reads_with_read_scope(client_for, owner, row):
    client = client_for(owner, ["sandboxes:read"])
    assert client.get(f"/api/v1/sandboxes/{row.id}").json()["name"] == "row"
    assert client.get("/api/v1/sandboxes").json()["count"] == 1


def test_outsider_list_is_empty(outsider_client, row):
    assert outsider_client.get("/api/v1/sandboxes").json()["count"] == 0
    assert outsider_client.get("/api/v1/sandboxes/row").status_code == 404
