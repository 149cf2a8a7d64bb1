"""Sharing a sandbox with a member or a team (docs/api.md, Sharing a sandbox): a grant gives its
level and those below it (read < use < manage) whatever the role says, never more than the key's
scopes; only who may manage the sandbox grants; another organization's sandbox is a 404, a
grantee outside the organization too. Container-less rows where only access is checked, a real
container where commands, files and a WebSocket run."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client

from apps.keys.actors import SESSION_ORG
from apps.keys.scopes import ALL_SCOPES, SANDBOXES_READ, SANDBOXES_WRITE
from apps.orgs import services as org_services
from apps.orgs.actors import Actor
from apps.orgs.models import Membership
from apps.orgs.permissions import BUILTIN_ROLES
from apps.sandboxes import selectors
from apps.sandboxes.models import Sandbox, SandboxGrant, Snapshot
from tests.conftest import _client, sandbox_row
from tests.ws import Communicator
from vibebox import exceptions as errors
from vibebox.asgi import application

# (name, role): `dev` owns the sandboxes; `bill` (billing) has no sandboxes.* permission at all.
MEMBERS = (("dev", "developer"), ("dev2", "developer"), ("vic", "viewer"), ("bill", "billing"))


def _acme(owner, outsider, make_key):
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    users = {"owner": owner, "outsider": outsider}
    for name, role in MEMBERS:
        users[name] = get_user_model().objects.create_user(username=name, email=f"{name}@example.com")
        org_services.member_add(org=org, user_ref=name, role=role)
    secrets = {
        name: make_key(user, ALL_SCOPES, org=None if name == "outsider" else org)[1] for name, user in users.items()
    }
    return org, users, {name: _client(secret) for name, secret in secrets.items()}, secrets


@pytest.fixture
def acme(owner, outsider, make_key):
    return _acme(owner, outsider, make_key)[:3]


def _error(response) -> tuple[int, str | None, str | None]:
    error = response.json().get("error", {}) if response.content else {}
    return response.status_code, error.get("code"), error.get("details", {}).get("permission")


def _grant(client, sandbox_id: str, access: str, **target):
    return client.post(f"/api/v1/sandboxes/{sandbox_id}/grants", {**target, "access": access}, format="json")


# ---- container-less: who reaches what ----


@pytest.mark.django_db
def test_grants_are_made_changed_listed_and_revoked(acme, templates):
    org, users, clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="shared")
    path = f"/api/v1/sandboxes/{sandbox.id}/grants"
    made = _grant(clients["dev"], sandbox.id, "read", user="vic")
    assert made.status_code == 201, made.content
    grant = made.json()
    assert grant == {
        "id": grant["id"], "user": "vic", "team": None, "access": "read", "createdBy": "dev",
        "createdAt": grant["createdAt"],
    }  # fmt: skip
    assert grant["id"].startswith("grt_")
    # The same grantee again (here by email) changes the level of the one grant.
    changed = _grant(clients["dev"], sandbox.id, "use", user="VIC@example.com")
    assert changed.status_code == 200 and changed.json() == {**grant, "access": "use"}
    org_services.team_create(org=org, name="ops")
    team = _grant(clients["dev"], sandbox.id, "read", team="ops")
    assert team.status_code == 201 and team.json()["team"] == "ops" and team.json()["user"] is None
    # Anyone who may read the sandbox sees its grants, oldest first.
    listed = clients["vic"].get(path)
    assert listed.status_code == 200 and [(g["user"], g["team"], g["access"]) for g in listed.json()] == [
        ("vic", None, "use"),
        (None, "ops", "read"),
    ]
    assert clients["dev"].delete(f"{path}/{grant['id']}").status_code == 204
    assert [g["team"] for g in clients["dev"].get(path).json()] == ["ops"]
    again = clients["dev"].delete(f"{path}/{grant['id']}")
    assert _error(again)[:2] == (404, "grant_not_found")
    # A grant id is looked for under its own sandbox only.
    other = sandbox_row(users["dev"], templates["python-3"], org=org, name="other")
    team_grant = team.json()["id"]
    assert _error(clients["dev"].delete(f"/api/v1/sandboxes/{other.id}/grants/{team_grant}"))[1] == "grant_not_found"
    assert SandboxGrant.objects.filter(pk=team_grant).exists()


@pytest.mark.django_db
def test_a_read_grant_shows_the_sandbox_and_its_snapshots_but_runs_nothing(acme, templates):
    org, users, clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="shared")
    snapshot = Snapshot.objects.create(
        owner=users["dev"], org=org, sandbox=sandbox, sandbox_name="shared", template=templates["python-3"], image="x"
    )
    bill, path = clients["bill"], f"/api/v1/sandboxes/{sandbox.id}"
    # Billing holds no sandboxes.* permission: nothing to see.
    assert _error(bill.get(path)) == (403, "permission_denied", "sandboxes.read")
    assert bill.get("/api/v1/sandboxes").json()["count"] == 0
    assert bill.get("/api/v1/snapshots").json()["results"] == []
    assert _grant(clients["dev"], sandbox.id, "read", user="bill").status_code == 201
    assert bill.get(path).status_code == 200
    assert [item["id"] for item in bill.get("/api/v1/sandboxes").json()["results"]] == [sandbox.id]
    assert [item["id"] for item in bill.get("/api/v1/snapshots").json()["results"]] == [snapshot.id]
    assert [item["id"] for item in bill.get(f"{path}/snapshots").json()["results"]] == [snapshot.id]
    assert bill.get(f"/api/v1/snapshots/{snapshot.id}").status_code == 200
    # Reading is all: running needs `use`, changing `manage` (the 403 names what the role lacks).
    assert _error(bill.post(f"{path}/exec", {"command": ["true"]}, format="json")) == (
        403,
        "permission_denied",
        "sandboxes.exec",
    )
    assert _error(bill.patch(path, {"metadata": {"a": "b"}}, format="json"))[2] == "sandboxes.manage_all"
    assert _error(bill.delete(f"/api/v1/snapshots/{snapshot.id}"))[2] == "sandboxes.manage_all"
    assert _error(_grant(bill, sandbox.id, "read", user="dev2"))[2] == "sandboxes.manage_all"
    # Other sandboxes of the organization stay out of reach.
    unshared = sandbox_row(users["dev"], templates["python-3"], org=org, name="unshared")
    assert _error(bill.get(f"/api/v1/sandboxes/{unshared.id}"))[2] == "sandboxes.read"


@pytest.mark.django_db
def test_a_team_grant_reaches_the_teams_members_while_they_are_in_it(acme, templates):
    org, users, clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="shared")
    path = f"/api/v1/sandboxes/{sandbox.id}"
    team = org_services.team_create(org=org, name="ops")  # no role: a team only to share with
    assert _grant(clients["owner"], sandbox.id, "manage", team="ops").status_code == 201
    assert _error(clients["bill"].get(path))[2] == "sandboxes.read"
    org_services.team_member_add(team=team, user_ref="bill")
    assert clients["bill"].get(path).status_code == 200
    assert clients["bill"].patch(path, {"metadata": {"by": "bill"}}, format="json").status_code == 200
    assert Sandbox.objects.get(pk=sandbox.id).metadata == {"by": "bill"}
    assert [item["id"] for item in clients["bill"].get("/api/v1/sandboxes").json()["results"]] == [sandbox.id]
    org_services.team_member_remove(team=team, user_ref="bill")
    assert _error(clients["bill"].get(path))[2] == "sandboxes.read"
    assert clients["bill"].get("/api/v1/sandboxes").json()["count"] == 0
    # A deleted team's grants go with it.
    org_services.team_delete(team=team)
    assert not SandboxGrant.objects.filter(sandbox=sandbox).exists()


@pytest.mark.django_db
def test_who_may_grant_and_to_whom(acme, templates, owner):
    org, users, clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="shared")
    sid = sandbox.id
    # Only who may manage the sandbox: its owner (sandboxes.create), sandboxes.manage_all, a manage grant.
    assert _error(_grant(clients["dev2"], sid, "read", user="vic"))[2] == "sandboxes.manage_all"
    assert _error(_grant(clients["vic"], sid, "read", user="vic"))[2] == "sandboxes.manage_all"
    assert _grant(clients["dev"], sid, "use", user="vic").status_code == 201
    assert _error(_grant(clients["vic"], sid, "read", user="bill"))[2] == "sandboxes.manage_all"  # use is not manage
    assert _grant(clients["owner"], sid, "manage", user="dev2").status_code == 201
    assert _grant(clients["dev2"], sid, "manage", user="bill").status_code == 201  # manage gives anything
    # A grantee revokes no one else's grant, but may give up their own.
    vic_grant = SandboxGrant.objects.get(sandbox=sandbox, user=users["vic"]).pk
    bill_grant = SandboxGrant.objects.get(sandbox=sandbox, user=users["bill"]).pk
    grants = f"/api/v1/sandboxes/{sid}/grants"
    assert _error(clients["vic"].delete(f"{grants}/{bill_grant}"))[2] == "sandboxes.manage_all"
    assert clients["vic"].delete(f"{grants}/{vic_grant}").status_code == 204
    assert _error(clients["vic"].post(f"/api/v1/sandboxes/{sid}/exec", {"command": "true"}, format="json"))[2] == (
        "sandboxes.exec"
    )
    assert clients["bill"].get(f"/api/v1/sandboxes/{sid}").status_code == 200
    assert clients["dev"].delete(f"{grants}/{bill_grant}").status_code == 204
    assert _error(clients["bill"].get(f"/api/v1/sandboxes/{sid}"))[2] == "sandboxes.read"
    # Grantees are members (or teams) of the sandbox's organization.
    refused = _grant(clients["dev"], sid, "read", user="outsider")
    assert _error(refused)[:2] == (404, "member_not_found")
    assert _error(_grant(clients["dev"], sid, "read", user="nobody@example.com"))[:2] == (404, "member_not_found")
    assert _error(_grant(clients["dev"], sid, "read", team="ghosts"))[:2] == (404, "team_not_found")
    # Bad bodies: 400 and nothing changes.
    before = set(SandboxGrant.objects.values_list("pk", "access"))
    for body in (
        {"access": "read"},
        {"user": "vic", "team": "ops", "access": "read"},
        {"user": "vic", "access": "admin"},
        {"user": "vic"},
        {"user": "vic", "access": "read", "extra": 1},
        {"user": 5, "access": "read"},
    ):
        answer = clients["dev"].post(grants, body, format="json")
        assert answer.status_code == 400, (body, answer.content)
    assert set(SandboxGrant.objects.values_list("pk", "access")) == before
    # Another organization's sandbox is not found, whatever one's role there.
    theirs = sandbox_row(users["outsider"], templates["python-3"], name="theirs")
    for name in ("owner", "dev"):
        assert _error(_grant(clients[name], theirs.id, "read", user="vic"))[:2] == (404, "sandbox_not_found")
        assert _error(clients[name].get(f"/api/v1/sandboxes/{theirs.id}/grants"))[1] == "sandbox_not_found"
    assert _error(clients["outsider"].get(grants))[1] == "sandbox_not_found"
    assert _grant(clients["outsider"], theirs.id, "read", user="dev").status_code == 404  # not their org's member
    assert _client("vb_test_nope").get(grants).status_code == 401


@pytest.mark.django_db
def test_a_key_s_scopes_still_limit_a_grant(acme, templates, make_key):
    org, users, clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="shared")
    assert _grant(clients["dev"], sandbox.id, "manage", user="bill").status_code == 201
    read_only = _client(make_key(users["bill"], [SANDBOXES_READ], org=org)[1])
    path = f"/api/v1/sandboxes/{sandbox.id}"
    assert read_only.get(path).status_code == 200  # billing: through the grant alone
    no_exec = _client(make_key(users["bill"], [SANDBOXES_READ, SANDBOXES_WRITE], org=org)[1])
    refused = no_exec.post(f"{path}/exec", {"command": ["true"]}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    assert refused.json()["error"]["details"]["missing"] == ["execute"]
    assert read_only.patch(path, {"metadata": {}}, format="json").json()["error"]["code"] == "insufficient_scope"
    assert _grant(read_only, sandbox.id, "read", user="vic").json()["error"]["code"] == "insufficient_scope"


@pytest.mark.django_db
def test_a_member_who_leaves_loses_their_grants(acme, templates, make_key, django_capture_on_commit_callbacks):
    org, users, clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="shared")
    elsewhere = org_services.org_create(user=users["vic"], name="Elsewhere", slug="elsewhere")
    mine_there = sandbox_row(users["vic"], templates["python-3"], org=elsewhere, name="there")
    SandboxGrant.objects.create(sandbox=mine_there, user=users["vic"], access="read")  # another org's: stays
    assert _grant(clients["dev"], sandbox.id, "use", user="vic").status_code == 201
    team = org_services.team_create(org=org, name="ops")
    org_services.team_member_add(team=team, user_ref="vic")
    assert _grant(clients["dev"], sandbox.id, "manage", team="ops").status_code == 201
    member = Membership.objects.get(org=org, user=users["vic"])
    with django_capture_on_commit_callbacks(execute=True):
        assert clients["owner"].delete(f"/api/v1/orgs/acme/members/{member.pk}").status_code == 204
    assert list(SandboxGrant.objects.filter(sandbox=sandbox).values_list("team__name", flat=True)) == ["ops"]
    assert SandboxGrant.objects.filter(sandbox=mine_there, user=users["vic"]).exists()
    # Back as a member, nothing of before applies.
    org_services.member_add(org=org, user_ref="vic", role="billing")
    again = _client(make_key(users["vic"], ALL_SCOPES, org=org)[1])
    assert _error(again.get(f"/api/v1/sandboxes/{sandbox.id}"))[2] == "sandboxes.read"


@pytest.mark.django_db
def test_ones_own_sandbox_is_reached_without_reading_grants(acme, templates, django_assert_num_queries):
    org, users, _clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="mine")
    SandboxGrant.objects.create(sandbox=sandbox, user=users["vic"], access="use")
    dev = Actor(user=users["dev"], org=org, permissions=BUILTIN_ROLES["developer"])
    for need in (selectors.READ, selectors.USE, selectors.MANAGE):
        with django_assert_num_queries(0):
            selectors.check_access(dev, owner_id=sandbox.owner_id, need=need, sandbox_id=sandbox.pk)
    vic = Actor(user=users["vic"], org=org, permissions=BUILTIN_ROLES["viewer"])
    with django_assert_num_queries(1):  # the role refuses: the grants are read, once
        selectors.check_access(vic, owner_id=sandbox.owner_id, need=selectors.USE, sandbox_id=sandbox.pk)
    with django_assert_num_queries(0), pytest.raises(errors.PermissionDenied):  # no sandbox: the role alone
        selectors.check_access(vic, owner_id=sandbox.owner_id, need=selectors.USE, sandbox_id=None)


@pytest.mark.django_db
def test_the_dashboard_asks_for_manage_to_stop_destroy_or_extend(acme, templates):
    org, users, clients = acme
    sandbox = sandbox_row(users["dev"], templates["python-3"], org=org, name="shared", status="running")
    assert _grant(clients["dev"], sandbox.id, "use", user="vic").status_code == 201
    browser = Client()
    browser.force_login(users["vic"])
    session = browser.session
    session[SESSION_ORG] = "acme"
    session.save()
    for url, data in (
        (f"/sandboxes/{sandbox.id}/actions/stop", {}),
        (f"/sandboxes/{sandbox.id}/actions/destroy", {}),
        (f"/sandboxes/{sandbox.id}/extend", {"timeout": "2h"}),
        ("/sandboxes/bulk", {"action": "destroy", "ids": [sandbox.id]}),
    ):
        assert browser.post(url, data).status_code == 403, url
    assert Sandbox.objects.filter(pk=sandbox.id, status="running", timeout_seconds=None).exists()
    assert _grant(clients["dev"], sandbox.id, "manage", user="vic").status_code == 200
    assert browser.post(f"/sandboxes/{sandbox.id}/extend", {"timeout": "2h"}).status_code == 302
    assert Sandbox.objects.get(pk=sandbox.id).timeout_seconds == 7200


# ---- a real container: commands, files, a WebSocket ----


def _exec_stream(sandbox_id: str, secret: str, command: str) -> tuple[bool, list[dict] | int]:
    """(True, the messages up to `exit`) or (False, the close code of a refusal)."""

    async def scenario():
        headers = [(b"authorization", f"Bearer {secret}".encode())]
        comm = Communicator(application, f"/ws/sandboxes/{sandbox_id}/exec", headers=headers)
        connected, code = await comm.connect()
        if not connected:
            await comm.disconnect()
            return False, code
        await comm.send_json_to({"command": command, "timeout": "30s"})
        messages = []
        while not messages or messages[-1].get("type") != "exit":
            output = await comm.receive_output()
            assert output["type"] != "websocket.close", (output, messages)
            messages.append(json.loads(output["text"]))
        await comm.disconnect()
        return True, messages

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_use_and_manage_grants_on_a_running_sandbox(owner, outsider, make_key, create_sandbox):
    org, _users, clients, secrets = _acme(owner, outsider, make_key)
    sandbox_id = create_sandbox(client=clients["dev"])["id"]
    path = f"/api/v1/sandboxes/{sandbox_id}"
    vic = clients["vic"]  # a viewer: sandboxes.read only
    assert _error(vic.post(f"{path}/exec", {"command": "true"}, format="json"))[2] == "sandboxes.exec"
    assert _exec_stream(sandbox_id, secrets["vic"], "true") == (False, 4403)

    assert _grant(clients["dev"], sandbox_id, "use", user="vic").status_code == 201
    ran = vic.post(f"{path}/exec", {"command": "echo hi"}, format="json")
    assert ran.status_code == 200 and ran.json()["stdout"] == "hi\n", ran.content
    wrote = vic.post(f"{path}/files?path=note.txt", b"from vic", content_type="application/octet-stream")
    assert wrote.status_code == 201, wrote.content
    read = clients["dev"].post(f"{path}/exec", {"command": "cat /workspace/note.txt"}, format="json")
    assert read.json()["stdout"] == "from vic"
    connected, messages = _exec_stream(sandbox_id, secrets["vic"], "echo streamed")
    assert connected and {"type": "stdout", "data": "streamed\n"} in messages
    assert messages[-1]["exitCode"] == 0
    # `use` is not `manage`.
    assert _error(vic.post(f"{path}/stop"))[2] == "sandboxes.manage_all"
    assert _error(vic.delete(path))[2] == "sandboxes.manage_all"
    assert _error(vic.put(f"{path}/env", {"A": "b"}, format="json"))[2] == "sandboxes.manage_all"

    # Through a team: billing holds no sandboxes.* permission, the team's grant is enough.
    team = org_services.team_create(org=org, name="ops")
    org_services.team_member_add(team=team, user_ref="bill")
    assert _grant(clients["dev"], sandbox_id, "use", team="ops").status_code == 201
    ran = clients["bill"].post(f"{path}/exec", {"command": "id -un"}, format="json")
    assert ran.status_code == 200 and ran.json()["exitCode"] == 0, ran.content

    # `manage`: stop and destroy.
    assert _grant(clients["dev"], sandbox_id, "manage", user="vic").status_code == 200
    stopped = vic.post(f"{path}/stop")
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped", stopped.content
    assert vic.delete(path).status_code == 204
    assert Sandbox.objects.get(pk=sandbox_id).status == "destroyed"
