"""The dashboard's Claude parts (docs/dashboard.md, issue 29 item 4): the setup panel and the
collaboration-mode toggle on a sandbox's Claude tab (through the same service as PATCH
…/claude/status), Claude's metrics per sandbox and per organization (a constant number of
queries), and the context inspector. Container-less rows: nothing here runs Claude."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.agents import metrics, selectors
from apps.agents.models import ClaudeAsk, ClaudeEvent, ClaudeSession, ClaudeSetup, ModelUsage
from apps.audit.models import AuditEntry
from apps.keys.actors import SESSION_ORG
from apps.orgs import services as org_services
from tests.conftest import sandbox_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(owner, templates):
    return sandbox_row(owner, templates["node-22-claude-code"], name="claude-row")


@pytest.fixture
def setup(sandbox):
    return ClaudeSetup.objects.create(sandbox=sandbox, version="2.1", home="/home/agent", token_hash="c" * 64)


def _ask(sandbox, session, *, status="completed", days_ago=0, duration=1000, prompt="p") -> ClaudeAsk:
    ask = ClaudeAsk.objects.create(session=session, sandbox=sandbox, prompt=prompt, status=status, duration_ms=duration)
    when = timezone.now() - dt.timedelta(days=days_ago)
    ClaudeAsk.objects.filter(pk=ask.pk).update(started_at=when)
    return ask


def _usage(sandbox, ask, *, days_ago=0, tokens=(100, 50), cost="0.010000"):
    row = ModelUsage.objects.create(
        sandbox=sandbox, ask=ask, model="claude-sonnet-4-5", path="/v1/messages", status=200,
        input_tokens=tokens[0], output_tokens=tokens[1], cost_usd=Decimal(cost),
    )  # fmt: skip
    ModelUsage.objects.filter(pk=row.pk).update(created_at=timezone.now() - dt.timedelta(days=days_ago))


# ---- the setup panel and the mode toggle ----


def test_setup_panel_changes_mode_and_defaults_through_the_service(browser, sandbox, setup):
    url = f"/sandboxes/{sandbox.id}/claude"
    page = browser.get(url).content.decode()
    for marker in (
        'id="claude-setup-form"',
        'id="claude-mode-human"',
        'id="claude-mode-autonomous"',
        'id="claude-model"',
        'id="claude-permission-mode"',
        'id="claude-key-own"',
        "assist mode",
    ):
        assert marker in page, marker  # fmt: skip
    assert 'value="assist" id="claude-mode-assist" checked' in page

    saved = browser.post(
        url + "/setup", {"mode": "autonomous", "model": "claude-haiku-4-5", "permission_mode": "plan", "key": "keep"},
        follow=True,
    )  # fmt: skip
    assert b"Claude setup saved: autonomous mode" in saved.content
    setup.refresh_from_db()
    assert (setup.mode, setup.model, setup.permission_mode, setup.upstream_key) == (
        "autonomous", "claude-haiku-4-5", "plan", ""
    )  # fmt: skip
    entry = AuditEntry.objects.get(action="claude.updated")
    assert entry.changes["mode"] == ["assist", "autonomous"] and entry.source == "dashboard"
    assert 'value="autonomous" id="claude-mode-autonomous" checked' in saved.content.decode()

    own = browser.post(url + "/setup", {"mode": "autonomous", "key": "own", "anthropic_api_key": "sk-ant-mine"})
    assert own.status_code == 302
    setup.refresh_from_db()
    assert setup.upstream_key and setup.model == ""  # the form sends every field: "" is the template's
    assert b"your own key" in browser.get(url).content


def test_setup_panel_bad_input_changes_nothing(browser, sandbox, setup):
    url = f"/sandboxes/{sandbox.id}/claude/setup"
    for body, message in (
        ({"mode": "robot", "key": "keep"}, b"mode is one of"),
        ({"mode": "assist", "permission_mode": "yolo", "key": "keep"}, b"permissionMode is one of"),
        ({"mode": "assist", "key": "own", "anthropic_api_key": " "}, b"Give your Anthropic API key"),
        ({"mode": "assist", "key": "someone-elses"}, b"Choose whose Anthropic key"),
    ):
        response = browser.post(url, body, follow=True)
        assert message in response.content, body
    setup.refresh_from_db()
    assert (setup.mode, setup.permission_mode, setup.upstream_key) == ("assist", "", "")
    assert not AuditEntry.objects.filter(action="claude.updated").exists()
    assert browser.get(url).status_code == 405


def test_human_mode_refuses_the_dashboards_ask(browser, sandbox, setup):
    url = f"/sandboxes/{sandbox.id}/claude"
    browser.post(url + "/setup", {"mode": "human", "key": "keep"})
    assert b'id="claude-ask-human"' in browser.get(url).content  # the form says so; the server refuses anyway
    refused = browser.post(url + "/ask", {"prompt": "hi"}, follow=True)
    assert b"claude_disabled_by_mode" in refused.content
    assert not ClaudeAsk.objects.exists()


def test_tenancy_and_permissions(browser, outsider_browser, owner, sandbox, setup):
    url = f"/sandboxes/{sandbox.id}/claude"
    assert outsider_browser.get(url).status_code == 404
    assert outsider_browser.post(url + "/setup", {"mode": "human", "key": "keep"}).status_code == 404
    assert Client().post(url + "/setup", {"mode": "human"}).status_code == 302  # to sign in
    # A viewer of the organization sees the tab but may not change the setup: 403 naming the permission.
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    shared = sandbox_row(owner, sandbox.template, org=org, name="shared")
    ClaudeSetup.objects.create(sandbox=shared, version="2.1", home="/home/agent", token_hash="d" * 64)
    vic = get_user_model().objects.create_user(username="vic", email="vic@example.com")
    org_services.member_add(org=org, user_ref="vic", role="viewer")
    client = Client()
    client.force_login(vic)
    session = client.session
    session[SESSION_ORG] = org.slug  # vic acts in Acme
    session.save()
    assert client.get(f"/sandboxes/{shared.id}/claude").status_code == 200
    denied = client.post(f"/sandboxes/{shared.id}/claude/setup", {"mode": "human", "key": "keep"})
    assert denied.status_code == 403 and b"sandboxes.exec" in denied.content
    assert ClaudeSetup.objects.get(sandbox=shared).mode == "assist"
    assert setup.mode == "assist"


# ---- metrics ----


def test_metrics_per_day_and_totals(owner, sandbox, setup, templates):
    session = ClaudeSession.objects.create(id="s-metrics", sandbox=sandbox, cwd="/workspace")
    today = [_ask(sandbox, session, status="completed", duration=1000, prompt=str(i)) for i in range(2)]
    ClaudeAsk.objects.filter(pk=today[1].pk).update(status="failed", duration_ms=3000)
    running = _ask(sandbox, session, status="running", duration=None)
    old = _ask(sandbox, session, status="completed", days_ago=3, duration=500)
    too_old = _ask(sandbox, session, status="completed", days_ago=40)
    for ask in (today[0], today[1], running):
        _usage(sandbox, ask)
    _usage(sandbox, old, days_ago=3, tokens=(10, 5), cost="0.001000")
    _usage(sandbox, too_old, days_ago=40)
    # Another sandbox's records are not counted.
    other = sandbox_row(owner, templates["node-22-claude-code"], name="other")
    other_session = ClaudeSession.objects.create(id="s-other", sandbox=other, cwd="/workspace")
    _usage(other, _ask(other, other_session))

    found = metrics.claude_metrics(sandboxes=[sandbox.pk])
    assert len(found["days"]) == metrics.DAYS and found["days"][-1]["day"] == timezone.now().date()
    last, three = found["days"][-1], found["days"][-4]
    assert (last["asks"], last["ended"], last["completed"], last["success_rate"]) == (3, 2, 1, 0.5)
    assert last["avg_duration_ms"] == 2000  # the running ask has no duration and is not ended
    assert (last["requests"], last["input_tokens"], last["output_tokens"], last["cost_usd"]) == (3, 300, 150, 0.03)
    assert (three["asks"], three["success_rate"], three["input_tokens"]) == (1, 1.0, 10)
    total = found["total"]
    assert (total["asks"], total["ended"], total["completed"]) == (4, 3, 2)
    assert total["success_rate"] == round(2 / 3, 4) and total["avg_duration_ms"] == round(4500 / 3)
    assert (total["input_tokens"], total["output_tokens"], total["cost_usd"]) == (310, 155, 0.031)
    assert sum(day["asks"] for day in found["days"]) == 4  # 40 days ago is outside the window


def _count_queries(function) -> int:
    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured.captured_queries)


def test_metrics_take_a_constant_number_of_queries(browser, owner, sandbox, setup, templates):
    session = ClaudeSession.objects.create(id="s-q", sandbox=sandbox, cwd="/workspace")
    _usage(sandbox, _ask(sandbox, session))
    few_selector = _count_queries(lambda: metrics.claude_metrics(sandboxes=[sandbox.pk]))
    few_page = _count_queries(lambda: browser.get("/claude/"))
    for n in range(6):  # more sandboxes, asks and usage on more days
        extra = sandbox_row(owner, templates["node-22-claude-code"], name=f"more-{n}")
        extra_session = ClaudeSession.objects.create(id=f"s-q{n}", sandbox=extra, cwd="/workspace")
        for days_ago in range(4):
            _usage(extra, _ask(extra, extra_session, days_ago=days_ago), days_ago=days_ago)
    assert few_selector == 2
    assert _count_queries(lambda: metrics.claude_metrics(sandboxes=[sandbox.pk])) == few_selector
    assert _count_queries(lambda: browser.get("/claude/")) == few_page
    page = browser.get("/claude/")
    assert page.context["metrics"]["total"]["asks"] == 1 + 6 * 4


def test_org_page_and_sandbox_tab_show_metrics_of_what_the_user_may_see(
    browser, outsider_browser, owner, sandbox, setup
):
    session = ClaudeSession.objects.create(id="s-page", sandbox=sandbox, cwd="/workspace")
    _usage(sandbox, _ask(sandbox, session), tokens=(1234, 567))
    page = browser.get("/claude/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="claude-total-asks">1<' in text and "1234 / 567" in text and 'id="claude-chart"' in text
    assert 'href="/claude/"' in text  # in the menu
    # Another organization's user sees none of it.
    theirs = outsider_browser.get("/claude/")
    assert theirs.status_code == 200 and theirs.context["metrics"]["total"]["asks"] == 0
    assert b"1234 / 567" not in theirs.content
    assert Client().get("/claude/").status_code == 302
    tab = browser.get(f"/sandboxes/{sandbox.id}/claude").content.decode()
    assert 'id="claude-metrics"' in tab and "1234 / 567" in tab


# ---- the context inspector ----


def _events(ask, *events):
    for seq, (kind, data) in enumerate(events, start=1):
        ClaudeEvent.objects.create(ask=ask, seq=seq, type=kind, data=data)


def test_context_inspector_shows_what_claude_saw(browser, sandbox, setup):
    session = ClaudeSession.objects.create(id="s-ctx", sandbox=sandbox, cwd="/workspace", title="ctx")
    ask = _ask(sandbox, session, prompt="Look at the parser")
    long_command = "echo " + "x" * 2000
    _events(
        ask,
        ("init", {"type": "system", "subtype": "init", "model": "claude-sonnet-4-5", "cwd": "/workspace",
                  "permissionMode": "acceptEdits", "tools": ["Read", "Bash", "mcp__vibebox__sandbox_exec"],
                  "mcp_servers": [{"name": "vibebox", "status": "connected"}, "junk"]}),
        ("tool_use", {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "t1", "name": "Read", "input": {"file_path": "/workspace/parser.py"}},
            {"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": long_command}}]}}),
        ("tool_result", {"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "def parse(): ..."},
            {"type": "tool_result", "tool_use_id": "t2", "content": "denied", "is_error": True}]}}),
        ("tool_use", {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "id": "t3", "name": "Read", "input": {"file_path": "/workspace/parser.py"}},
            {"type": "tool_use", "id": "t4", "name": ["hostile"], "input": 7}]}}),
        ("assistant", {"type": "assistant", "message": {"content": [{"type": "text", "text": "The parser is fine."}]}}),
    )  # fmt: skip
    with CaptureQueriesContext(connection) as captured:
        found = selectors.session_context(session)
    assert len(captured.captured_queries) == 1
    assert found["files_read"] == [{"path": "/workspace/parser.py", "times": 2}]
    assert [c["name"] for c in found["tool_calls"]] == ["Read", "Bash", "Read", "['hostile']"]
    bash = found["tool_calls"][1]
    assert bash["truncated"] is True and len(bash["input"]) == selectors.INPUT_PREVIEW and bash["is_error"] is True
    assert found["tool_calls"][0]["is_error"] is False and found["tool_calls"][2]["is_error"] is None
    assert found["tools"] == ["Read", "Bash"] and found["mcp_tools"] == ["mcp__vibebox__sandbox_exec"]
    assert found["mcp_servers"] == [{"name": "vibebox", "status": "connected"}]
    started = (found["model"], found["cwd"], found["permission_mode"])
    assert started == ("claude-sonnet-4-5", "/workspace", "acceptEdits")

    url = f"/sandboxes/{sandbox.id}/claude?session={session.id}"
    text = browser.get(url).content.decode()
    assert 'id="claude-context"' in text and "/workspace/parser.py" in text and "\u00d72" in text
    assert "mcp__vibebox__sandbox_exec" in text and "<code>vibebox</code>" in text and "connected" in text
    assert "…(cut)" in text
    assert "Look at the parser" in text and "The parser is fine." in text  # the conversation, below
    partial = browser.get(url + "&partial=context", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b"parser.py" in partial.content
    assert b"x" * (selectors.INPUT_PREVIEW + 1) not in partial.content  # tool inputs are cut in the inspector
