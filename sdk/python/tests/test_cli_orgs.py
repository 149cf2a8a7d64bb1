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
