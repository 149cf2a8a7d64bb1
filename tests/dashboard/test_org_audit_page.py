"""The dashboard's audit log page (`/org/audit/`) through the Django test client and the real
database: newest first, filters (actor, action family, target, since, until), keyset pages
("Load more" by htmx and as plain links), the filtered log as CSV and JSON lines downloads (the
API's export), and the audit.read permission (a viewer gets a 403 page, and no tab)."""

import csv
import io
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.audit import context as audit_context
from apps.audit import services as audit
from apps.audit.models import AuditEntry
from apps.audit.selectors import entry_list
from apps.orgs import services as org_services
from tests.conftest import streamed_body

pytestmark = pytest.mark.django_db


def _user(username: str):
    return get_user_model().objects.create_user(username=username, email=f"{username}@example.com")


def _page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _seqs(page: str) -> list[int]:
    return [int(seq) for seq in re.findall(r'data-seq="(\d+)"', page)]


def _download(response) -> str:
    assert response.status_code == 200, response.status_code
    return streamed_body(response).decode()


@pytest.fixture
def acme(owner, browser):
    """Acme (owner acts in it), with entries by alice through the API with a key from one address,
    and by the dashboard's owner, on two sandboxes and a member."""
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    assert browser.post("/orgs/switch", {"org": "acme"}).status_code == 302
    alice = _user("alice")
    org_services.member_add(org=org, user_ref="alice", role="developer")
    with audit_context.acting(source="api", user=alice, key_id="key_alice1", ip="10.0.0.7", user_agent="sdk/1"):
        for n in (1, 2):
            audit.record(
                "sandbox.created", org_id=org.pk, target_type="sandbox", target_id=f"sbx_{n}", changes={"name": f"s{n}"}
            )
        audit.record(
            "sandbox.updated",
            org_id=org.pk,
            target_type="sandbox",
            target_id="sbx_1",
            changes={"timeout": [600, 3600], "password": "hunter2"},
        )
        audit.record("command.executed", org_id=org.pk, target_type="sandbox", target_id="sbx_2",
                     changes={"command": "echo hi"})  # fmt: skip
    with audit_context.acting(source="dashboard", user=owner, ip="192.0.2.1"):
        audit.record("member.role_changed", org_id=org.pk, target_type="member", target_id="7",
                     changes={"role": ["developer", "viewer"]})  # fmt: skip
    return org


def _entries(org, **filters) -> list[AuditEntry]:
    return list(entry_list(org_id=org.pk, **filters))


def test_the_owner_sees_the_log_newest_first_with_every_column(browser, acme):
    page = _page(browser.get("/org/"))
    assert 'href="/org/audit/"' in page and ">Audit log<" in page  # the tab, for audit.read
    page = _page(browser.get("/org/audit/"))
    assert 'aria-current="page">Audit log<' in page
    all_seqs = [entry.seq for entry in _entries(acme)]
    assert _seqs(page) == all_seqs and all_seqs == sorted(all_seqs, reverse=True) and len(all_seqs) >= 7
    row = page[page.index('data-action="sandbox.updated"') :]
    row = row[: row.index("</tr>")]
    for cell in ("alice", "<code>key_alice1</code>", "api", "sandbox <code>sbx_1</code>", "10.0.0.7"):
        assert cell in row, cell
    assert "timeout: 600 → 3600" in row and "password: [redacted]" in row and "hunter2" not in page
    row = page[page.index('data-action="member.role_changed"') :]
    row = row[: row.index("</tr>")]
    assert "role: developer → viewer" in row and "dashboard" in row and "192.0.2.1" in row
    # The action families present are the filter's choices.
    for family in ("sandbox.", "command.", "member.", "org."):
        assert f'<option value="{family}"' in page, family
    assert 'id="audit-more"' not in page and 'data-export="csv"' in page and 'data-export="jsonl"' in page


def test_filters_by_actor_action_family_target_and_time(browser, acme):
    page = _page(browser.get("/org/audit/", {"actor": "alice"}))
    assert _seqs(page) == [entry.seq for entry in _entries(acme, actor="alice")] and len(_seqs(page)) == 4
    assert 'value="alice"' in page  # the form keeps the filter
    # A key id is an actor too.
    assert _seqs(_page(browser.get("/org/audit/", {"actor": "key_alice1"}))) == _seqs(page)

    page = _page(browser.get("/org/audit/", {"action": "sandbox."}))
    actions = re.findall(r'data-action="([^"]+)"', page)
    assert actions == ["sandbox.updated", "sandbox.created", "sandbox.created"]
    assert '<option value="sandbox." selected>' in page
    page = _page(browser.get("/org/audit/", {"action": "sandbox.created"}))  # an exact action, from a link
    assert re.findall(r'data-action="([^"]+)"', page) == ["sandbox.created", "sandbox.created"]

    page = _page(browser.get("/org/audit/", {"target": "sandbox:sbx_2"}))
    assert re.findall(r'data-action="([^"]+)"', page) == ["command.executed", "sandbox.created"]
    page = _page(browser.get("/org/audit/", {"target": "sbx_1", "actor": "alice", "action": "sandbox."}))
    assert re.findall(r'data-action="([^"]+)"', page) == ["sandbox.updated", "sandbox.created"]
    page = _page(browser.get("/org/audit/", {"actor": "nobody"}))
    assert _seqs(page) == [] and "No entries match these filters." in page

    # Since (inclusive) and until (exclusive), with a zone or without one (UTC, a datetime-local field).
    middle = next(entry for entry in _entries(acme) if entry.action == "sandbox.updated")
    page = _page(browser.get("/org/audit/", {"since": middle.created_at.isoformat()}))
    assert _seqs(page) == [entry.seq for entry in _entries(acme) if entry.seq >= middle.seq]
    page = _page(browser.get("/org/audit/", {"until": middle.created_at.isoformat()}))
    assert _seqs(page) == [entry.seq for entry in _entries(acme) if entry.seq < middle.seq]
    assert _seqs(_page(browser.get("/org/audit/", {"since": "2000-01-01T00:00"}))) == _seqs(
        _page(browser.get("/org/audit/"))
    )
    assert _seqs(_page(browser.get("/org/audit/", {"since": "2999-01-01T00:00:00"}))) == []
    # A time that is none: said on the page, the filter left out.
    page = _page(browser.get("/org/audit/", {"since": "yesterday", "actor": "alice"}))
    assert 'id="audit-filter-errors"' in page and "Since is a time like" in page and len(_seqs(page)) == 4


def test_pages_by_seq_with_load_more_and_plain_links(browser, acme):
    with audit_context.acting(source="api", user=None):
        for n in range(60):
            audit.record("file.written", org_id=acme.pk, target_type="sandbox", target_id="sbx_1",
                         changes={"path": f"/workspace/{n}"})  # fmt: skip
    everything = [entry.seq for entry in _entries(acme)]
    page = _page(browser.get("/org/audit/", {"limit": "25"}))
    assert _seqs(page) == everything[:25] and 'id="audit-more"' in page
    next_query = re.search(r'data-next="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert f"before={everything[24]}" in next_query

    # htmx: only the next rows and a new "load more" row, to append.
    seen = _seqs(page)
    while next_query:
        response = browser.get(f"/org/audit/?{next_query}&partial=rows", HTTP_HX_REQUEST="true")
        part = _page(response)
        assert "<html" not in part and 'id="audit-filters"' not in part
        seen += _seqs(part)
        found = re.search(r'data-next="([^"]+)"', part)
        next_query = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == everything  # every entry once, newest first

    # Without htmx, the same link is a page of its own, with a way back to the newest.
    page = _page(browser.get("/org/audit/", {"limit": "25", "before": str(everything[24])}))
    assert _seqs(page) == everything[25:50] and 'id="audit-newest"' in page
    # Filters carry over to the next page.
    page = _page(browser.get("/org/audit/", {"action": "file.", "limit": "50"}))
    assert len(_seqs(page)) == 50 and "action=file." in re.search(r'data-next="([^"]+)"', page).group(1)
    assert browser.get("/org/audit/", {"before": "abc"}).status_code == 404


def test_export_downloads_the_filtered_rows(browser, acme):
    page = _page(browser.get("/org/audit/", {"action": "sandbox."}))
    link = re.search(r'href="([^"]+)" data-export="csv"', page).group(1).replace("&amp;", "&")
    assert link == "/org/audit/export?action=sandbox.&format=csv"
    response = browser.get(link)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-acme.csv"'
    rows = list(csv.DictReader(io.StringIO(_download(response))))
    expected = sorted(_entries(acme, action="sandbox."), key=lambda entry: entry.seq)
    assert [int(row["seq"]) for row in rows] == [entry.seq for entry in expected]  # oldest first
    assert [row["action"] for row in rows] == ["sandbox.created", "sandbox.created", "sandbox.updated"]
    assert rows[0]["hash"] == expected[0].hash and rows[0]["keyId"] == "key_alice1"

    response = browser.get("/org/audit/export", {"actor": "alice", "target": "sbx_2", "format": "jsonl"})
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    lines = [json.loads(line) for line in _download(response).splitlines()]
    assert [(line["action"], line["targetId"]) for line in lines] == [
        ("sandbox.created", "sbx_2"),
        ("command.executed", "sbx_2"),
    ]
    assert all(line["actor"] == "alice" and len(line["hash"]) == 64 for line in lines)

    # Unfiltered: the whole log, as the API exports it.
    whole = [json.loads(line) for line in _download(browser.get("/org/audit/export", {"format": "jsonl"})).splitlines()]
    assert [line["seq"] for line in whole] == sorted(entry.seq for entry in _entries(acme))
    assert browser.get("/org/audit/export", {"format": "xml"}).status_code == 404
    assert browser.get("/org/audit/export", {"format": "csv", "until": "soon"}).status_code == 400


def test_a_viewer_gets_a_403_page_and_no_tab(owner, acme):
    vic = _user("vic")
    org_services.member_add(org=acme, user_ref="vic", role="viewer")
    client = Client()
    client.force_login(vic)
    client.post("/orgs/switch", {"org": "acme"})
    assert 'href="/org/audit/"' not in _page(client.get("/org/"))
    for path in ("/org/audit/", "/org/audit/export?format=csv"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"audit.read" in response.content, path
    # A custom role with audit.read reads it.
    org_services.role_create(org=acme, name="auditor", permissions=["audit.read"])
    membership = acme.memberships.get(user=vic)
    org_services.member_update(membership=membership, role="auditor")
    assert _seqs(_page(client.get("/org/audit/")))


def test_anonymous_is_sent_to_sign_in_and_another_organizations_log_is_not_shown(browser, owner, acme):
    for path in ("/org/audit/", "/org/audit/export?format=csv"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
    zed = _user("zed")
    other = org_services.org_create(user=zed, name="Other", slug="other")
    with audit_context.acting(source="api", user=zed):
        audit.record("sandbox.created", org_id=other.pk, target_type="sandbox", target_id="sbx_theirs")
    assert "sbx_theirs" not in _page(browser.get("/org/audit/"))
    assert "sbx_theirs" not in _download(browser.get("/org/audit/export", {"format": "jsonl"}))
