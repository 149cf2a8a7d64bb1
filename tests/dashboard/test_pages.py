"""Dashboard pages beyond the sandbox list: API keys, templates, usage, agent activity and runs,
and the git and Claude tabs (owner works, outsider 404, anonymous to sign in, bad input)."""

from django.test import Client

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
        assert response.status_code == 400 and message in response.content, body
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
    assert 'id="template-python-3"' in text and 'id="template-node-22-claude-code"' in text
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

    runs.agent_run_finish(run=runs.agent_run_get(owner=owner, run_id=run.id), status="failed")
    done = browser.get(f"/activity/runs/{run.id}?partial=run", HTTP_HX_REQUEST="true")
    assert b"every 2s" not in done.content and b"status-failed" in done.content
