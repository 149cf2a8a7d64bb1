"""Custom roles and teams: a member's permissions are their role's united with their teams'."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.orgs import selectors, services
from apps.orgs.models import Membership
from apps.orgs.permissions import BUILTIN_ROLES

pytestmark = pytest.mark.django_db


def _session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def acme(owner):
    org = services.org_create(user=owner, name="Acme", slug="acme")
    users = {}
    for name, role in (("ada", "admin"), ("dev", "developer"), ("vic", "viewer")):
        users[name] = get_user_model().objects.create_user(username=name, password="pw")
        services.member_add(org=org, user_ref=name, role=role)
    return org, users


def _permissions(client) -> set[str]:
    return set(client.get("/api/v1/orgs/acme").json()["permissions"])


def test_a_custom_role_grants_its_permissions(acme, owner):
    org, users = acme
    admin = _session(users["ada"])
    roles = admin.get("/api/v1/orgs/acme/roles").json()
    assert [role["name"] for role in roles] == list(BUILTIN_ROLES)
    assert all(role["builtIn"] for role in roles)
    made = admin.post(
        "/api/v1/orgs/acme/roles",
        {"name": "auditor", "description": "reads the log", "permissions": ["audit.read", "sandboxes.read"]},
        format="json",
    )
    assert made.status_code == 201, made.content
    assert made.json() == {
        "name": "auditor", "builtIn": False, "description": "reads the log",
        "permissions": ["audit.read", "sandboxes.read"],
    }  # fmt: skip
    vic = Membership.objects.get(org=org, user=users["vic"])
    assert admin.patch(f"/api/v1/orgs/acme/members/{vic.pk}", {"role": "auditor"}, format="json").json()["role"] == (
        "auditor"
    )
    assert _permissions(_session(users["vic"])) == {"audit.read", "sandboxes.read"}
    # Changing the role changes what its holders may do.
    changed = admin.patch("/api/v1/orgs/acme/roles/auditor", {"permissions": ["audit.read"]}, format="json")
    assert changed.status_code == 200 and changed.json()["permissions"] == ["audit.read"]
    assert _permissions(_session(users["vic"])) == {"audit.read"}
    in_use = admin.delete("/api/v1/orgs/acme/roles/auditor")
    assert in_use.status_code == 409 and in_use.json()["error"]["code"] == "role_in_use"
    admin.patch(f"/api/v1/orgs/acme/members/{vic.pk}", {"role": "viewer"}, format="json")
    assert admin.delete("/api/v1/orgs/acme/roles/auditor").status_code == 204
    assert admin.get("/api/v1/orgs/acme/roles/auditor").json()["error"]["code"] == "role_not_found"


def test_role_rules(acme):
    org, users = acme
    admin = _session(users["ada"])
    builtin = admin.post("/api/v1/orgs/acme/roles", {"name": "owner", "permissions": []}, format="json")
    assert builtin.status_code == 409 and builtin.json()["error"]["code"] == "role_name_taken"
    unknown = admin.post("/api/v1/orgs/acme/roles", {"name": "x", "permissions": ["root"]}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "validation_error"
    # An admin cannot make a role with a permission they lack.
    wider = admin.post("/api/v1/orgs/acme/roles", {"name": "payer", "permissions": ["billing.manage"]}, format="json")
    assert wider.status_code == 403 and wider.json()["error"]["details"]["permission"] == "billing.manage"
    # A developer manages no roles; a viewer reads them.
    refused = _session(users["dev"]).post("/api/v1/orgs/acme/roles", {"name": "x", "permissions": []}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["details"]["permission"] == "members.manage"
    assert _session(users["vic"]).get("/api/v1/orgs/acme/roles").status_code == 200
    with pytest.raises(Exception, match="No such permission"):
        services.role_create(org=org, name="y", permissions=["nope"])


def test_team_members_inherit_the_teams_role(acme, outsider):
    org, users = acme
    admin = _session(users["ada"])
    made = admin.post("/api/v1/orgs/acme/teams", {"name": "platform", "role": "developer"}, format="json")
    assert made.status_code == 201 and made.json() == {
        "name": "platform", "role": "developer", "members": [], "createdAt": made.json()["createdAt"],
    }  # fmt: skip
    assert _permissions(_session(users["vic"])) == BUILTIN_ROLES["viewer"]
    added = admin.post("/api/v1/orgs/acme/teams/platform/members", {"username": "vic"}, format="json")
    assert added.status_code == 201 and added.json()["members"] == ["vic"]
    assert _permissions(_session(users["vic"])) == BUILTIN_ROLES["developer"]
    assert selectors.permissions_of(user=users["vic"], org=org) == BUILTIN_ROLES["developer"]
    # Only members of the org join its teams.
    stranger = admin.post("/api/v1/orgs/acme/teams/platform/members", {"username": "outsider"}, format="json")
    assert stranger.status_code == 404 and stranger.json()["error"]["code"] == "member_not_found"
    taken = admin.post("/api/v1/orgs/acme/teams", {"name": "platform"}, format="json")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "team_name_taken"
    # A team without a role grants nothing; taking the role away takes the permissions away.
    assert admin.patch("/api/v1/orgs/acme/teams/platform", {"role": ""}, format="json").json()["role"] is None
    assert _permissions(_session(users["vic"])) == BUILTIN_ROLES["viewer"]
    admin.patch("/api/v1/orgs/acme/teams/platform", {"role": "developer", "name": "infra"}, format="json")
    assert admin.delete("/api/v1/orgs/acme/teams/infra/members/vic").status_code == 204
    assert _permissions(_session(users["vic"])) == BUILTIN_ROLES["viewer"]
    assert admin.delete("/api/v1/orgs/acme/teams/infra/members/vic").json()["error"]["code"] == "member_not_found"
    assert [team["name"] for team in _session(users["vic"]).get("/api/v1/orgs/acme/teams").json()] == ["infra"]
    assert admin.delete("/api/v1/orgs/acme/teams/infra").status_code == 204
    assert admin.get("/api/v1/orgs/acme/teams/infra").json()["error"]["code"] == "team_not_found"
    assert _session(outsider).get("/api/v1/orgs/acme/teams").status_code == 404


def test_a_member_who_leaves_leaves_their_teams(acme):
    org, users = acme
    team = services.team_create(org=org, name="t", role="admin")
    services.team_member_add(team=team, user_ref="vic")
    services.member_remove(membership=Membership.objects.get(org=org, user=users["vic"]))
    assert not team.members.exists()
    assert selectors.permissions_of(user=users["vic"], org=org) == frozenset()


def test_a_built_in_role_is_read_by_name_and_never_changed(acme, owner):
    client = _session(owner)
    developer = client.get("/api/v1/orgs/acme/roles/developer")
    assert developer.status_code == 200
    assert developer.json() == {
        "name": "developer", "builtIn": True, "description": "",
        "permissions": sorted(BUILTIN_ROLES["developer"]),
    }  # fmt: skip
    for answer in (
        client.patch("/api/v1/orgs/acme/roles/developer", {"permissions": ["sandboxes.read"]}, format="json"),
        client.delete("/api/v1/orgs/acme/roles/owner"),
    ):
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "role_built_in"
    assert client.get("/api/v1/orgs/acme/roles/nope").status_code == 404
