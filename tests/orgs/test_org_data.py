"""Retention and deletion (docs/compliance.md): an organization's data export and its erasure on
request, end to end through the API against the real engine."""

import json

import docker
import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.audit import services as audit
from apps.audit.models import AuditEntry
from apps.keys.models import ApiKey
from apps.orgs import services
from apps.orgs.models import Membership, Organization
from apps.sandboxes.models import Execution, Sandbox, Snapshot
from tests.conftest import _client, streamed_body

pytestmark = pytest.mark.django_db


def _session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def acme(owner):
    org = services.org_create(user=owner, name="Acme", slug="acme")
    admin = get_user_model().objects.create_user(username="acme-admin", email="admin@acme.test")
    services.member_add(org=org, user_ref=admin.username, role="admin")
    return org, admin


def _lines(response) -> list[dict]:
    return [json.loads(line) for line in streamed_body(response).decode().splitlines()]


def test_an_owner_exports_every_row_of_the_org_and_no_secret(owner, acme, make_key, create_sandbox):
    org, admin = acme
    key, secret = make_key(owner, org=org, name="ci")
    client = _client(secret)
    sandbox = create_sandbox(client=client, name="exported", metadata={"deploy_token": "tok-s3cret-xyz", "team": "a"})
    ran = client.post(f"/api/v1/sandboxes/{sandbox['id']}/exec", {"command": "echo hi"}, format="json")
    assert ran.status_code == 200, ran.content
    env = client.put(
        f"/api/v1/sandboxes/{sandbox['id']}/env", {"DB_PASSWORD": {"value": "hunter2-s3cret"}}, format="json"
    )
    elsewhere = create_sandbox(name="personal")  # the owner's personal org: not in acme's export

    response = client.get("/api/v1/orgs/acme/export")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert 'filename="export-acme.jsonl"' in response["Content-Disposition"]
    body = streamed_body(response).decode()
    lines = [json.loads(line) for line in body.splitlines()]
    assert lines[0]["export"]["org"] == org.pk and lines[0]["export"]["slug"] == "acme"
    by_model: dict[str, list[dict]] = {}
    for line in lines[1:]:
        by_model.setdefault(line["model"], []).append(line)
    assert [row["pk"] for row in by_model["orgs.organization"]] == [org.pk]
    assert {row["fields"]["username"] for row in by_model["auth.user"]} == {"owner", "acme-admin"}
    assert {row["fields"]["email"] for row in by_model["auth.user"]} >= {"admin@acme.test"}
    assert len(by_model["orgs.membership"]) == 2
    assert [row["pk"] for row in by_model["sandboxes.sandbox"]] == [sandbox["id"]]
    executions = by_model["sandboxes.execution"]  # one hop away: rows of the org's sandboxes
    assert [row["pk"] for row in executions] == list(
        Execution.objects.filter(sandbox_id=sandbox["id"]).values_list("pk", flat=True)
    )
    assert executions and all(row["fields"]["sandbox"] == sandbox["id"] for row in executions)
    keys = {row["pk"]: row["fields"] for row in by_model["keys.apikey"]}
    assert keys[key.pk]["name"] == "ci" and keys[key.pk]["key_hash"] == "[redacted]"
    assert env.status_code == 200, env.content  # the encrypted environment is never exported, not even as ciphertext
    assert by_model["sandboxes.sandbox"][0]["fields"]["env"] == "[redacted]"
    assert "hunter2-s3cret" not in body
    # A secret inside a JSON field goes too, at any depth; what is beside it stays.
    assert by_model["sandboxes.sandbox"][0]["fields"]["metadata"] == {"deploy_token": "[redacted]", "team": "a"}
    assert "tok-s3cret-xyz" not in body
    assert secret not in body and key.key_hash not in body
    assert elsewhere["id"] not in body
    audit_rows = by_model["audit.auditentry"]
    assert [row["fields"]["seq"] for row in audit_rows] == list(range(1, len(audit_rows) + 1))
    assert {"org.created", "sandbox.created"} <= {row["fields"]["action"] for row in audit_rows}
    assert all(row["fields"]["hash"] for row in audit_rows)

    # Owner only (org.manage); another org's member sees no such org; a key needs orgs:manage.
    denied = _session(admin).get("/api/v1/orgs/acme/export")
    assert denied.status_code == 403 and "org.manage" in denied.json()["error"]["message"]
    outsider = get_user_model().objects.create_user(username="stranger")
    assert _session(outsider).get("/api/v1/orgs/acme/export").status_code == 404
    assert APIClient().get("/api/v1/orgs/acme/export").status_code == 401
    narrow = _client(make_key(owner, ["sandboxes:read"], org=org)[1]).get("/api/v1/orgs/acme/export")
    assert narrow.status_code == 403


def test_an_owner_erases_the_org_sandboxes_keys_and_rows_go_the_audit_log_stays(
    owner, acme, make_key, create_sandbox, docker_client
):
    org, admin = acme
    org_id = org.pk
    key, secret = make_key(owner, org=org, name="ci")
    other_key, other_secret = make_key(admin, org=org, name="admin's")
    client = _client(secret)
    running = create_sandbox(client=client, name="running")
    stopped = create_sandbox(client=client, name="stopped")
    assert client.post(f"/api/v1/sandboxes/{stopped['id']}/stop").status_code == 200
    snapshot = client.post(f"/api/v1/sandboxes/{running['id']}/snapshots", {"name": "s"}, format="json")
    assert snapshot.status_code == 201, snapshot.content
    image = Snapshot.objects.get(pk=snapshot.json()["id"]).image
    personal = create_sandbox(name="kept")  # the owner's personal org is untouched
    assert docker_client.containers.get(running["id"]).status == "running"

    # The plain delete refuses a non-empty organization; erase is the one that empties it.
    refused = client.delete("/api/v1/orgs/acme")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "org_not_empty"
    # Only its owner (org.delete), and only with the slug repeated: nothing changes otherwise.
    denied = _session(admin).post("/api/v1/orgs/acme/erase", {"confirm": "acme"}, format="json")
    assert denied.status_code == 403 and "org.delete" in denied.json()["error"]["message"]
    stranger = get_user_model().objects.create_user(username="stranger")
    assert _session(stranger).post("/api/v1/orgs/acme/erase", {"confirm": "acme"}, format="json").status_code == 404
    assert APIClient().post("/api/v1/orgs/acme/erase", {"confirm": "acme"}, format="json").status_code == 401
    wrong = client.post("/api/v1/orgs/acme/erase", {"confirm": "acme-labs"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "validation_error"
    assert wrong.json()["error"]["details"]["fields"]["confirm"][0]["code"] == "confirm_mismatch"
    extra = client.post("/api/v1/orgs/acme/erase", {"confirm": "acme", "force": True}, format="json")
    assert extra.status_code == 400
    assert Organization.objects.filter(pk=org_id).exists()
    assert Sandbox.objects.filter(org_id=org_id, status="running").count() == 1

    erased = client.post("/api/v1/orgs/acme/erase", {"confirm": "acme"}, format="json")
    assert erased.status_code == 204, erased.content

    # Containers, workspaces and the snapshot's image are gone from the engine.
    for sandbox in (running, stopped):
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(sandbox["id"])
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(f"{sandbox['id']}-workspace")
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)
    # The rows are gone, the keys no longer authenticate (revoked, then removed with the org).
    assert not Organization.objects.filter(pk=org_id).exists()
    assert not Sandbox.objects.filter(org_id=org_id).exists()
    assert not Snapshot.objects.filter(org_id=org_id).exists()
    assert not ApiKey.objects.filter(pk__in=[key.pk, other_key.pk]).exists()
    assert not Membership.objects.filter(org_id=org_id).exists()
    assert _client(secret).get("/api/v1/sandboxes").status_code == 401
    assert _client(other_secret).get("/api/v1/sandboxes").status_code == 401
    # Users stay (they may belong elsewhere); so does everything of the owner's personal org.
    assert get_user_model().objects.filter(username="acme-admin").exists()
    assert Sandbox.objects.get(pk=personal["id"]).status == "running"
    # The audit log is kept, whole and verifiable, with the erasure's own entries, until retention.
    actions = list(AuditEntry.objects.filter(org_id=org_id).order_by("seq").values_list("action", flat=True))
    assert actions.index("org.erasure_requested") < actions.index("org.deleted") == len(actions) - 1
    assert actions.count("sandbox.destroyed") == 2 and "snapshot.deleted" in actions
    assert actions.count("key.revoked") == 2
    assert audit.verify(org_id) is None


def test_a_personal_org_is_not_erased(owner, make_key):
    key, secret = make_key(owner)
    refused = _client(secret).post("/api/v1/orgs/owner/erase", {"confirm": "owner"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "personal_org"
    assert Organization.objects.filter(slug="owner").exists() and ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_an_org_with_issued_invoices_is_refused_before_anything_is_destroyed(owner, acme, make_key, create_sandbox):
    """Invoices are financial records kept by the billing app (on_delete PROTECT): the erasure
    says so up front instead of destroying sandboxes and then failing."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from apps.billing.models import Invoice

    org, _ = acme
    key, secret = make_key(owner, org=org)
    sandbox = create_sandbox(client=_client(secret), name="stays")
    Invoice.objects.create(
        org=org,
        number="VB-TEST-000001",
        period_start=datetime(2026, 11, 1, tzinfo=UTC),
        period_end=datetime(2026, 12, 1, tzinfo=UTC),
        currency="USD",
        subtotal=Decimal(0),
        tax=Decimal(0),
        total=Decimal(0),
    )
    refused = _client(secret).post("/api/v1/orgs/acme/erase", {"confirm": "acme"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "org_not_empty"
    assert refused.json()["error"]["details"]["blocking"] == ["billing.invoice"]
    assert Sandbox.objects.get(pk=sandbox["id"]).status == "running"
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert not AuditEntry.objects.filter(org_id=org.pk, action="org.erasure_requested").exists()
