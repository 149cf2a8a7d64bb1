"""`vibebox share|grants|unshare`, `vibebox audit [export]` and `vibebox invitations`: the real
console script against the live test server."""

from __future__ import annotations

import csv
import io
import json
import uuid

from conftest import cli
from test_sdk_invitations import invitation_token, set_email
from vibebox_sdk import VibeBox

SCOPES = "sandboxes:read,sandboxes:write,orgs:manage,audit:read"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def org_env(cli_env, slug: str) -> dict[str, str]:
    """A new organization and the environment of a key made in it."""
    created = cli(cli_env, "orgs", "create", "CLI Sharing", "--slug", slug, "--json")
    assert created.returncode == 0, created.stderr
    key = cli(cli_env, "keys", "create", "cli sharing owner", "--org", slug, "--scopes", SCOPES, "--json")
    assert key.returncode == 0, key.stderr
    return {**cli_env, "VIBEBOX_API_KEY": json.loads(key.stdout)["key"]}


def test_share_grants_unshare(cli_env, server):
    slug, member = unique("cli-share"), unique("cli-grantee")
    server.create_key(member)
    env = org_env(cli_env, slug)
    name = unique("shared")
    owner = VibeBox(api_key=env["VIBEBOX_API_KEY"], base_url=server.url)
    box = None
    try:
        assert cli(env, "members", "add", member, "--role", "billing").returncode == 0
        assert cli(env, "teams", "create", "ops").returncode == 0
        box = owner.create("python-3", name=name, auto_start=False)  # grants need no running container

        shared = cli(env, "share", name, "--user", member, "--access", "use", "--json")
        assert shared.returncode == 0, shared.stderr
        grant = json.loads(shared.stdout)
        assert (grant["user"], grant["team"], grant["access"]) == (member, None, "use")
        table = cli(env, "share", name, "--team", "ops", "--access", "read")
        assert table.returncode == 0 and "team ops" in table.stdout and "ACCESS" in table.stdout

        listed = cli(env, "grants", name, "--json")
        assert [(g["user"], g["team"]) for g in json.loads(listed.stdout)] == [(member, None), (None, "ops")]
        rows = cli(env, "grants", name).stdout
        assert f"user {member}" in rows and "team ops" in rows and grant["id"] in rows

        assert cli(env, "share", name, "--access", "read").returncode == 2  # neither --user nor --team
        both = cli(env, "share", name, "--user", member, "--team", "ops", "--access", "read")
        assert both.returncode == 2 and "--user" in both.stderr
        wrong = cli(env, "share", name, "--user", member, "--access", "own")
        assert wrong.returncode == 2
        outsider = cli(env, "share", name, "--user", "outsider", "--access", "read")
        assert outsider.returncode == 3 and "(member_not_found)" in outsider.stderr

        by_id = cli(env, "unshare", name, grant["id"])
        assert by_id.returncode == 0 and f"no longer shared with user {member}" in by_id.stdout
        by_name = cli(env, "unshare", name, "ops", "--json")
        assert by_name.returncode == 0 and json.loads(by_name.stdout)["team"] == "ops"
        missing = cli(env, "unshare", name, grant["id"])
        assert missing.returncode == 3 and "(grant_not_found)" in missing.stderr
        assert json.loads(cli(env, "grants", name, "--json").stdout) == []
    finally:
        if box is not None:
            box.destroy()
        owner.close()
        cli(env, "orgs", "delete", slug, "--yes")


def test_audit_table_filters_and_export(cli_env, tmp_path):
    slug = unique("cli-audit")
    env = org_env(cli_env, slug)
    try:
        for team in ("red", "blue"):
            assert cli(env, "teams", "create", team).returncode == 0
        assert cli(env, "roles", "create", "reader", "--permissions", "sandboxes.read").returncode == 0

        listed = cli(env, "audit", "--json")
        assert listed.returncode == 0, listed.stderr
        entries = json.loads(listed.stdout)
        assert [e["action"] for e in entries[:3]] == ["role.created", "team.created", "team.created"]  # newest first
        seqs = [e["seq"] for e in entries]
        assert seqs == sorted(seqs, reverse=True)
        table = cli(env, "audit", "--org", slug, "--action", "team.")
        assert table.returncode == 0 and "TIME (UTC)" in table.stdout and "role.created" not in table.stdout
        assert table.stdout.count("team.created") == 2 and table.stdout.index('"blue"') < table.stdout.index('"red"')
        one = json.loads(cli(env, "audit", "--limit", "1", "--json").stdout)
        assert [e["seq"] for e in one] == seqs[:1]
        recent = json.loads(cli(env, "audit", "--since", "10m", "--action", "role.created", "--json").stdout)
        assert [e["action"] for e in recent] == ["role.created"]
        assert json.loads(cli(env, "audit", "--until", "1d", "--json").stdout) == []  # nothing before yesterday
        bad = cli(env, "audit", "--since", "yesterday")
        assert bad.returncode == 2 and "--since" in bad.stderr
        naive = cli(env, "audit", "--since", "2026-01-01T00:00:00")
        assert naive.returncode == 1 and "(validation_error)" in naive.stderr

        exported = cli(env, "audit", "export")  # JSON lines to stdout, oldest first
        assert exported.returncode == 0, exported.stderr
        assert [json.loads(line)["seq"] for line in exported.stdout.splitlines()] == sorted(seqs)
        target = tmp_path / "audit.csv"
        to_file = cli(env, "audit", "export", "--format", "csv", "-o", str(target), "--action", "team.")
        assert to_file.returncode == 0 and to_file.stdout == "" and str(target) in to_file.stderr
        rows = list(csv.DictReader(io.StringIO(target.read_text())))
        assert [r["action"] for r in rows] == ["team.created", "team.created"] and all(r["hash"] for r in rows)
        assert cli(env, "audit", "export", "--format", "xml").returncode == 2

        no_scope = cli(cli_env, "keys", "create", "cli no audit", "--org", slug, "--scopes", "sandboxes:read", "--json")
        denied = cli({**cli_env, "VIBEBOX_API_KEY": json.loads(no_scope.stdout)["key"]}, "audit", "--org", slug)
        assert denied.returncode == 4 and "(insufficient_scope)" in denied.stderr
    finally:
        cli(env, "orgs", "delete", slug, "--yes")


def test_invitations_create_resend_revoke_accept(cli_env, server):
    slug, name = unique("cli-invite"), unique("cli-invitee")
    email = f"{name}@example.com"
    invitee_env = {**cli_env, "VIBEBOX_API_KEY": server.create_key(name)}
    set_email(server, name, email)
    env = org_env(cli_env, slug)
    try:
        created = cli(env, "invitations", "create", email, "--role", "developer", "--json")
        assert created.returncode == 0, created.stderr
        invitation = json.loads(created.stdout)
        assert (invitation["email"], invitation["role"], invitation["expired"]) == (email, "developer", False)
        table = cli(env, "invitations", "list", "--org", slug)
        assert table.returncode == 0 and "EXPIRES" in table.stdout and email in table.stdout
        resent = cli(env, "invitations", "resend", email, "--json")  # by email, or by id
        assert resent.returncode == 0 and json.loads(resent.stdout)["id"] == invitation["id"]

        other = json.loads(cli(env, "invitations", "create", f"x-{email}", "--role", "viewer", "--json").stdout)
        revoked = cli(env, "invitations", "revoke", other["id"])
        assert revoked.returncode == 0 and f"revoked {other['id']}" in revoked.stdout
        again = cli(env, "invitations", "revoke", other["id"])
        assert again.returncode == 3 and "(invitation_not_found)" in again.stderr
        assert [i["id"] for i in json.loads(cli(env, "invitations", "list", "--json").stdout)] == [invitation["id"]]

        token = invitation_token(server, invitation["id"])
        mismatch = cli(env, "invitations", "accept", token)  # the owner's key: not the invited address
        assert mismatch.returncode == 4 and "(invitation_email_mismatch)" in mismatch.stderr
        accepted = cli(invitee_env, "invitations", "accept", token)
        assert accepted.returncode == 0, accepted.stderr
        assert slug in accepted.stdout and "developer" in accepted.stdout and f"--org {slug}" in accepted.stderr
        used = cli(invitee_env, "invitations", "accept", token, "--json")
        assert used.returncode == 1 and "(invitation_accepted)" in used.stderr and used.stdout == ""
        members = json.loads(cli(env, "members", "list", "--json").stdout)
        assert {m["username"]: m["role"] for m in members}[name] == "developer"
    finally:
        cli(env, "orgs", "delete", slug, "--yes")
