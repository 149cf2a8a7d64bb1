import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.keys.models import ApiKey
from apps.keys.secrets import generate_key, well_formed
from tests.conftest import _client
from tests.waiting import wait_for


def test_key_format_and_checksum():
    key = generate_key()
    assert key.startswith("vb_live_") and well_formed(key)
    assert generate_key(test=True).startswith("vb_test_")
    assert len(key) == 8 + 33 + 6
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert not well_formed(tampered)
    assert key != generate_key()


def test_create_shows_the_key_once_and_stores_only_a_hash(api_client):
    response = api_client.post("/api/v1/keys", {"name": "CI", "scopes": ["sandboxes:read"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["key"]
    assert secret.startswith("vb_live_") and body["prefix"] == secret[:12]
    stored = ApiKey.objects.get(pk=body["id"])
    assert secret not in str(stored.__dict__)
    assert "key" not in api_client.get(f"/api/v1/keys/{body['id']}").json()
    assert all("key" not in item for item in api_client.get("/api/v1/keys").json())
    # the new key works, with its own scopes
    new_client = _client(secret)
    assert new_client.get("/api/v1/sandboxes").status_code == 200
    assert new_client.post("/api/v1/sandboxes", {"template": "x"}, format="json").status_code == 403


def test_a_key_cannot_create_a_broader_key(client_for, owner):
    client = client_for(owner, ["keys:manage", "sandboxes:read"])
    response = client.post("/api/v1/keys", {"name": "wider", "scopes": ["sandboxes:write"]}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "scope_escalation"
    # by default the new key inherits the creator's scopes
    response = client.post("/api/v1/keys", {"name": "same"}, format="json")
    assert response.json()["scopes"] == ["sandboxes:read", "keys:manage"]
    test_client = client_for(owner, ["keys:manage"], test=True)
    response = test_client.post("/api/v1/keys", {"name": "live", "scopes": ["keys:manage"]}, format="json")
    assert response.status_code == 403
    limited = client_for(owner, ["keys:manage"], rate_limit="10/min")
    response = limited.post("/api/v1/keys", {"name": "fast", "rateLimit": "100/min"}, format="json")
    assert response.status_code == 403


def test_bad_key_input(api_client):
    response = api_client.post("/api/v1/keys", {"name": "x", "scopes": ["root"]}, format="json")
    assert response.status_code == 400
    response = api_client.post("/api/v1/keys", {"name": "x", "rateLimit": "fast"}, format="json")
    assert response.status_code == 400
    response = api_client.post("/api/v1/keys", {"name": "x", "expiresIn": "never"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_duration"
    response = api_client.post("/api/v1/keys", {"name": "x", "extra": 1}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_field"
    assert ApiKey.objects.count() == 1  # only the fixture's key


def test_revoked_and_expired_keys_are_rejected(api_client, owner, make_key):
    key, secret = make_key(owner, name="doomed")
    client = _client(secret)
    assert client.get("/api/v1/sandboxes").status_code == 200
    assert api_client.delete(f"/api/v1/keys/{key.id}").status_code == 204
    response = client.get("/api/v1/sandboxes")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    # 10 s ahead: time enough for the first request on a busy machine; then it stops working
    response = api_client.post("/api/v1/keys", {"name": "short", "expiresIn": 10}, format="json")
    short = _client(response.json()["key"])
    assert short.get("/api/v1/sandboxes").status_code == 200
    wait_for(lambda: short.get("/api/v1/sandboxes").status_code == 401, timeout=70, interval=0.5, what="expiry")


def test_rotation_keeps_the_old_key_for_the_grace_period(api_client, owner, make_key):
    key, old_secret = make_key(owner, name="rotating", scopes=["sandboxes:read"])
    response = api_client.post(f"/api/v1/keys/{key.id}/rotate", {"gracePeriod": "10s"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "rotating" and body["scopes"] == ["sandboxes:read"]
    assert body["rotatedFrom"] == key.id and body["key"] != old_secret
    assert _client(old_secret).get("/api/v1/sandboxes").status_code == 200
    assert _client(body["key"]).get("/api/v1/sandboxes").status_code == 200
    old = _client(old_secret)
    wait_for(lambda: old.get("/api/v1/sandboxes").status_code == 401, timeout=70, interval=0.5, what="the grace to end")
    assert _client(body["key"]).get("/api/v1/sandboxes").status_code == 200


def test_default_rotation_grace_is_a_day(api_client, owner, make_key):
    key, _ = make_key(owner, name="daily")
    api_client.post(f"/api/v1/keys/{key.id}/rotate", {}, format="json")
    key.refresh_from_db()
    remaining = (key.expires_at - key.created_at).total_seconds()
    assert 86000 < remaining < 86500


def test_usage_counts_requests(owner, make_key, api_client):
    key, secret = make_key(owner, name="counted")
    client = _client(secret)
    for _ in range(3):
        client.get("/api/v1/sandboxes")
    body = api_client.get(f"/api/v1/keys/{key.id}/usage").json()
    assert body["keyId"] == key.id and body["totalRequests"] == 3
    assert body["days"][-1]["requests"] == 3 and body["lastUsedAt"]


def test_x_api_key_header_works_and_query_string_does_not(api_key):
    client = APIClient()
    assert client.get("/api/v1/sandboxes", HTTP_X_API_KEY=api_key[1]).status_code == 200
    assert client.get(f"/api/v1/sandboxes?api_key={api_key[1]}").status_code == 401
    assert client.get("/api/v1/sandboxes", HTTP_AUTHORIZATION="Bearer vb_live_nonsense").status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/keys/{id}"),
        ("delete", "/api/v1/keys/{id}"),
        ("post", "/api/v1/keys/{id}/rotate"),
        ("get", "/api/v1/keys/{id}/usage"),
    ],
)
def test_key_endpoints_access(outsider_client, client_for, owner, api_key, method, path):
    url = path.format(id=api_key[0].id)
    response = getattr(outsider_client, method)(url, {}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "key_not_found"
    assert getattr(APIClient(), method)(url, {}, format="json").status_code == 401
    response = getattr(client_for(owner, ["sandboxes:read", "sandboxes:write"]), method)(url, {}, format="json")
    assert response.status_code == 403
    api_key[0].refresh_from_db()
    assert api_key[0].is_active()


def test_rate_limit_answers_429_with_retry_after(client_for, owner):
    client = client_for(owner, ["sandboxes:read"], rate_limit="3/min")
    codes = [client.get("/api/v1/sandboxes").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/sandboxes")
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    # another key of the same owner has its own budget
    assert client_for(owner, ["sandboxes:read"]).get("/api/v1/sandboxes").status_code == 200


def test_createapikey_command(capsys, db):
    call_command("createapikey", "--user", "robot", "--name", "ops", "--scopes", "all", "--test")
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("vb_test_") and "\n" not in secret
    key = ApiKey.objects.get(name="ops")
    assert key.user.username == "robot" and "keys:manage" in key.scopes
    assert _client(secret).get("/api/v1/keys").status_code == 200
