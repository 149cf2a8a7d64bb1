"""The webhooks endpoints: create, list, get, update, delete, rotate, test, deliveries; who may
(owner, outsider 404, scope and permission 403), bad input (unknown event, unsafe targets)."""

import pytest
from django.contrib.auth import get_user_model

from apps.audit.models import AuditEntry
from apps.keys.scopes import ALL_SCOPES
from apps.orgs import services as org_services
from apps.webhooks import delivery as sender
from apps.webhooks.models import Delivery, Webhook
from tests.conftest import _client
from tests.test_openapi import Checker, doc  # noqa: F401 (doc: a fixture)

pytestmark = pytest.mark.django_db


def test_create_list_get_update_delete(api_client, receiver):
    response = api_client.post(
        "/api/v1/webhooks",
        {"url": receiver.url, "events": ["sandbox.created", "execution.completed"], "description": "CI"},
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["id"].startswith("whk_") and created["secret"].startswith("whsec_")
    assert created["url"] == receiver.url and created["events"] == ["sandbox.created", "execution.completed"]
    assert created["active"] is True and created["filter"] == {} and created["createdBy"] == "owner"
    stored = Webhook.objects.get(pk=created["id"])
    assert created["secret"] not in stored.secret  # encrypted at rest

    listed = api_client.get("/api/v1/webhooks").json()
    assert [item["id"] for item in listed["results"]] == [created["id"]]
    assert "secret" not in listed["results"][0]
    got = api_client.get(f"/api/v1/webhooks/{created['id']}").json()
    assert "secret" not in got and got["description"] == "CI"

    patched = api_client.patch(
        f"/api/v1/webhooks/{created['id']}",
        {"events": ["*"], "active": False, "filter": {"metadata": {"ci": "42"}}},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json()["events"] == ["*"] and patched.json()["active"] is False
    assert patched.json()["filter"] == {"metadata": {"ci": "42"}}

    assert api_client.delete(f"/api/v1/webhooks/{created['id']}").status_code == 204
    assert api_client.get(f"/api/v1/webhooks/{created['id']}").status_code == 404
    actions = list(AuditEntry.objects.filter(target_id=created["id"]).values_list("action", flat=True))
    assert set(actions) >= {"webhook.created", "webhook.updated", "webhook.deleted"}


def test_outsider_gets_404_everywhere(api_client, outsider_client, hook):
    webhook = hook()
    delivery = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test").json()
    base = f"/api/v1/webhooks/{webhook['id']}"
    for method, path in [
        ("get", base),
        ("patch", base),
        ("delete", base),
        ("post", f"{base}/rotate-secret"),
        ("post", f"{base}/test"),
        ("get", f"{base}/deliveries"),
        ("get", f"{base}/deliveries/{delivery['id']}"),
        ("post", f"{base}/deliveries/{delivery['id']}/redeliver"),
    ]:
        response = getattr(outsider_client, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path, response.content)
        assert response.json()["error"]["code"] == "webhook_not_found"
    assert outsider_client.get("/api/v1/webhooks").json()["results"] == []
    assert Webhook.objects.filter(pk=webhook["id"], active=True).exists()
    assert Delivery.objects.count() == 1


def test_anonymous_is_401(db):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/webhooks").status_code == 401


def test_a_key_without_the_scope_is_403(owner, client_for, receiver):
    client = client_for(owner, scopes=["sandboxes:read", "sandboxes:write"])
    response = client.post("/api/v1/webhooks", {"url": receiver.url, "events": ["*"]}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert client.get("/api/v1/webhooks").status_code == 403
    assert not Webhook.objects.exists()


def test_a_member_without_the_permission_is_403(owner, make_key, receiver):
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    developer = get_user_model().objects.create_user(username="dev-user")
    org_services.member_add(org=org, user_ref="dev-user", role="developer")
    admin_client = _client(make_key(owner, ALL_SCOPES, org=org)[1])
    dev_client = _client(make_key(developer, ALL_SCOPES, org=org)[1])
    created = admin_client.post("/api/v1/webhooks", {"url": receiver.url, "events": ["*"]}, format="json").json()

    response = dev_client.post("/api/v1/webhooks", {"url": receiver.url, "events": ["*"]}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert response.json()["error"]["details"]["permission"] == "webhooks.manage"
    assert dev_client.get("/api/v1/webhooks").status_code == 403
    assert dev_client.get(f"/api/v1/webhooks/{created['id']}").status_code == 403  # in their org: 403, not 404
    assert dev_client.delete(f"/api/v1/webhooks/{created['id']}").status_code == 403
    assert Webhook.objects.filter(org=org).count() == 1


def test_unknown_event_is_400(api_client, receiver):
    response = api_client.post(
        "/api/v1/webhooks", {"url": receiver.url, "events": ["sandbox.created", "sandbox.exploded"]}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_event" and error["details"]["unknown"] == ["sandbox.exploded"]
    assert not Webhook.objects.exists()


def test_bad_bodies_are_400(api_client, receiver):
    for body in [
        {"url": receiver.url, "events": []},
        {"url": receiver.url},
        {"url": receiver.url, "events": ["*"], "extra": 1},
        {"url": receiver.url, "events": ["*"], "filter": {"owner": "x"}},
        {"url": "ftp://example.com/x", "events": ["*"]},
        {"url": "not a url", "events": ["*"]},
    ]:
        response = api_client.post("/api/v1/webhooks", body, format="json")
        assert response.status_code == 400, (body, response.content)
    assert not Webhook.objects.exists()


def test_the_url_pattern_matches_as_the_document_publishes_it(api_client, receiver):
    """The OpenAPI document's pattern is ECMAScript's: \\s there is not Python's (which also takes
    \\x1c-\\x1f); the schema fuzzer found a URL with \\x1c the document allows and the server refused."""
    allowed = api_client.post("/api/v1/webhooks", {"url": receiver.url + "/a\x1cb", "events": ["*"]}, format="json")
    assert allowed.status_code == 201, allowed.content
    for url in (receiver.url + "/a\ufeffb", receiver.url + "/a b", receiver.url + "\n"):
        refused = api_client.post("/api/v1/webhooks", {"url": url, "events": ["*"]}, format="json")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_error", url
    assert Webhook.objects.count() == 1


def test_http_and_private_targets_are_refused_without_the_settings(api_client, webhook_settings):
    webhook_settings.VIBEBOX_WEBHOOK_ALLOW_HTTP = False
    webhook_settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE = False
    response = api_client.post("/api/v1/webhooks", {"url": "http://example.com/hook", "events": ["*"]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_webhook_url"
    for url in [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
    ]:
        response = api_client.post("/api/v1/webhooks", {"url": url, "events": ["*"]}, format="json")
        assert response.status_code == 400, (url, response.content)
        assert response.json()["error"]["code"] == "webhook_target_refused", url
    assert not Webhook.objects.exists()


def test_rotate_secret_shows_the_new_one_once(api_client, hook):
    webhook = hook()
    response = api_client.post(f"/api/v1/webhooks/{webhook['id']}/rotate-secret")
    assert response.status_code == 200, response.content
    rotated = response.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != webhook["secret"]
    assert rotated["previousSecretExpiresAt"] is not None
    assert "secret" not in api_client.get(f"/api/v1/webhooks/{webhook['id']}").json()
    entry = AuditEntry.objects.get(action="webhook.secret_rotated")
    assert webhook["secret"] not in str(entry.changes) and rotated["secret"] not in str(entry.changes)


def test_answers_match_their_schemas(doc, api_client, receiver):  # noqa: F811 (the fixture)
    check = Checker(doc, api_client)
    created = check(
        "post", "/api/v1/webhooks", 201, {"url": receiver.url, "events": ["*"], "filter": {"template": "x"}}
    )
    receiver.secrets.append(created["secret"])
    check("get", "/api/v1/webhooks", 200)
    one = "/api/v1/webhooks/{webhook_id}"
    check("get", one, 200, webhook_id=created["id"])
    check("patch", one, 200, {"description": "d", "filter": {}}, webhook_id=created["id"])
    check("post", one + "/rotate-secret", 200, webhook_id=created["id"])
    queued = check("post", one + "/test", 202, webhook_id=created["id"])
    receiver.answers = [500]
    sender.deliver_webhook(created["id"])
    check("get", one + "/deliveries", 200, query="status=succeeded", webhook_id=created["id"])
    delivery = "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"
    detail = check("get", delivery, 200, webhook_id=created["id"], delivery_id=queued["id"])
    assert [attempt["statusCode"] for attempt in detail["attemptLog"]] == [500, 200]
    check("post", delivery + "/redeliver", 202, webhook_id=created["id"], delivery_id=queued["id"])
    check("post", "/api/v1/webhooks", 400, {"url": receiver.url, "events": ["nope"]})
    check("get", one, 404, webhook_id="whk_missing")
    check("get", one + "/deliveries", 400, query="status=done", webhook_id=created["id"])
    check("post", "/api/v1/webhooks", 400, {"url": "https://user:pw@example.com/", "events": ["*"]})
    check("delete", one, 204, webhook_id=created["id"])
