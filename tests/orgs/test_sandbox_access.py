"""Sandboxes inside an organization, role by role: another organization's sandbox is a 404, a
missing permission in your own a 403 naming it (docs/api.md, Organizations)."""

import pytest
from django.contrib.auth import get_user_model

from apps.keys.scopes import ALL_SCOPES
from apps.orgs import services
from apps.sandboxes.models import Sandbox
from tests.conftest import _client

pytestmark = pytest.mark.django_db

ROLES = ("owner", "admin", "developer", "viewer", "billing")


@pytest.fixture
def acme(owner, make_key, outsider):
    """Org acme: `owner` and one member per other role, a second developer, each with a key acting in it."""
    org = services.org_create(user=owner, name="Acme", slug="acme")
    users = {"owner": owner}
    for role in (*ROLES[1:], "developer2"):
        users[role] = get_user_model().objects.create_user(username=f"{role}-user")
        services.member_add(org=org, user_ref=users[role].username, role=role.rstrip("2"))
    clients = {name: _client(make_key(user, ALL_SCOPES, org=org)[1]) for name, user in users.items()}
    clients["outsider"] = _client(make_key(outsider, ALL_SCOPES)[1])
    return org, users, clients


def _error(response) -> tuple[int, str, str | None]:
    error = response.json().get("error", {}) if response.content else {}
    return response.status_code, error.get("code"), error.get("details", {}).get("permission")


def test_each_role_reaches_another_members_sandbox_as_its_permissions_say(acme, templates):
    org, users, clients = acme
    theirs = Sandbox.objects.create(
        owner=users["developer"],
        org=org,
        template=templates["python-3"],
        name="theirs",
        status="stopped",
        cpu=1,
        memory=2**30,
    )
    path = f"/api/v1/sandboxes/{theirs.id}"
    expected = {
        # role: (read, manage)
        "owner": (200, 200),
        "admin": (200, 200),
        "developer2": (200, (403, "permission_denied", "sandboxes.manage_all")),
        "viewer": (200, (403, "permission_denied", "sandboxes.manage_all")),
        "billing": ((403, "permission_denied", "sandboxes.read"), (403, "permission_denied", "sandboxes.manage_all")),
        "outsider": ((404, "sandbox_not_found", None), (404, "sandbox_not_found", None)),
    }
    for name, (read, manage) in expected.items():
        client = clients[name]
        got_read = client.get(path)
        got_manage = client.patch(path, {"metadata": {"by": name}}, format="json")
        assert (got_read.status_code if read == 200 else _error(got_read)) == read, name
        assert (got_manage.status_code if manage == 200 else _error(got_manage)) == manage, name
    # The viewer lacks sandboxes.create, so even a sandbox of their own is only theirs to read.
    mine = Sandbox.objects.create(
        owner=users["viewer"], org=org, template=templates["python-3"], name="v", cpu=1, memory=2**30
    )
    assert clients["viewer"].get(f"/api/v1/sandboxes/{mine.id}").status_code == 200
    assert _error(clients["viewer"].delete(f"/api/v1/sandboxes/{mine.id}"))[2] == "sandboxes.create"
    # Lists: the organization's sandboxes with sandboxes.read, else one's own.
    listed = {name: {item["id"] for item in clients[name].get("/api/v1/sandboxes").json()["results"]} for name in ROLES}
    assert listed["viewer"] == listed["owner"] == {theirs.id, mine.id}
    assert listed["billing"] == set()
    assert clients["outsider"].get("/api/v1/sandboxes").json()["count"] == 0
    # Creating needs sandboxes.create.
    refused = clients["billing"].post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert _error(refused) == (403, "permission_denied", "sandboxes.create")


def test_names_resolve_to_ones_own_sandbox_first(acme, templates):
    org, users, clients = acme
    for who in ("developer", "developer2"):
        Sandbox.objects.create(
            owner=users[who], org=org, template=templates["python-3"], name="dev", cpu=1, memory=2**30
        )
    mine = clients["developer"].get("/api/v1/sandboxes/dev").json()
    assert Sandbox.objects.get(pk=mine["id"]).owner == users["developer"]
    ambiguous = clients["admin"].get("/api/v1/sandboxes/dev")
    assert ambiguous.status_code == 409 and ambiguous.json()["error"]["code"] == "sandbox_name_ambiguous"
    assert len(ambiguous.json()["error"]["details"]["sandboxes"]) == 2


def test_commands_run_for_members_who_may_use_the_sandbox(acme, create_sandbox, cleanup_sandbox_ids):
    org, _users, clients = acme
    sandbox = create_sandbox(client=clients["developer"])
    assert Sandbox.objects.get(pk=sandbox["id"]).org == org
    path = f"/api/v1/sandboxes/{sandbox['id']}/exec"
    for name in ("developer", "admin", "owner"):
        done = clients[name].post(path, {"command": ["true"]}, format="json")
        assert done.status_code == 200 and done.json()["exitCode"] == 0, (name, done.content)
    assert _error(clients["developer2"].post(path, {"command": ["true"]}, format="json"))[2] == "sandboxes.manage_all"
    assert _error(clients["viewer"].post(path, {"command": ["true"]}, format="json"))[2] == "sandboxes.exec"
    assert _error(clients["outsider"].post(path, {"command": ["true"]}, format="json"))[1] == "sandbox_not_found"


def test_agent_runs_follow_the_same_rules(acme):
    _org, _users, clients = acme
    made = clients["developer"].post("/api/v1/agent-runs", {"name": "build", "tasks": [{"name": "a"}]}, format="json")
    assert made.status_code == 201, made.content
    run_id = made.json()["id"]
    assert clients["viewer"].get(f"/api/v1/agent-runs/{run_id}").status_code == 200
    assert [item["id"] for item in clients["viewer"].get("/api/v1/agent-runs").json()["results"]] == [run_id]
    assert clients["billing"].get("/api/v1/agent-runs").json()["count"] == 0
    assert _error(clients["billing"].get(f"/api/v1/agent-runs/{run_id}"))[2] == "sandboxes.read"
    assert _error(clients["outsider"].get(f"/api/v1/agent-runs/{run_id}"))[1] == "agent_run_not_found"
    refused = clients["viewer"].post("/api/v1/agent-runs", {"name": "x"}, format="json")
    assert _error(refused) == (403, "permission_denied", "sandboxes.create")
    cancel = {"status": "cancelled"}
    refused = clients["developer2"].patch(f"/api/v1/agent-runs/{run_id}", cancel, format="json")
    assert _error(refused)[2] == "sandboxes.manage_all"
    done = clients["admin"].patch(f"/api/v1/agent-runs/{run_id}", cancel, format="json")
    assert done.status_code == 200 and done.json()["status"] == "cancelled"


def test_keys_manage_lets_admins_see_and_revoke_members_keys(acme, make_key, django_capture_on_commit_callbacks):
    org, users, clients = acme
    dev_key, dev_secret = make_key(users["developer"], org=org, name="dev key")
    everyone = clients["admin"].get("/api/v1/keys?all=true")
    assert everyone.status_code == 200
    listed = {item["id"]: item["user"] for item in everyone.json()}
    assert listed[dev_key.id] == "developer-user" and set(listed.values()) >= {"owner", "viewer-user"}
    assert _error(clients["developer"].get("/api/v1/keys?all=true"))[2] == "keys.manage"
    assert {item["user"] for item in clients["developer"].get("/api/v1/keys").json()} == {"developer-user"}
    # Another member's key: 403 without keys.manage, 404 from another organization.
    assert _error(clients["developer2"].get(f"/api/v1/keys/{dev_key.id}"))[2] == "keys.manage"
    assert _error(clients["outsider"].get(f"/api/v1/keys/{dev_key.id}"))[1] == "key_not_found"
    assert clients["admin"].get(f"/api/v1/keys/{dev_key.id}/usage").status_code == 200
    # Rotating hands out a new secret: only one's own.
    assert _error(clients["admin"].post(f"/api/v1/keys/{dev_key.id}/rotate", {}, format="json"))[1] == "key_not_found"
    with django_capture_on_commit_callbacks(execute=True):
        assert clients["admin"].delete(f"/api/v1/keys/{dev_key.id}").status_code == 204
    assert _error(_client(dev_secret).get("/api/v1/sandboxes"))[1] == "invalid_api_key"


def test_the_all_flag_is_true_or_false(acme):
    _org, _users, clients = acme
    assert clients["admin"].get("/api/v1/keys?all=false").status_code == 200
    for bad in ("all=null", "all=1", "all=true&all=true"):
        refused = clients["admin"].get(f"/api/v1/keys?{bad}")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "validation_error", bad
