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


# ---- issue 17, item 19: what schema fuzzing found ----


def test_huge_durations_are_400_not_500(api_client, api_key):
    """timedelta(seconds=1e308) raised OverflowError: every duration has a maximum (ten years at most)."""
    for body in ({"name": "k", "expiresIn": 1.369905646570352e308}, {"name": "k", "expiresIn": "9" * 400 + "d"}):
        response = api_client.post("/api/v1/keys", body, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_duration", body
    url = f"/api/v1/keys/{api_key[0].id}/rotate"
    for grace in (1.369905646570352e308, 10**400, 315_360_001, "3651d"):
        response = api_client.post(url, {"gracePeriod": grace}, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_duration", grace
    assert api_client.post(url, {"gracePeriod": "1h"}, format="json").status_code == 201


def test_durations_and_sizes_take_exactly_their_published_grammar(api_client):
    for value in ("", "5s\n", " 5 s ", "٣s", "1e3s", "5 sec"):
        body = {"name": "k", "expiresIn": value}
        expected = 201 if value == " 5 s " else 400
        assert api_client.post("/api/v1/keys", body, format="json").status_code == expected, repr(value)


def test_values_of_the_wrong_json_type_are_refused_not_coerced(api_client):
    """DRF turns 5 into "5" and "yes" into True; the document says string and boolean."""
    for body in (
        {"name": 5},
        {"name": "k", "test": "true"},
        {"name": "k", "test": 0},
        {"name": "k", "scopes": "sandboxes:read"},
        {"name": "k", "rateLimit": 100},
        {"name": "k", "rateLimit": "5/s\n"},
        {"name": "k", "rateLimit": "٣/s"},
    ):
        response = api_client.post("/api/v1/keys", body, format="json")
        assert response.status_code == 400, (body, response.content)
    runs = "/api/v1/agent-runs"
    response = api_client.post(runs, {"name": "r", "tasks": [{"name": "t", "metadata": {"k": 0}}]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["details"]["fields"]["tasks.0.metadata"]
    response = api_client.post(runs, {"name": "r", "parallelism": "3"}, format="json")
    assert response.status_code == 400
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3", "name": "a\n"}, format="json")
    assert response.status_code == 400 and "name" in response.json()["error"]["details"]["fields"]


def test_limit_and_offset_must_be_whole_numbers_in_range(api_client):
    for query in ("offset=null", "offset=null&offset=null", "offset=-1", "limit=0", "limit=501", "offset=²",
                  f"offset={2**63}", "limit=abc"):  # fmt: skip
        for path in ("/api/v1/sandboxes", "/api/v1/agent-runs"):
            response = api_client.get(f"{path}?{query}")
            assert response.status_code == 400, (path, query, response.content)
            assert response.json()["error"]["code"] == "validation_error"
    assert api_client.get("/api/v1/sandboxes?limit=500&offset=3").status_code == 200


def test_405_answers_allow_exactly_the_served_methods(api_client):
    """files/mkdir and files/move serve POST only; files/{path} GET and DELETE (the schema's view)."""
    base = "/api/v1/sandboxes/sbx_nothing/files"
    for path, allowed in (
        (f"{base}/mkdir", {"POST", "OPTIONS"}),
        (f"{base}/move", {"POST", "OPTIONS"}),
        (f"{base}/a/b.txt", {"GET", "DELETE", "HEAD", "OPTIONS"}),
        ("/api/v1/sandboxes", {"GET", "POST", "HEAD", "OPTIONS"}),
    ):
        response = api_client.put(path, {}, format="json")
        assert response.status_code == 405, path
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert {m.strip() for m in response["Allow"].split(",")} == allowed, (path, response["Allow"])


def test_a_patch_that_requires_a_field_says_so_in_the_document(db):
    schema = Client().get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    body = schema["paths"]["/api/v1/agent-runs/{run_id}"]["patch"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][ref]["required"] == ["status"] and body["required"] is True
