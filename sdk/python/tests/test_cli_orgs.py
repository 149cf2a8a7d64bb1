"""`vibebox orgs` and `vibebox members`: the real console script against the live test server."""

from __future__ import annotations

import json
import uuid

from conftest import cli


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_orgs_list_shows_the_keys_organization(cli_env):
    listed = cli(cli_env, "orgs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (own,) = json.loads(listed.stdout)
    assert own["personal"] is True and own["role"] == "owner" and listed.stderr == ""
    table = cli(cli_env, "orgs", "list")
    assert "SLUG" in table.stdout and own["slug"] in table.stdout
    shown = json.loads(cli(cli_env, "orgs", "show", own["slug"], "--json").stdout)
    assert shown["slug"] == own["slug"] and "members.manage" in shown["permissions"]
    members = json.loads(cli(cli_env, "members", "list", "--json").stdout)  # --org defaults to the key's
    assert [m["role"] for m in members] == ["owner"]
    missing = cli(cli_env, "orgs", "show", unique("no-such-org"))
    assert missing.returncode == 3 and "(org_not_found)" in missing.stderr and missing.stdout == ""


def test_orgs_and_members_from_create_to_delete(cli_env, server):
    slug = unique("cli-org")
    member = unique("cli-member")
    server.create_key(member)  # the user to add
    created = cli(cli_env, "orgs", "create", "CLI Org", "--slug", slug, "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["slug"] == slug
    assert f"--org {slug}" in created.stderr  # the hint: manage it with a key made in it

    key = cli(cli_env, "keys", "create", "cli org admin", "--org", slug, "--json")
    assert key.returncode == 0, key.stderr
    assert json.loads(key.stdout)["org"] == slug
    env = {**cli_env, "VIBEBOX_API_KEY": json.loads(key.stdout)["key"]}
    try:
        added = cli(env, "members", "add", member, "--role", "developer", "--org", slug, "--json")
        assert added.returncode == 0, added.stderr
        assert (json.loads(added.stdout)["username"], json.loads(added.stdout)["role"]) == (member, "developer")
        assert cli(env, "members", "add", unique("nobody"), "--role", "viewer").returncode == 3
        twice = cli(env, "members", "add", member, "--role", "viewer")
        assert twice.returncode == 1 and "(already_member)" in twice.stderr

        changed = cli(env, "members", "set-role", member, "admin", "--json")
        assert changed.returncode == 0, changed.stderr
        assert json.loads(changed.stdout)["role"] == "admin"
        table = cli(env, "members", "list")
        assert member in table.stdout and "admin" in table.stdout and "owner" in table.stdout
        owner = next(m for m in json.loads(cli(env, "members", "list", "--json").stdout) if m["role"] == "owner")
        last = cli(env, "members", "set-role", str(owner["id"]), "viewer")
        assert last.returncode == 1 and "(last_owner)" in last.stderr and last.stdout == ""

        removed = cli(env, "members", "remove", member, "--org", slug)
        assert removed.returncode == 0 and f"removed {member}" in removed.stdout
        gone = cli(env, "members", "remove", member)
        assert gone.returncode == 3 and "(member_not_found)" in gone.stderr

        renamed = cli(env, "orgs", "rename", slug, "CLI Org Renamed", "--json")
        assert renamed.returncode == 0 and json.loads(renamed.stdout)["name"] == "CLI Org Renamed"
        assert cli(env, "orgs", "rename", slug).returncode == 2  # nothing to change
        assert cli(env, "orgs", "delete", slug).returncode == 2  # no terminal, no --yes
    finally:
        deleted = cli(env, "orgs", "delete", slug, "--yes", "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {"slug": slug, "deleted": True}
    assert cli(env, "orgs", "list").returncode == 4  # its keys were deleted with it


def test_roles_and_teams_from_create_to_delete(cli_env, server):
    slug = unique("cli-roles")
    member = unique("cli-holder")
    server.create_key(member)
    assert cli(cli_env, "orgs", "create", "CLI Roles", "--slug", slug).returncode == 0
    key = json.loads(cli(cli_env, "keys", "create", "cli roles admin", "--org", slug, "--json").stdout)["key"]
    env = {**cli_env, "VIBEBOX_API_KEY": key}
    try:
        listed = cli(env, "roles", "list", "--json")  # --org defaults to the key's organization
        assert listed.returncode == 0, listed.stderr
        assert [(r["name"], r["builtIn"]) for r in json.loads(listed.stdout)][:2] == [("owner", True), ("admin", True)]
        created = cli(
            env, "roles", "create", "deployer", "--permissions", "sandboxes.read, sandboxes.create",
            "--description", "CI", "--org", slug, "--json",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert json.loads(created.stdout) == {
            "name": "deployer",
            "builtIn": False,
            "description": "CI",
            "permissions": ["sandboxes.create", "sandboxes.read"],
        }
        table = cli(env, "roles", "list")
        rows = [row.split() for row in table.stdout.splitlines()]
        assert rows[0] == ["NAME", "BUILT-IN", "DESCRIPTION", "PERMISSIONS"] and rows[1][:3] == ["owner", "yes", "-"]
        assert rows[-1] == ["deployer", "no", "CI", "sandboxes.create,", "sandboxes.read"]
        shown = cli(env, "roles", "show", "deployer")
        assert shown.returncode == 0 and "deployer" in shown.stdout
        taken = cli(env, "roles", "create", "deployer", "--permissions", "sandboxes.read")
        assert taken.returncode == 1 and "(role_name_taken)" in taken.stderr and taken.stdout == ""
        bad = cli(env, "roles", "create", "wizard", "--permissions", "sandboxes.fly")
        assert bad.returncode == 1 and "(validation_error)" in bad.stderr and "sandboxes.fly" in bad.stderr
        assert cli(env, "roles", "show", "no-such-role").returncode == 3
        assert cli(env, "roles", "update", "deployer").returncode == 2  # nothing to change
        updated = cli(env, "roles", "update", "deployer", "--permissions", "sandboxes.read", "--json")
        assert updated.returncode == 0, updated.stderr
        assert json.loads(updated.stdout)["permissions"] == ["sandboxes.read"]
        assert cli(env, "members", "add", member, "--role", "deployer").returncode == 0

        team = cli(env, "teams", "create", "platform", "--role", "developer", "--json")
        assert team.returncode == 0, team.stderr
        assert {k: v for k, v in json.loads(team.stdout).items() if k != "createdAt"} == {
            "name": "platform",
            "role": "developer",
            "members": [],
        }
        again = cli(env, "teams", "create", "platform")
        assert again.returncode == 1 and "(team_name_taken)" in again.stderr
        added = cli(env, "teams", "add-member", "platform", member, "--json")
        assert added.returncode == 0, added.stderr
        assert json.loads(added.stdout)["members"] == [member]
        stranger = cli(env, "teams", "add-member", "platform", unique("nobody"))
        assert stranger.returncode == 3 and "(user_not_found)" in stranger.stderr
        table = cli(env, "teams", "list")
        assert table.stdout.splitlines()[0].split() == ["NAME", "ROLE", "MEMBERS", "CREATED"]
        assert [row.split()[:3] for row in table.stdout.splitlines()[1:]] == [["platform", "developer", member]]
        renamed = cli(env, "teams", "update", "platform", "--name", "infra", "--no-role", "--json")
        assert renamed.returncode == 0, renamed.stderr
        assert (json.loads(renamed.stdout)["name"], json.loads(renamed.stdout)["role"]) == ("infra", None)
        assert cli(env, "teams", "update", "infra").returncode == 2  # nothing to change
        assert cli(env, "teams", "update", "infra", "--role", "viewer", "--no-role").returncode == 2
        assert json.loads(cli(env, "teams", "update", "infra", "--role", "deployer", "--json").stdout)["role"] == (
            "deployer"
        )
        missing = cli(env, "teams", "show", "platform")
        assert missing.returncode == 3 and "(team_not_found)" in missing.stderr

        in_use = cli(env, "roles", "delete", "deployer")
        assert in_use.returncode == 1 and "(role_in_use)" in in_use.stderr
        removed = cli(env, "teams", "remove-member", "infra", member, "--json")
        assert removed.returncode == 0, removed.stderr
        assert json.loads(removed.stdout) == {"org": slug, "team": "infra", "username": member, "removed": True}
        gone = cli(env, "teams", "remove-member", "infra", member)
        assert gone.returncode == 3 and "(member_not_found)" in gone.stderr
        deleted = cli(env, "teams", "delete", "infra")
        assert deleted.returncode == 0 and f"deleted team infra of {slug}" in deleted.stdout
        assert json.loads(cli(env, "teams", "list", "--json").stdout) == []
        assert cli(env, "members", "set-role", member, "viewer").returncode == 0
        role_gone = cli(env, "roles", "delete", "deployer", "--json")
        assert role_gone.returncode == 0, role_gone.stderr
        assert json.loads(role_gone.stdout) == {"org": slug, "name": "deployer", "deleted": True}
        assert cli(env, "roles", "delete", "deployer").returncode == 3
    finally:
        deleted_org = cli(env, "orgs", "delete", slug, "--yes")
    assert deleted_org.returncode == 0, deleted_org.stderr
