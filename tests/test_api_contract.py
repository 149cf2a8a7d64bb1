"""The envelope, the schema and the health endpoints."""

from django.test import Client

from vibebox.exceptions import ERROR_CODES
from vibebox.units import format_size, parse_duration, parse_size


def test_unknown_api_path_uses_the_envelope(api_client):
    response = api_client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "not_found" and body["requestId"]


def test_method_not_allowed_uses_the_envelope(api_client):
    response = api_client.put("/api/v1/sandboxes", {}, format="json")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


def test_request_id_is_echoed(api_client):
    response = api_client.get("/api/v1/sandboxes", HTTP_X_REQUEST_ID="trace-123")
    assert response["X-Request-Id"] == "trace-123"


def test_openapi_schema_lists_every_endpoint(db):
    response = Client().get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/sandboxes",
        "/api/v1/sandboxes/{sandbox_id}",
        "/api/v1/sandboxes/{sandbox_id}/start",
        "/api/v1/sandboxes/{sandbox_id}/stop",
        "/api/v1/sandboxes/{sandbox_id}/restart",
        "/api/v1/keys",
        "/api/v1/keys/{key_id}/rotate",
        "/api/v1/keys/{key_id}/usage",
        "/api/v1/templates",
        "/api/v1/templates/{name}",
    ]:
        assert path in paths, path
    docs = Client().get("/api/docs")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_error_codes_have_http_statuses():
    assert ERROR_CODES["sandbox_not_found"] == 404
    assert ERROR_CODES["runtime_unavailable"] == 503
    assert all(400 <= status < 600 for status in ERROR_CODES.values())


def test_healthz_and_readyz(db):
    assert Client().get("/healthz").json() == {"status": "ok"}
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"database": {"ok": True}, "redis": {"ok": True}, "docker": {"ok": True}}


def test_readyz_reports_a_missing_dependency(db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False


def test_units():
    assert parse_duration("30s") == 30 and parse_duration("15m") == 900
    assert parse_duration("2h") == 7200 and parse_duration("1d") == 86400 and parse_duration(5) == 5
    assert parse_size("512m") == 512 * 1024**2 and parse_size("1g") == 1024**3 and parse_size("1GiB") == 1024**3
    assert format_size(1024**3) == "1g" and format_size(1536) == "1536"
    for bad in ("soon", "-1s", "", True):
        try:
            parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
