"""The dashboard in a real browser: Playwright driving Debian's Chromium against a live server
(uvicorn, as `make run` serves it) and the real engine.

On failure, a screenshot of every open page goes to var/test-output/browser/<test>/.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from common import api, live_server  # noqa: E402

from .conftest import CHROMIUM, OUTPUT  # noqa: E402  (the `chromium` and `context` fixtures are there too)

PASSWORD = "browser-pw-" + "x" * 8

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")

SET_PASSWORD = (
    "from django.contrib.auth import get_user_model; u = get_user_model().objects.get(username='{user}');"
    "u.set_password('{password}'); u.save()"
)
FAKE_ROWS = (
    "from apps.sandboxes.models import Sandbox; from apps.marketplace.models import Template;"
    "from django.contrib.auth import get_user_model; u = get_user_model().objects.get(username='{user}');"
    "t = Template.objects.get(name='python-3.13');"
    "from apps.orgs.services import personal_org_ensure; o = personal_org_ensure(user=u);"
    "Sandbox.objects.bulk_create([Sandbox(owner=u, org=o, name=f'listed-{{i:03}}', template=t, image=t.image,"
    " status='stopped', cpu=1, memory=2**30) for i in range({n})])"
)


@pytest.fixture(scope="module")
def server():
    instance = f"web{os.getpid()}"
    # Webhooks to loopback over http, sent only when a test sends them (no Celery worker here).
    webhooks = {"VIBEBOX_WEBHOOK_ALLOW_HTTP": "true", "VIBEBOX_WEBHOOK_ALLOW_PRIVATE": "true"}
    with live_server(instance, VIBEBOX_WEBHOOK_DISPATCH="false", **webhooks) as running:
        running.manage("shell", "-c", SET_PASSWORD.format(user=instance, password=PASSWORD))
        running.user = instance
        yield running


def sign_in(page, server):
    page.goto(f"{server.url}/login/")
    page.get_by_label("User name").fill(server.user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/sandboxes/$"))


def wait_for_created(page, server):
    """Waits for the create to land on the sandbox's page. A cold create waits on the engine,
    whose own deadline is 120 s (docker-py's timeout): wait longer than that, so a stalled engine
    shows up as the form's error, and say what the page and the server saw if it never lands."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_url(re.compile(r"/sandboxes/sbx_\w+/$"), timeout=150_000)
    except PlaywrightTimeout:
        shown = page.locator("main").inner_text(timeout=5_000)[:2000]
        status, listed = api(server.url, server.key, "GET", "/api/v1/sandboxes")
        raise AssertionError(
            f"the create did not land on its page; the page shows:\n{shown}\nthe API lists ({status}): {listed}"
        ) from None


def test_the_dashboard_end_to_end(server, context):
    from playwright.sync_api import expect

    watcher = context.new_page()
    sign_in(watcher, server)
    expect(watcher.get_by_role("heading", name="Sandboxes")).to_be_visible()

    # Create a sandbox from the form in a second tab; the first sees it running without reload.
    page = context.new_page()
    page.goto(f"{server.url}/sandboxes/new")
    page.get_by_label("Template").select_option("python-3.13")
    page.get_by_label("Name").fill("browser-box")
    page.get_by_role("button", name="Create").click()
    wait_for_created(page, server)
    sandbox_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    row = watcher.locator(f"#row-{sandbox_id}")
    expect(row).to_be_visible()
    expect(row.locator(".status")).to_have_text("running")

    # Terminal: type a command, see its output.
    page.get_by_role("link", name="Terminal").click()
    terminal = page.locator("#terminal")
    expect(terminal.locator(".xterm-rows")).to_be_visible()
    terminal.click()
    page.keyboard.type("echo hel''lo\n")
    # xterm's rows are separate elements: inner text has a newline between them.
    expect(terminal.locator(".xterm-rows")).to_contain_text(re.compile(r"^hello$", re.M), use_inner_text=True)

    # Files: upload with the file input, see it listed.
    page.get_by_role("link", name="Files").click()
    page.locator("#file-input").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"uploaded from the browser\n"}]
    )
    expect(page.locator("#file-list")).to_contain_text("notes.txt")

    # Exec: run a snippet.
    page.get_by_role("link", name="Exec").click()
    page.locator("#exec-code").fill("print(6 * 7)")
    language = page.get_by_label("Language")
    if language.count():
        language.select_option("python")
    page.locator("#exec-run").click()
    expect(page.locator("#exec-output")).to_contain_text("42")

    # API keys: create one (shown once), then revoke it.
    page.goto(f"{server.url}/keys/")
    page.locator("#key-name").fill("from-the-browser")
    page.locator("#key-create").click()
    expect(page.locator("#new-key")).to_contain_text("vb_")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="from-the-browser").locator("[data-revoke]").click()
    expect(page.locator("tr", has_text="from-the-browser")).to_contain_text(re.compile("revoked", re.I))

    # Destroy the sandbox from its page; it leaves the live list.
    page.goto(f"{server.url}/sandboxes/{sandbox_id}/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Destroy").click()
    page.wait_for_url(re.compile(r"/sandboxes/$"))
    expect(watcher.locator(f"#row-{sandbox_id}")).to_have_count(0)


def test_every_page_renders_and_the_list_loads_fast(server, context):
    """Each page answers in the browser; the list's load time with 100 sandboxes is reported."""
    page = context.new_page()
    sign_in(page, server)
    server.manage("shell", "-c", FAKE_ROWS.format(user=server.user, n=100))
    timings = []
    for _ in range(5):
        page.goto(f"{server.url}/sandboxes/?status=stopped")
        entry = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
        timing = json.loads(entry)
        timings.append(timing["loadEventEnd"] - timing["responseStart"])
    assert page.locator("tbody#sandbox-rows tr").count() == 100
    timings.sort()
    report = {"sandboxes": 100, "first_byte_to_load_ms_median": round(timings[2], 1), "runs": timings}
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "list-load.json").write_text(json.dumps(report))
    print(f"\nsandbox list with 100 rows: first byte to load event {report['first_byte_to_load_ms_median']} ms")
    for path in ["/templates/", "/keys/", "/usage/", "/activity/"]:
        response = page.goto(f"{server.url}{path}")
        assert response.status == 200, path
    # The daily charts (static/js/daily_chart.js, shared by both pages) are drawn, without a script error.
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    for path, canvas in (("/usage/", "usage-chart"), ("/claude/", "claude-chart")):
        page.goto(f"{server.url}{path}")
        drawn = "(id) => window.Chart.getChart(document.getElementById(id))?.data.datasets.length ?? 0"
        assert page.evaluate(drawn, canvas) == 2, path
    assert errors == []


def test_a_refused_boosted_request_is_reported_not_swallowed(server, context):
    """htmx leaves the page as it was on a 4xx/5xx: the dashboard says what happened instead."""
    from playwright.sync_api import expect

    page = context.new_page()
    sign_in(page, server)
    page.evaluate(
        """() => {
        const link = document.createElement("a");
        link.href = "/sandboxes/sbx_missing/";
        link.id = "missing";
        link.textContent = "a sandbox that does not exist";
        document.getElementById("main").append(link);
        htmx.process(link);
    }"""
    )
    page.locator("#missing").click()
    expect(page.locator("#main .messages .error")).to_contain_text("404")
    assert page.url.endswith("/sandboxes/")  # the page stayed where it was


ADD_USER = "from django.contrib.auth import get_user_model; get_user_model().objects.create_user(username='{user}')"


def test_the_members_page_adds_changes_and_removes_a_member(server, context):
    """A new organization from its form, then a member added, given another role and removed, each
    through the boosted forms; a refusal (the last owner leaving) is a message, the page stays."""
    from playwright.sync_api import expect

    server.manage("shell", "-c", ADD_USER.format(user="member-b"))
    page = context.new_page()
    sign_in(page, server)
    page.get_by_role("link", name="Organization").click()
    expect(page.locator("#personal-note")).to_be_visible()
    page.locator("#org-new").click()
    page.wait_for_url(re.compile(r"/orgs/new$"))
    page.locator("#org-create-name").fill("Browser Org")
    page.locator("#org-create").click()
    expect(page.locator("#org-name")).to_have_text("Browser Org")
    expect(page.locator("#org-switch")).to_have_value("browser-org")

    page.get_by_label("Username or email").fill("member-b")
    page.locator("#member-role").select_option("viewer")
    page.locator("#member-add").click()
    row = page.locator('tr[data-member="member-b"]')
    expect(row).to_be_visible()
    expect(row.locator("select")).to_have_value("viewer")

    row.locator("select").select_option("developer")
    row.get_by_role("button", name="Change the role of member-b").click()
    expect(page.locator(".messages")).to_contain_text("member-b is now developer.")
    expect(page.locator('tr[data-member="member-b"] select')).to_have_value("developer")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('[data-remove="member-b"]').click()
    expect(page.locator(".messages")).to_contain_text("member-b removed from Browser Org")
    expect(page.locator('tr[data-member="member-b"]')).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#org-leave").click()
    expect(page.locator(".messages .error")).to_contain_text("last_owner")
    expect(page.locator("#org-name")).to_have_text("Browser Org")


SEND_WEBHOOK = "from apps.webhooks import delivery; delivery.deliver_webhook('{id}')"


def test_a_webhook_is_added_and_its_test_event_shows_live(server, context):
    """A webhook from the form (the secret shown once), "Send test event", and the delivery log
    turning from pending to retrying without a reload (its endpoint refuses: nothing listens)."""
    import socket

    from playwright.sync_api import expect

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    page = context.new_page()
    sign_in(page, server)
    page.get_by_role("link", name="Organization").click()
    page.get_by_role("link", name="Webhooks").click()
    page.wait_for_url(re.compile(r"/org/webhooks/$"))
    page.locator("#new-url").fill(f"http://127.0.0.1:{port}/hook")
    page.locator('[data-event="sandbox.created"]').check()
    page.locator("#new-webhook-save").click()
    expect(page.locator("#webhook-secret")).to_contain_text("whsec_")
    row = page.locator("#webhook-list tbody tr").first
    webhook_id = row.get_attribute("data-webhook")
    row.get_by_role("link").first.click()
    page.wait_for_url(re.compile(rf"/org/webhooks/{webhook_id}/$"))
    page.locator("#webhook-test").click()
    expect(page.locator("#delivery-list tbody tr[data-status=pending]")).to_have_count(1)
    server.manage("shell", "-c", SEND_WEBHOOK.format(id=webhook_id))
    expect(page.locator("#delivery-list tbody tr[data-status=retrying]")).to_have_count(1)  # polled, no reload


CLAUDE_ROW = (
    "from apps.sandboxes.models import Sandbox; from apps.marketplace.models import Template;"
    "from apps.agents.models import ClaudeSetup; from apps.orgs.services import personal_org_ensure;"
    "from django.contrib.auth import get_user_model; u = get_user_model().objects.get(username='{user}');"
    "t = Template.objects.get(name='node-22-claude-code');"
    "s = Sandbox.objects.create(owner=u, org=personal_org_ensure(user=u), name='claude-panel', template=t,"
    " image=t.image, status='stopped', cpu=1, memory=2**30);"
    "ClaudeSetup.objects.create(sandbox=s, version='2.1', home='/home/agent', token_hash='c' * 64); print(s.id)"
)
CLAUDE_SETUP = (
    "from apps.agents.models import ClaudeSetup; c = ClaudeSetup.objects.get(sandbox_id='{id}');"
    "import json; print(json.dumps([c.mode, c.model, c.permission_mode]))"
)


def test_the_claude_panel_sets_the_mode_model_and_permissions(server, context):
    """The Claude tab's setup panel (issue 29 item 4) in a browser: the choices saved through the
    server, the mode shown, and the ask form closed in human-only mode."""
    from playwright.sync_api import expect

    sandbox_id = server.manage("shell", "-c", CLAUDE_ROW.format(user=server.user)).strip().splitlines()[-1]
    assert sandbox_id.startswith("sbx_"), sandbox_id
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, server)
    page.goto(f"{server.url}/sandboxes/{sandbox_id}/claude")
    expect(page.locator("#claude-mode-badge")).to_have_text("assist mode")
    page.locator("#claude-mode-human").check()
    page.get_by_label("Default model").fill("claude-haiku-4-5")
    page.get_by_label("Default permission mode").select_option("plan")
    page.locator("#claude-setup-save").click()

    expect(page.locator("#claude-mode-badge")).to_have_text("human mode")
    expect(page.locator("#claude-ask-human")).to_be_visible()
    expect(page.locator("#claude-ask")).to_be_disabled()
    expect(page.get_by_label("Default model")).to_have_value("claude-haiku-4-5")
    saved = json.loads(server.manage("shell", "-c", CLAUDE_SETUP.format(id=sandbox_id)).strip().splitlines()[-1])
    assert saved == ["human", "claude-haiku-4-5", "plan"]
    assert errors == []
