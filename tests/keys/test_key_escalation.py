"""Rotating or revoking a key obeys the rule creating one does: never broader than the calling key.

Regression tests for issue 17 item 2: `POST /keys/{id}/rotate` made no comparison, so a
keys:manage-only (or test, or expiring, or slower) key could rotate the user's all-scopes live
key and receive its secret.
"""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.keys import services
from apps.keys.models import ApiKey
from apps.keys.scopes import ALL_SCOPES, KEYS_MANAGE, SANDBOXES_READ
from tests.conftest import _client
from vibebox import exceptions as errors

# (caller's properties, what the target has more of)
NARROWER_CALLERS = {
    "keys-manage-only": ({"scopes": [KEYS_MANAGE]}, "scopes"),
    "test-key": ({"test": True}, "test"),
    "expiring": ({"expires_at": "1h"}, "expiresAt"),
    "low-rate-limit": ({"rate_limit": "30/min"}, "rateLimit"),
}


def _caller(make_key, owner, props: dict):
    props = dict(props)
    if props.get("expires_at") == "1h":
        props["expires_at"] = timezone.now() + dt.timedelta(hours=1)
    key, secret = make_key(owner, props.pop("scopes", ALL_SCOPES), name="caller", **props)
    return key, _client(secret)


def _snapshot(key: ApiKey):
    key.refresh_from_db()
    return (key.revoked_at, key.expires_at, key.is_active())


@pytest.mark.parametrize("caller", list(NARROWER_CALLERS))
def test_a_narrower_key_cannot_rotate_a_broader_one(make_key, owner, caller):
    props, broader = NARROWER_CALLERS[caller]
    _, client = _caller(make_key, owner, props)
    target, _ = make_key(owner, ALL_SCOPES, name="all-powerful")
    before, count = _snapshot(target), ApiKey.objects.count()

    response = client.post(f"/api/v1/keys/{target.id}/rotate", {}, format="json")

    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "scope_escalation"
    assert broader in error["details"]["broader"]
    assert "key" not in response.json()
    assert _snapshot(target) == before and before[2]  # still active, expiry untouched
    assert ApiKey.objects.count() == count  # no new key row


@pytest.mark.parametrize("caller", list(NARROWER_CALLERS))
def test_a_narrower_key_cannot_revoke_a_broader_one(make_key, owner, caller):
    props, broader = NARROWER_CALLERS[caller]
    _, client = _caller(make_key, owner, props)
    target, target_secret = make_key(owner, ALL_SCOPES, name="all-powerful")
    before, count = _snapshot(target), ApiKey.objects.count()

    response = client.delete(f"/api/v1/keys/{target.id}")

    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "scope_escalation"
    assert broader in response.json()["error"]["details"]["broader"]
    assert _snapshot(target) == before and before[2]
    assert ApiKey.objects.count() == count
    assert _client(target_secret).get("/api/v1/sandboxes").status_code == 200


def test_the_details_name_every_way_the_target_is_broader(make_key, owner):
    _, client = _caller(make_key, owner, {"scopes": [KEYS_MANAGE], "test": True, "rate_limit": "30/min"})
    target, _ = make_key(owner, ALL_SCOPES, name="all-powerful")
    details = client.post(f"/api/v1/keys/{target.id}/rotate", {}, format="json").json()["error"]["details"]
    assert set(details["broader"]) == {"scopes", "test", "rateLimit"}
    assert details["scopes"] == [scope for scope in ALL_SCOPES if scope != KEYS_MANAGE]


@pytest.mark.parametrize("caller", list(NARROWER_CALLERS))
def test_a_key_may_always_rotate_itself(make_key, owner, caller):
    props, _ = NARROWER_CALLERS[caller]
    key, client = _caller(make_key, owner, props)
    response = client.post(f"/api/v1/keys/{key.id}/rotate", {"gracePeriod": "1h"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["rotatedFrom"] == key.id and body["scopes"] == list(key.scopes)
    assert body["test"] == key.is_test and body["rateLimit"] == key.rate_limit
    new = ApiKey.objects.get(pk=body["id"])
    assert new.expires_at == key.expires_at
    assert _client(body["key"]).get("/api/v1/keys").status_code == 200


@pytest.mark.parametrize("caller", list(NARROWER_CALLERS))
def test_a_key_may_always_revoke_itself(make_key, owner, caller):
    props, _ = NARROWER_CALLERS[caller]
    key, client = _caller(make_key, owner, props)
    assert client.delete(f"/api/v1/keys/{key.id}").status_code == 204
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert client.get("/api/v1/keys").status_code == 401


def test_a_key_may_rotate_and_revoke_keys_no_broader_than_itself(make_key, owner):
    _, client = _caller(make_key, owner, {"scopes": [KEYS_MANAGE, SANDBOXES_READ], "rate_limit": "100/min"})
    soon = timezone.now() + dt.timedelta(hours=1)
    narrower, _ = make_key(owner, [SANDBOXES_READ], name="reader", rate_limit="10/min", expires_at=soon, test=True)
    response = client.post(f"/api/v1/keys/{narrower.id}/rotate", {}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["key"].startswith("vb_test_")
    assert client.delete(f"/api/v1/keys/{narrower.id}").status_code == 204


def test_a_signed_in_user_is_not_limited(owner):
    """Sessions (the dashboard) act with every scope: no calling key to compare with."""
    target, _ = services.api_key_create(user=owner, name="all-powerful", scopes=ALL_SCOPES)
    client = APIClient()
    client.force_login(owner)
    response = client.post(f"/api/v1/keys/{target.id}/rotate", {}, format="json")
    assert response.status_code == 201, response.content
    assert client.delete(f"/api/v1/keys/{target.id}").status_code == 204


def test_the_service_refuses_without_the_view(make_key, owner):
    caller, _ = make_key(owner, [KEYS_MANAGE], name="caller")
    target, _ = make_key(owner, ALL_SCOPES, name="all-powerful")
    with pytest.raises(errors.ScopeEscalation):
        services.api_key_rotate(key=target, creator=caller)
    with pytest.raises(errors.ScopeEscalation):
        services.api_key_revoke(key=target, creator=caller)
    target.refresh_from_db()
    assert target.is_active()
