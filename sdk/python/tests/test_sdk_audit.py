"""An organization's audit log through the SDK, sync and async, against the live server: changes
made through the SDK are read back, filtered, paged through their cursors and exported."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import uuid

import pytest
from vibebox_sdk import AsyncVibeBox, AuditEntry, AuditPage, PermissionDeniedError, ValidationError, VibeBox

SCOPES = ["sandboxes:read", "sandboxes:write", "keys:manage", "orgs:manage", "audit:read"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def audited(vb, server):
    """An organization with a few changes made through the SDK: (slug, owner client, owner key id,
    member username)."""
    slug, member = unique("audit"), unique("audited")
    server.create_key(member)
    vb.orgs.create("Audit Test", slug=slug)
    key = vb.keys.create("audit owner", org=slug, scopes=SCOPES)
    owner = VibeBox(api_key=key.key, base_url=server.url)
    owner.orgs.roles(slug).create("auditor", permissions=["audit.read"])
    owner.orgs.teams(slug).create("platform", role="developer")
    added = owner.orgs.members(slug).add(member, role="viewer")
    owner.orgs.teams(slug).add_member("platform", member)
    owner.orgs.members(slug).update(added.id, role="auditor")
    yield slug, owner, key.id, member
    # A member holding a custom role keeps the organization from being deleted (409 org_not_empty,
    # a server bug reported with this work): give them a built-in one first.
    owner.orgs.members(slug).update(added.id, role="viewer")
    owner.orgs.delete(slug)
    owner.close()


def test_audit_log_reads_back_filters_and_pages(audited, server):
    slug, owner, key_id, _ = audited
    entries = list(owner.orgs.audit_log(slug))
    assert all(isinstance(e, AuditEntry) for e in entries)
    seqs = [e.seq for e in entries]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)  # newest first
    actions = [e.action for e in entries]
    expected = ["member.role_changed", "team.member_added", "member.added", "team.created", "role.created"]
    assert actions[: len(expected)] == expected, actions
    latest = entries[0]
    assert latest.key_id == key_id and latest.source == "api" and latest.changes["role"] == ["viewer", "auditor"]
    assert latest.hash and latest.prev_hash == entries[1].hash  # the chain
    assert latest.raw["targetType"] == latest.target_type == "member"

    teams = list(owner.orgs.audit_log(slug, action="team."))  # a family
    assert [e.action for e in teams] == ["team.member_added", "team.created"]
    assert [e.action for e in owner.orgs.audit_log(slug, action="team.created")] == ["team.created"]
    by_key = list(owner.orgs.audit_log(slug, actor=key_id))
    assert by_key and all(e.key_id == key_id for e in by_key)
    target = next(e for e in entries if e.action == "team.created")
    on_team = list(owner.orgs.audit_log(slug, target=f"{target.target_type}:{target.target_id}"))
    assert target.seq in {e.seq for e in on_team} and all(e.target_id == target.target_id for e in on_team)

    middle = datetime.datetime.fromisoformat(entries[2].created_at.replace("Z", "+00:00"))
    newer = list(owner.orgs.audit_log(slug, since=middle))
    assert {e.seq for e in newer} >= {e.seq for e in entries[:3]}
    assert all(e.seq < entries[2].seq or e.created_at >= entries[2].created_at for e in newer)
    older = list(owner.orgs.audit_log(slug, until=middle.isoformat()))
    assert all(e.seq < entries[2].seq for e in older)
    with pytest.raises(ValidationError) as naive:  # a time without its zone
        list(owner.orgs.audit_log(slug, since="2026-01-01T00:00:00"))
    assert naive.value.status == 400 and "since" in naive.value.details["fields"]

    # Pages of two, followed through their cursors, stopped at five entries.
    log = owner.orgs.audit_log(slug, page_size=2, limit=5)
    assert [e.seq for e in log] == seqs[:5]
    first = log.page()
    assert isinstance(first, AuditPage) and [e.seq for e in first.entries] == seqs[:2]
    assert first.next_cursor and first.previous_cursor is None
    second = log.page(first.next_cursor)
    assert [e.seq for e in second.entries] == seqs[2:4] and second.previous_cursor
    assert [e.seq for e in log.page(second.previous_cursor).entries] == seqs[:2]
    with pytest.raises(ValidationError):
        log.page("not-a-cursor")
    with pytest.raises(ValidationError):
        log.page(limit=501)


def test_audit_log_needs_the_scope_and_the_permission(audited, server, vb):
    slug, owner, _, member = audited
    no_scope = VibeBox(api_key=vb.keys.create("no audit", org=slug, scopes=["sandboxes:read"]).key, base_url=server.url)
    with pytest.raises(PermissionDeniedError) as scope:
        list(no_scope.orgs.audit_log(slug))
    assert scope.value.code == "insufficient_scope"
    no_scope.close()
    with VibeBox(api_key=server.create_key(member), base_url=server.url) as own:
        member_key = own.keys.create("member in audit org", org=slug, scopes=SCOPES).key
    mine = VibeBox(api_key=member_key, base_url=server.url)
    assert [e.action for e in mine.orgs.audit_log(slug, limit=1)] == ["key.created"]  # the role auditor reads it
    owner.orgs.roles(slug).update("auditor", permissions=["sandboxes.read"])
    with pytest.raises(PermissionDeniedError) as permission:
        mine.orgs.audit_log(slug).page()
    assert permission.value.code == "permission_denied" and permission.value.details["permission"] == "audit.read"
    mine.close()


def test_audit_export_jsonl_and_csv(audited, tmp_path):
    slug, owner, _, _ = audited
    seqs = sorted(e.seq for e in owner.orgs.audit_log(slug))
    target = tmp_path / "audit.jsonl"
    written = owner.orgs.export_audit_log(slug, target)
    assert written == target.stat().st_size > 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["seq"] for r in rows] == seqs  # the whole log, oldest first
    assert all(r["hash"] and r["prev"] is not None for r in rows) and rows[1]["prev"] == rows[0]["hash"]

    lines = list(owner.orgs.export_audit_log(slug, format="csv", action="team."))
    parsed = list(csv.DictReader(io.StringIO("\n".join(lines) + "\n")))
    assert lines[0].startswith("seq,at,actor,") and [r["action"] for r in parsed] == [
        "team.created",
        "team.member_added",
    ]

    buffer = io.BytesIO()  # an open binary file works as well as a path
    assert owner.orgs.export_audit_log(slug, buffer, action="role.created") == len(buffer.getvalue())
    assert [json.loads(line)["action"] for line in buffer.getvalue().decode().splitlines()] == ["role.created"]
    with pytest.raises(ValidationError):
        owner.orgs.export_audit_log(slug, tmp_path / "x.xml", format="xml")


def test_async_client_reads_and_exports_the_audit_log(audited, server, tmp_path):
    slug, owner, _, _ = audited
    expected = [e.seq for e in owner.orgs.audit_log(slug)]
    key = owner.keys.create("async audit", org=slug, scopes=SCOPES).key

    async def scenario() -> None:
        async with AsyncVibeBox(api_key=key, base_url=server.url) as acme:
            seen = [e.seq async for e in acme.orgs.audit_log(slug, page_size=3)]
            assert seen[1:] == expected and seen[0] > expected[0]  # and its own key.created, newest
            page = await acme.orgs.audit_log(slug, action="member.").page(limit=1)
            assert [e.action for e in page.entries] == ["member.role_changed"] and page.next_cursor
            assert [e.action async for e in acme.orgs.audit_log(slug, limit=2)] == [
                "key.created",
                "member.role_changed",
            ]
            lines = [line async for line in acme.orgs.export_audit_log(slug, action="team.")]
            assert [json.loads(line)["action"] for line in lines] == ["team.created", "team.member_added"]
            written = await acme.orgs.export_audit_log(slug, tmp_path / "audit.csv", format="csv")
            assert written == (tmp_path / "audit.csv").stat().st_size
            assert len((tmp_path / "audit.csv").read_text().splitlines()) == len(seen) + 1  # and the header

    asyncio.run(scenario())
