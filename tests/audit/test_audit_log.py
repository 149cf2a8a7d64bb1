"""The audit log: every write through every door leaves one entry (actor, key, source, IP, user
agent, action, target, changed fields, never a secret), the chain shows any edit, insertion or
deletion, retention archives before it removes, and the API reads and exports it."""

import datetime as dt
import gzip
import io
import json
import threading
import uuid
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit import context as audit_context
from apps.audit import services as audit
from apps.audit.models import AuditEntry
from apps.keys.scopes import ALL_SCOPES, AUDIT_READ
from apps.orgs import services as org_services
from apps.orgs.api.audit import AUDIT_READ as VIEWS_AUDIT_READ
from apps.orgs.models import Organization
from tests.conftest import _client, sandbox_row, streamed_body
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db

UA = "audit-test/1.0"


def _user(name: str):
    return get_user_model().objects.create_user(username=name, password=f"pw-{name}-long", email=f"{name}@acme.test")


def _entries(org_id: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(org_id=org_id).order_by("seq"))


def _actions(org_id: str) -> list[str]:
    return [entry.action for entry in _entries(org_id)]


def test_the_scope_the_audit_view_names_is_the_keys_registrys():
    assert VIEWS_AUDIT_READ == AUDIT_READ and AUDIT_READ in ALL_SCOPES


def test_api_writes_are_recorded_with_actor_key_source_address_and_agent(owner, make_key):
    key, secret = make_key(owner, scopes=ALL_SCOPES)
    client = _client(secret)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_USER_AGENT=UA)
    assert client.post("/api/v1/orgs", {"name": "Acme", "slug": "acme"}, format="json").status_code == 201
    org = Organization.objects.get(slug="acme")
    creator = key
    key, secret = make_key(owner, org=org, scopes=ALL_SCOPES)  # a key acts only in its own organization
    client = _client(secret)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_USER_AGENT=UA)
    other = _user("dev")
    added = client.post("/api/v1/orgs/acme/members", {"username": "dev", "role": "developer"}, format="json")
    assert added.status_code == 201
    member_id = added.json()["id"]
    assert client.patch(f"/api/v1/orgs/acme/members/{member_id}", {"role": "viewer"}, format="json").status_code == 200
    assert (
        client.post(
            "/api/v1/orgs/acme/roles", {"name": "ops", "permissions": ["sandboxes.read"]}, format="json"
        ).status_code
        == 201
    )
    assert client.post("/api/v1/orgs/acme/teams", {"name": "core", "role": "ops"}, format="json").status_code == 201
    assert client.post("/api/v1/orgs/acme/teams/core/members", {"username": "dev"}, format="json").status_code in (
        200,
        201,
    )
    assert client.delete(f"/api/v1/orgs/acme/members/{member_id}").status_code == 204

    entries = _entries(org.pk)
    assert [entry.action for entry in entries] == [
        "org.created",
        "key.created",  # by make_key: a service call outside any request, so the system's
        "member.added",
        "member.role_changed",
        "role.created",
        "team.created",
        "team.member_added",
        "member.removed",
    ]
    assert (entries[0].key_id, entries[1].source, entries[1].actor) == (creator.pk, "system", "system")
    for entry in entries[:1] + entries[2:]:
        assert (entry.actor, entry.actor_user_id) == ("owner", owner.pk)
        assert entry.key_id == (creator.pk if entry.seq == 1 else key.pk)
        assert (entry.source, entry.ip, entry.user_agent) == ("api", "127.0.0.1", UA)
    assert entries[3].changes == {"user": "dev", "role": ["developer", "viewer"]}
    assert entries[2].target_type == "member" and entries[2].changes["user"] == other.username
    assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1))
    assert audit.verify(org.pk) is None

    # Keys: created (never its secret), rotated, revoked; in the key's organization's chain.
    made = client.post("/api/v1/keys", {"name": "ci", "scopes": ["sandboxes:read"]}, format="json").json()
    rotated = client.post(f"/api/v1/keys/{made['id']}/rotate", {}, format="json").json()
    assert client.delete(f"/api/v1/keys/{rotated['id']}").status_code in (200, 204)
    last = entries[-1].seq
    key_entries = [e for e in _entries(org.pk) if e.seq > last]
    assert [e.action for e in key_entries] == ["key.created", "key.rotated", "key.revoked"]
    assert key_entries[0].target_id == made["id"] and key_entries[0].changes["scopes"] == ["sandboxes:read"]
    everything = json.dumps([audit.content(e) for e in AuditEntry.objects.all()])
    assert made["key"] not in everything and rotated["key"] not in everything


def test_sandbox_writes_and_commands_are_recorded_with_the_command_not_its_output(api_client, api_key, create_sandbox):
    sandbox = create_sandbox(template="python-3")
    sid = sandbox["id"]
    ran = api_client.post(f"/api/v1/sandboxes/{sid}/exec", {"command": "echo out-$((40+2))"}, format="json")
    assert ran.status_code == 200 and ran.json()["stdout"] == "out-42\n"
    code = api_client.post(
        f"/api/v1/sandboxes/{sid}/execute", {"code": "print(6*7)", "language": "python"}, format="json"
    )
    assert code.status_code == 200
    put = api_client.post(
        f"/api/v1/sandboxes/{sid}/files?path=/workspace/a.txt", b"hello", content_type="application/octet-stream"
    )
    assert put.status_code in (200, 201)
    env = api_client.patch(
        f"/api/v1/sandboxes/{sid}/env",
        {"TOKEN_X": {"value": "s3cr3t-value", "secret": True}, "PLAIN": "p"},
        format="json",
    )
    assert env.status_code == 200
    assert api_client.post(f"/api/v1/sandboxes/{sid}/stop", format="json").status_code == 200
    assert api_client.delete(f"/api/v1/sandboxes/{sid}").status_code in (200, 202, 204)

    org_id = api_key[0].org_id
    mine = [e for e in _entries(org_id) if e.target_id == sid]
    assert [e.action for e in mine] == [
        "sandbox.created",
        "command.executed",
        "code.executed",
        "file.written",
        "sandbox.env_changed",
        "sandbox.stopped",
        "sandbox.destroyed",
    ]
    assert mine[1].changes["command"] == "echo out-$((40+2))"
    assert "print(6*7)" in mine[2].changes["command"]
    assert mine[3].changes == {"path": "/workspace/a.txt", "size": 5}
    assert mine[4].changes == {"set": ["PLAIN", "TOKEN_X"], "removed": [], "replace": False}
    text = json.dumps([audit.content(e) for e in mine])
    assert "out-42" not in text and "s3cr3t-value" not in text
    assert all(e.source == "api" and e.key_id == api_key[0].pk for e in mine)
    assert audit.verify(org_id) is None


@pytest.mark.django_db(transaction=True)
def test_a_websocket_command_is_recorded_as_the_websocket_door(api_key, create_sandbox):
    sid = create_sandbox(template="python-3")["id"]

    async def scenario():
        headers = [(b"authorization", f"Bearer {api_key[1]}".encode()), (b"user-agent", UA.encode())]
        comm = Communicator(application, f"/ws/sandboxes/{sid}/exec", headers=headers)
        connected, _ = await comm.connect()
        assert connected
        await comm.send_json_to({"command": "echo via-ws"})
        while True:
            message = json.loads((await comm.receive_output())["text"])
            if message.get("type") == "exit":
                break
        await comm.disconnect()

    async_to_sync(scenario)()
    entry = AuditEntry.objects.get(action="command.executed", target_id=sid)
    assert entry.changes["command"] == "echo via-ws"
    assert (entry.source, entry.actor, entry.key_id, entry.user_agent) == ("websocket", "owner", api_key[0].pk, UA)


def test_dashboard_admin_sign_in_and_management_command_doors(owner, client, settings):
    # Sign-in through the dashboard, a failed one, and a sign-out.
    assert client.post("/login/", {"username": "owner", "password": "wrong"}).status_code == 200
    owner.set_password("pw-owner-long")
    owner.save()
    assert client.post("/login/", {"username": "owner", "password": "pw-owner-long"}).status_code == 302
    org = org_services.personal_org_ensure(user=owner)
    actions = _actions(org.pk)
    assert "login.failed" in actions and actions[-1] == "login.succeeded"
    failed = AuditEntry.objects.get(org_id=org.pk, action="login.failed")
    assert failed.actor == "anonymous" and failed.source == "dashboard" and failed.target_id == str(owner.pk)
    client.logout()
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"  # the sign-in lockout counts in Redis, across runs
    assert client.post("/login/", {"username": nobody, "password": "x"}).status_code == 200
    assert AuditEntry.objects.filter(org_id="", action="login.failed", changes__username=nobody).exists()

    # The admin: a staff member renames an organization through its change form.
    staff = _user("staffer")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    admin = APIClient()
    admin.force_login(staff)
    changed = admin.post(
        f"/admin/orgs/organization/{org.pk}/change/",
        {
            "slug": org.slug,
            "name": "Renamed",
            "personal_for": owner.pk,
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert changed.status_code == 302 and "/change/" not in changed["Location"], changed["Location"]
    org.refresh_from_db()
    assert org.name == "Renamed"
    entry = AuditEntry.objects.filter(org_id=org.pk, action="org.updated").latest("seq")
    assert (entry.source, entry.actor) == ("admin", "staffer")

    # A management command acts as the system.
    call_command("createapikey", "--user", "owner", "--name", "from-cli", stdout=io.StringIO())
    entry = AuditEntry.objects.filter(org_id=org.pk, action="key.created").latest("seq")
    assert (entry.source, entry.actor, entry.changes["name"]) == ("system", "system", "from-cli")
    assert audit.verify() is None


def test_the_mcp_door_is_named_only_by_the_servers_own_token(owner, make_key):
    _, secret = make_key(owner, scopes=ALL_SCOPES)
    for via, source in ((audit_context.via_token("mcp"), "mcp"), ("forged", "api")):
        client = _client(secret)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_X_VIBEBOX_VIA=via)
        slug = f"via-{source}"
        assert client.post("/api/v1/orgs", {"name": slug, "slug": slug}, format="json").status_code == 201
        org = Organization.objects.get(slug=slug)
        assert _entries(org.pk)[0].source == source


def _chain(org, count: int = 5) -> list[AuditEntry]:
    for number in range(count):
        audit.record("test.written", org_id=org.pk, target_type="thing", target_id=str(number), changes={"n": number})
    return _entries(org.pk)


def test_an_edited_inserted_or_deleted_row_breaks_the_chain_where_it_happened(owner):
    org = org_services.org_create(user=owner, name="Chain", slug="chain")
    entries = _chain(org)
    assert audit.verify(org.pk) is None
    call_command("verifyaudit", stdout=io.StringIO())

    third = entries[2]
    with connection.cursor() as cursor:  # someone edits a row in the database
        cursor.execute("UPDATE audit_auditentry SET changes = %s WHERE id = %s", ['{"n": 99}', third.pk])
    broken = audit.verify(org.pk)
    assert broken is not None and broken.seq == third.seq and "edited" in broken.reason
    with pytest.raises(CommandError, match=f"#{third.seq}"):
        call_command("verifyaudit", "--org", org.pk)
    with connection.cursor() as cursor:  # put it back: intact again
        cursor.execute("UPDATE audit_auditentry SET changes = %s WHERE id = %s", [json.dumps(third.changes), third.pk])
    assert audit.verify(org.pk) is None

    with connection.cursor() as cursor:  # a row removed from the middle
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entries[1].pk])
    broken = audit.verify(org.pk)
    assert broken is not None and broken.seq == entries[1].seq and "missing" in broken.reason

    org2 = org_services.org_create(user=owner, name="Tail", slug="tail")
    tail = _chain(org2)
    with connection.cursor() as cursor:  # the newest row removed
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [tail[-1].pk])
    broken = audit.verify(org2.pk)
    assert broken is not None and "end" in broken.reason

    org3 = org_services.org_create(user=owner, name="Headless", slug="headless")
    _chain(org3, 2)
    with connection.cursor() as cursor:  # the head removed to hide the chain
        cursor.execute("DELETE FROM audit_audithead WHERE org_id = %s", [org3.pk])
    broken = audit.verify(org3.pk)
    assert broken is not None and "head" in broken.reason


def test_entries_are_append_only_through_the_orm(owner):
    org = org_services.org_create(user=owner, name="Append", slug="append")
    entry = _entries(org.pk)[0]
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(org_id=org.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(org_id=org.pk).delete()
    entry.action = "x"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()


def test_secrets_in_changes_are_masked_and_texts_capped(owner):
    org = org_services.org_create(user=owner, name="Mask", slug="mask")
    entry = audit.record(
        "test.masked",
        org_id=org.pk,
        changes={"password": "hunter2", "nested": {"apiKey": "k", "clientSecret": "s"}, "command": "x" * 10_000},
    )
    assert entry.changes["password"] == audit.MASK and entry.changes["nested"] == {
        "apiKey": audit.MASK,
        "clientSecret": audit.MASK,
    }
    assert len(entry.changes["command"]) == audit.MAX_TEXT
    assert audit.verify(org.pk) is None


def test_retention_archives_then_removes_and_the_rest_still_verifies(owner, settings, tmp_path):
    settings.VIBEBOX_AUDIT_ARCHIVE_DIR = tmp_path
    long_ago = timezone.now() - dt.timedelta(days=400)
    with mock.patch("apps.audit.services.timezone.now", return_value=long_ago):
        org = org_services.org_create(user=owner, name="Old", slug="old")
        _chain(org, 3)
    _chain(org, 2)  # recent
    before = _entries(org.pk)
    old = [e for e in before if e.created_at < timezone.now() - dt.timedelta(days=365)]
    assert len(old) == 4  # org.created and three more
    done = audit.prune(days=365)
    assert done == {org.pk: len(old)}
    archives = list((tmp_path / org.pk).glob("*.jsonl.gz"))
    assert len(archives) == 1
    with gzip.open(archives[0], "rt") as archive:
        archived = [json.loads(line) for line in archive]
    assert [line["seq"] for line in archived] == [e.seq for e in old]
    assert [line["hash"] for line in archived] == [e.hash for e in old]
    left = _entries(org.pk)
    assert [e.seq for e in left] == [e.seq for e in before if e not in old]
    assert audit.verify(org.pk) is None
    assert audit.prune(days=365) == {}  # nothing more to do
    with connection.cursor() as cursor:  # hiding the oldest kept entry is still caught
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [left[0].pk])
    assert audit.verify(org.pk) is not None


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_organization_get_consecutive_numbers(owner):
    org = org_services.org_create(user=owner, name="Busy", slug="busy")
    failures = []

    def write(worker: int):
        try:
            for number in range(8):
                audit.record("test.concurrent", org_id=org.pk, changes={"worker": worker, "n": number})
        except Exception as exc:  # reported below
            failures.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    entries = _entries(org.pk)
    assert [e.seq for e in entries] == list(range(1, 34))
    assert audit.verify(org.pk) is None


@pytest.fixture
def acme(owner):
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    for role in ("viewer", "admin"):
        _user(role)
        org_services.member_add(org=org, user_ref=role, role=role)
    return org


def test_reading_the_log_needs_audit_read_and_the_scope(acme, make_key, outsider):
    viewer = get_user_model().objects.get(username="viewer")
    _, secret = make_key(viewer, org=acme, scopes=ALL_SCOPES)
    denied = _client(secret).get("/api/v1/orgs/acme/audit-log")
    assert denied.status_code == 403 and denied.json()["error"]["details"]["permission"] == "audit.read"
    admin = get_user_model().objects.get(username="admin")
    _, narrow = make_key(admin, org=acme, scopes=["sandboxes:read"])
    assert _client(narrow).get("/api/v1/orgs/acme/audit-log").status_code == 403
    _, wide = make_key(admin, org=acme, scopes=["audit:read"])
    assert _client(wide).get("/api/v1/orgs/acme/audit-log").status_code == 200
    _, stranger = make_key(outsider, scopes=ALL_SCOPES)
    assert _client(stranger).get("/api/v1/orgs/acme/audit-log").status_code == 404


def test_filters_pages_and_exports(acme, owner, make_key):
    _, secret = make_key(owner, org=acme, scopes=ALL_SCOPES)
    client = _client(secret)
    for number in range(7):
        audit.record("thing.made", org_id=acme.pk, target_type="thing", target_id=f"t{number}")
    everything = client.get("/api/v1/orgs/acme/audit-log").json()
    seqs = [entry["seq"] for entry in everything["results"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 11  # org.created, 2 members, the key, 7 things
    first = everything["results"][0]
    assert set(first) >= {
        "seq",
        "createdAt",
        "actor",
        "keyId",
        "source",
        "action",
        "targetType",
        "targetId",
        "changes",
        "hash",
        "prevHash",
    }

    page = client.get("/api/v1/orgs/acme/audit-log?limit=4").json()
    assert len(page["results"]) == 4 and page["next"]
    second = client.get(page["next"]).json()
    assert [e["seq"] for e in second["results"]] == seqs[4:8]

    assert {e["action"] for e in client.get("/api/v1/orgs/acme/audit-log?action=member.").json()["results"]} == {
        "member.added"
    }
    assert len(client.get("/api/v1/orgs/acme/audit-log?action=thing.*").json()["results"]) == 7
    assert [e["targetId"] for e in client.get("/api/v1/orgs/acme/audit-log?target=thing:t3").json()["results"]] == [
        "t3"
    ]
    assert client.get("/api/v1/orgs/acme/audit-log?actor=nobody").json()["results"] == []
    future = (timezone.now() + dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert client.get(f"/api/v1/orgs/acme/audit-log?since={future}").json()["results"] == []
    for bad in ("since=yesterday", "until=2026-01-01T00:00:00", "limit=0", "limit=x", "cursor=garbage"):
        answer = client.get(f"/api/v1/orgs/acme/audit-log?{bad}")
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "validation_error", bad

    jsonl = client.get("/api/v1/orgs/acme/audit-log/export?format=jsonl")
    assert jsonl.status_code == 200 and jsonl["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in streamed_body(jsonl).decode().splitlines()]
    assert [line["seq"] for line in lines] == sorted(seqs) and lines[0]["prev"] == "0" * 64
    assert all(lines[i]["prev"] == lines[i - 1]["hash"] for i in range(1, len(lines)))
    csv_answer = client.get("/api/v1/orgs/acme/audit-log/export?format=csv&action=thing.")
    rows = streamed_body(csv_answer).decode().splitlines()
    assert csv_answer["Content-Type"].startswith("text/csv") and len(rows) == 8 and rows[0].startswith("seq,at,actor")
    assert client.get("/api/v1/orgs/acme/audit-log/export?format=xml").status_code == 400


def test_grants_invitations_and_agent_runs_are_recorded(owner, make_key, templates):
    org = org_services.org_create(user=owner, name="Share", slug="share")
    _user("mate")
    org_services.member_add(org=org, user_ref="mate", role="viewer")
    _, secret = make_key(owner, org=org, scopes=ALL_SCOPES)
    client = _client(secret)
    sandbox = sandbox_row(owner, templates["python-3"], org=org)
    grants = f"/api/v1/sandboxes/{sandbox.id}/grants"
    made = client.post(grants, {"user": "mate", "access": "read"}, format="json")
    assert made.status_code == 201, made.content
    assert client.post(grants, {"user": "mate", "access": "use"}, format="json").status_code == 200
    assert client.delete(f"{grants}/{made.json()['id']}").status_code == 204
    invited = client.post(
        "/api/v1/orgs/share/invitations", {"email": "new@share.test", "role": "viewer"}, format="json"
    )
    assert invited.status_code == 201, invited.content
    assert client.delete(f"/api/v1/orgs/share/invitations/{invited.json()['id']}").status_code == 204
    run = client.post("/api/v1/agent-runs", {"name": "nightly"}, format="json").json()
    assert client.patch(f"/api/v1/agent-runs/{run['id']}", {"status": "completed"}, format="json").status_code == 200
    assert client.delete(f"/api/v1/agent-runs/{run['id']}").status_code == 204

    entries = [e for e in _entries(org.pk) if e.source == "api"]
    assert [e.action for e in entries] == [
        "grant.created",
        "grant.updated",
        "grant.deleted",
        "invitation.created",
        "invitation.revoked",
        "agent_run.created",
        "agent_run.finished",
        "agent_run.deleted",
    ]
    assert entries[0].target_id == sandbox.id and entries[0].changes["user"] == "mate"
    assert entries[1].changes["access"] == ["read", "use"]
    assert entries[3].changes["email"] == "new@share.test"
    assert audit.verify(org.pk) is None
