"""Dashboard pages beyond the sandbox list: API keys, templates, usage, agent activity and runs,
and the git and Claude tabs (owner works, outsider 404, anonymous to sign in, bad input)."""

import pytest
from django.test import Client

from apps.agents.models import AgentRun
from apps.keys.models import ApiKey, ApiKeyUsage
from apps.keys.services import api_key_create


def _signin_redirect(response):
    return response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_anonymous_is_sent_to_sign_in(db):
    client = Client()
    for path in ("/keys/", "/keys/key_x/usage", "/templates/", "/usage/", "/activity/", "/activity/runs/run_x"):
        assert _signin_redirect(client.get(path)), path
    for path in ("/keys/new", "/keys/key_x/revoke", "/keys/key_x/rotate"):
        assert _signin_redirect(client.post(path)), path
    assert ApiKey.objects.count() == 0


# ---- API keys ----


def test_keys_page_lists_only_own_keys(browser, owner, outsider):
    mine, _ = api_key_create(user=owner, name="mine")
    theirs, _ = api_key_create(user=outsider, name="theirs")
    page = browser.get("/keys/")
    assert page.status_code == 200
    assert mine.display.encode() in page.content and b'id="key-name"' in page.content
    assert b'id="key-create"' in page.content and f'data-revoke="{mine.id}"'.encode() in page.content
    assert theirs.display.encode() not in page.content and b"theirs" not in page.content
    assert b'id="new-key"' not in page.content


def test_create_key_shows_it_once(browser, owner):
    response = browser.post("/keys/new", {"name": "ci", "scopes": ["sandboxes:read", "execute"], "expires": "7d"})
    assert response.status_code == 200
    key = ApiKey.objects.get(user=owner, name="ci")
    assert key.scopes == ["sandboxes:read", "execute"] and key.expires_at is not None
    secret = response.context["secret"]
    assert secret.startswith("vb_live_") and f'id="new-key" class="secret">{secret}<'.encode() in response.content
    assert secret.encode() not in browser.get("/keys/").content
    from apps.keys.selectors import api_key_authenticate

    assert api_key_authenticate(secret=secret) == key


def test_create_key_bad_input_changes_nothing(browser, owner):
    for body, message in (
        ({"name": "", "scopes": ["execute"]}, b"Give the key a name"),
        ({"name": "x", "scopes": []}, b"Choose at least one scope"),
        ({"name": "x", "scopes": ["root"]}, b"unknown scope"),
        ({"name": "x", "scopes": ["execute"], "expires": "soon"}, b"invalid duration"),
        ({"name": "x" * 101, "scopes": ["execute"]}, b"at most 100"),
    ):
        response = browser.post("/keys/new", body)
        assert response.status_code == 200 and message in response.content, body
        assert b'id="new-key"' not in response.content
    assert ApiKey.objects.count() == 0
    assert browser.get("/keys/new").status_code == 405


def test_revoke_rotate_and_usage(browser, outsider_browser, owner):
    key, _ = api_key_create(user=owner, name="old")
    ApiKeyUsage.objects.create(key=key, day=key.created_at.date(), requests=7)
    for path in (f"/keys/{key.id}/revoke", f"/keys/{key.id}/rotate"):
        assert outsider_browser.post(path).status_code == 404
    assert outsider_browser.get(f"/keys/{key.id}/usage").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None and key.expires_at is None

    usage = browser.get(f"/keys/{key.id}/usage")
    assert usage.status_code == 200 and b"Total requests: <strong>7</strong>" in usage.content
    partial = browser.get(f"/keys/{key.id}/usage?partial=1", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b"7" in partial.content
    assert browser.get("/keys/key_nope/usage").status_code == 404

    rotated = browser.post(f"/keys/{key.id}/rotate")
    assert rotated.status_code == 200 and b'id="new-key"' in rotated.content
    new = ApiKey.objects.get(rotated_from=key)
    key.refresh_from_db()
    assert new.name == "old" and key.expires_at is not None

    response = browser.post(f"/keys/{new.id}/revoke")
    assert response.status_code == 302 and response["Location"] == "/keys/"
    new.refresh_from_db()
    assert new.revoked_at is not None
    assert f'data-revoke="{new.id}"'.encode() not in browser.get("/keys/").content
    again = browser.post(f"/keys/{new.id}/rotate", follow=True)
    assert b"Only an active key can be rotated" in again.content
    assert ApiKey.objects.filter(rotated_from=new).count() == 0


def test_key_forms_need_csrf(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post("/keys/new", {"name": "x", "scopes": ["execute"]}).status_code == 403
    assert ApiKey.objects.count() == 0


# ---- templates and usage ----


def test_templates_page(browser, templates):
    page = browser.get("/templates/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="template-python-3.13"' in text and 'id="template-node-22-claude-code"' in text
    assert "claude-code" in text and "node-20-claude-code" in text and "3000/tcp" in text and "agent" in text


def test_usage_page(browser, outsider_browser, create_sandbox):
    from apps.sandboxes.models import Execution, Sandbox

    sandbox = Sandbox.objects.get(pk=create_sandbox()["id"])
    Execution.objects.create(sandbox=sandbox, kind="exec", command="true", status="completed", duration_ms=2500)
    page = browser.get("/usage/")
    assert page.status_code == 200
    assert page.context["total_sandboxes"] == 1 and page.context["total_seconds"] == 2.5
    assert b'id="usage-chart"' in page.content and b'id="usage-data"' in page.content
    assert b"chart.umd.js" in page.content and len(page.context["rows"]) == 30
    other = outsider_browser.get("/usage/")
    assert other.context["total_sandboxes"] == 0 and other.context["total_seconds"] == 0


# ---- agent activity and runs ----


def test_activity_page_and_runs(browser, outsider_browser, owner, outsider):
    from apps.agents import runs

    run = runs.agent_run_create(owner=owner, name="tests-in-parallel", tasks=[{"name": "a"}, {"name": "b"}])
    other = runs.agent_run_create(owner=outsider, name="not-yours")
    page = browser.get("/activity/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="activity-feed"' in text and "js/activity.js" in text and "tests-in-parallel" in text
    assert "not-yours" not in text and f"/activity/runs/{run.id}" in text
    rows = browser.get("/activity/?partial=runs", HTTP_HX_REQUEST="true")
    assert rows.status_code == 200 and b"<html" not in rows.content and b"tests-in-parallel" in rows.content
    assert b"tests-in-parallel" not in browser.get("/activity/?status=completed").content
    assert b"tests-in-parallel" in browser.get("/activity/?status=running&status=bogus").content

    assert outsider_browser.get(f"/activity/runs/{run.id}").status_code == 404
    assert browser.get(f"/activity/runs/{other.id}").status_code == 404
    assert browser.get("/activity/runs/run_nope").status_code == 404


def test_run_detail_polls_while_running(browser, owner, create_sandbox):
    from apps.agents import runs

    sandbox_id = create_sandbox()["id"]
    run = runs.agent_run_create(owner=owner, name="build", tasks=[{"name": "one"}, {"name": "two"}, {"name": "three"}])
    one, two, _ = runs.agent_run_tasks(run)
    runs.agent_task_update(task=one, status="running", sandbox_id=sandbox_id)
    runs.agent_task_update(task=two, status="running")
    runs.agent_task_update(task=two, status="failed", error="boom: exit 2")

    page = browser.get(f"/activity/runs/{run.id}")
    text = page.content.decode()
    assert page.status_code == 200 and 'hx-trigger="every 2s"' in text
    assert page.context["counts"] == {**page.context["counts"], "pending": 1, "running": 1, "failed": 1}
    assert f'href="/sandboxes/{sandbox_id}/"' in text and "boom: exit 2" in text
    partial = browser.get(f"/activity/runs/{run.id}?partial=run", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b'id="run-body"' in partial.content
    failed = browser.get(f"/activity/runs/{run.id}?status=failed")
    assert [t.name for t in failed.context["tasks"]] == ["two"]

    runs.agent_run_finish(run=AgentRun.objects.get(pk=run.id), status="failed")
    done = browser.get(f"/activity/runs/{run.id}?partial=run", HTTP_HX_REQUEST="true")
    assert b"every 2s" not in done.content and b"status-failed" in done.content


# ---- git tab ----


SETUP_REPO = (
    "set -e; mkdir -p /workspace/repo && cd /workspace/repo && git init -q -b main . "
    "&& git config user.email t@t && git config user.name t && printf 'one\\ntwo\\n' > a.txt "
    "&& git add a.txt && git commit -qm first && printf 'one\\nTWO\\n' > a.txt && echo new > b.txt"
)


@pytest.fixture
def repo_sandbox(create_sandbox, api_client):
    sandbox_id = create_sandbox()["id"]
    result = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": SETUP_REPO}, format="json")
    assert result.status_code == 200 and result.json()["exitCode"] == 0, result.content
    return sandbox_id


def test_git_tab_status_diff_commit(browser, outsider_browser, repo_sandbox):
    url = f"/sandboxes/{repo_sandbox}/git"
    page = browser.get(url + "?path=repo")
    text = page.content.decode()
    assert page.status_code == 200 and 'id="git-branch">main<' in text
    assert "diff-del" in text and "-two" in text and "+TWO" in text and "b.txt" in text and "first" in text
    staged = browser.get(url + "?path=repo&staged=1")
    assert b'id="git-diff-empty"' in staged.content
    partial = browser.get(url + "?path=repo&partial=diff", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b"+TWO" in partial.content
    assert b'id="git-no-repo"' in browser.get(url).content  # nothing at /repo

    assert outsider_browser.get(url).status_code == 404
    assert outsider_browser.post(url + "/commit", {"path": "repo", "message": "x", "all": "on"}).status_code == 404
    assert outsider_browser.post(url + "/push", {"path": "repo"}).status_code == 404

    bad = browser.post(url + "/commit", {"path": "repo", "message": "  ", "all": "on"}, follow=True)
    assert b"Commit failed: message is required" in bad.content
    assert b"+TWO" in browser.get(url + "?path=repo").content  # nothing committed

    done = browser.post(url + "/commit", {"path": "repo", "message": "second", "all": "on"})
    assert done.status_code == 302 and done["Location"] == url + "?path=repo"
    page = browser.get(url + "?path=repo")
    assert b"Committed" in page.content and b'status-running">clean<' in page.content
    again = browser.post(url + "/commit", {"path": "repo", "message": "third"}, follow=True)
    assert b"nothing_to_commit" in again.content
    push = browser.post(url + "/push", {"path": "repo"}, follow=True)
    assert b"Push failed" in push.content
    assert browser.get(url + "/commit").status_code == 405


def test_git_and_claude_anonymous(db):
    client = Client()
    for path in ("git", "claude"):
        assert _signin_redirect(client.get(f"/sandboxes/sbx_x/{path}"))
    for path in ("git/commit", "git/push", "claude/enable", "claude/ask", "claude/approve", "claude/reject"):
        assert _signin_redirect(client.post(f"/sandboxes/sbx_x/{path}"))


# ---- Claude tab ----


def test_side_by_side_diff():
    from apps.dashboard.sandbox_dev import side_by_side

    text = "diff --git a/x b/x\nindex 1..2\n--- a/x\n+++ b/x\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n+C\n c\n"
    (file,) = side_by_side(text)
    assert file["name"] == "x"
    rows = file["rows"][1:]
    assert [(r["left"] or {}).get("text") for r in rows] == ["a", "b", None, "c"]
    assert [(r["right"] or {}).get("text") for r in rows] == ["a", "B", "C", "c"]
    assert rows[3]["left"]["no"] == 3 and rows[3]["right"]["no"] == 4


def test_claude_tab(browser, outsider_browser, create_sandbox):
    from apps.agents.models import ClaudeAsk, ClaudeSetup

    python = create_sandbox()["id"]
    assert browser.get(f"/sandboxes/{python}/claude").status_code == 404
    assert f"/sandboxes/{python}/claude".encode() not in browser.get(f"/sandboxes/{python}/").content

    sandbox_id = create_sandbox(template="node-22-claude-code")["id"]
    url = f"/sandboxes/{sandbox_id}/claude"
    assert f'href="{url}"'.encode() in browser.get(f"/sandboxes/{sandbox_id}/").content
    page = browser.get(url)
    assert page.status_code == 200 and b'id="claude-enable-button"' in page.content
    assert outsider_browser.get(url).status_code == 404
    assert outsider_browser.post(url + "/enable").status_code == 404
    assert outsider_browser.post(url + "/ask", {"prompt": "hi"}).status_code == 404
    assert outsider_browser.post(url + "/approve").status_code == 404
    assert ClaudeSetup.objects.count() == 0

    not_enabled = browser.post(url + "/ask", {"prompt": "hi"}, follow=True)
    assert b"claude_not_enabled" in not_enabled.content and ClaudeAsk.objects.count() == 0

    enabled = browser.post(url + "/enable", follow=True)
    assert b"Claude Code" in enabled.content and b"enabled" in enabled.content
    assert ClaudeSetup.objects.filter(sandbox_id=sandbox_id).exists()
    text = enabled.content.decode()
    assert 'id="claude-feed"' in text and 'id="claude-prompt"' in text and "js/claude.js" in text
    assert 'id="claude-no-changes"' in text and 'id="claude-messages"' in text

    empty = browser.post(url + "/ask", {"prompt": "   "}, follow=True)
    assert b"Write a prompt first" in empty.content and ClaudeAsk.objects.count() == 0
    assert browser.post(url + "/ask", {"prompt": "hi", "session": "nope"}).status_code == 404
    nothing = browser.post(url + "/approve", follow=True)
    assert b"Could not approve" in nothing.content
    for partial in ("changes", "conversation"):
        response = browser.get(f"{url}?partial={partial}", HTTP_HX_REQUEST="true")
        assert response.status_code == 200 and b"<html" not in response.content
    assert browser.get(url + "?session=nope").status_code == 404
