"""PATCH …/claude/status (the sandbox's Claude setup: collaboration mode, the asks' default model and
permission mode, whose Anthropic key pays) and the `human` mode's refusal of asks, through the REST
API on container-less rows (what runs Claude is tests/agents/test_claude_modes_e2e.py's)."""

import pytest
from django.contrib.auth import get_user_model

from apps.agents import asks
from apps.agents.models import ChangeSet, ClaudeAsk, ClaudeSession, ClaudeSetup
from apps.audit.models import AuditEntry
from apps.keys.scopes import ALL_SCOPES, SANDBOXES_READ
from apps.orgs import services as org_services
from tests.conftest import sandbox_row
from tests.graphql.test_mutations import ok, refused
from vibebox import crypto

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(owner, templates):
    return sandbox_row(owner, templates["node-22-claude-code"], name="claude-row")


@pytest.fixture
def setup(sandbox):
    return ClaudeSetup.objects.create(sandbox=sandbox, version="2.1", home="/home/agent", token_hash="a" * 64)


def _path(sandbox) -> str:
    return f"/api/v1/sandboxes/{sandbox.id}/claude/status"


def _code(response) -> str | None:
    return response.json().get("error", {}).get("code")


def test_owner_changes_mode_defaults_and_key_each_change_audited(api_client, sandbox, setup):
    body = {"mode": "autonomous", "model": "claude-haiku-4-5", "permissionMode": "plan"}
    changed = api_client.patch(_path(sandbox), body, format="json")
    assert changed.status_code == 200, changed.content
    data = changed.json()
    assert (data["mode"], data["model"], data["permissionMode"]) == ("autonomous", "claude-haiku-4-5", "plan")
    assert data["effectiveModel"] == "claude-haiku-4-5" and data["effectivePermissionMode"] == "plan"
    assert data["ownKey"] is False and data["mcpServers"] == []
    setup.refresh_from_db()
    assert (setup.mode, setup.model, setup.permission_mode) == ("autonomous", "claude-haiku-4-5", "plan")
    entry = AuditEntry.objects.filter(action="claude.updated").get()
    assert entry.target_id == sandbox.id
    assert entry.changes == {
        "mode": ["assist", "autonomous"],
        "model": [None, "claude-haiku-4-5"],
        "permissionMode": [None, "plan"],
    }

    # Only the fields given change; an own key is stored encrypted and never written to the log.
    secret = "sk-ant-own-" + "k" * 30
    own = api_client.patch(_path(sandbox), {"anthropicApiKey": secret}, format="json")
    assert own.status_code == 200 and own.json()["ownKey"] is True and own.json()["mode"] == "autonomous"
    assert "anthropicApiKey" not in own.json() and secret not in own.content.decode()
    setup.refresh_from_db()
    assert crypto.decrypt(setup.upstream_key) == secret and setup.model == "claude-haiku-4-5"
    last = AuditEntry.objects.filter(action="claude.updated").order_by("-seq").first()
    assert last.changes == {"modelKey": ["operator", "own"]} and secret not in str(last.changes)

    # null / "" go back to the template's defaults and the operator's key.
    defaults = {"model": None, "permissionMode": "", "anthropicApiKey": None}
    back = api_client.patch(_path(sandbox), defaults, format="json")
    assert back.status_code == 200, back.content
    template = sandbox.template.claude or {}
    assert back.json()["model"] is None and back.json()["ownKey"] is False
    assert back.json()["effectiveModel"] == template.get("model")
    # The same values again change nothing and write no entry.
    count = AuditEntry.objects.filter(action="claude.updated").count()
    assert api_client.patch(_path(sandbox), {"mode": "autonomous"}, format="json").status_code == 200
    assert AuditEntry.objects.filter(action="claude.updated").count() == count


def test_bad_input_is_4xx_and_changes_nothing(api_client, sandbox, setup):
    for body, code in (
        ({"mode": "robot"}, "validation_error"),
        ({"permissionMode": "yolo"}, "validation_error"),
        ({"model": "x" * 101}, "validation_error"),
        ({"mcp": True}, "unknown_field"),
    ):
        response = api_client.patch(_path(sandbox), body, format="json")
        assert response.status_code == 400 and _code(response) == code, (body, response.content)
    setup.refresh_from_db()
    assert (setup.mode, setup.model, setup.permission_mode) == ("assist", "", "")
    assert not AuditEntry.objects.filter(action="claude.updated").exists()


def test_not_enabled_is_409(api_client, sandbox):
    response = api_client.patch(_path(sandbox), {"mode": "human"}, format="json")
    assert response.status_code == 409 and _code(response) == "claude_not_enabled"


def test_tenancy_scopes_and_permissions(api_client, outsider_client, client_for, owner, make_key, sandbox, setup):
    # Another organization's sandbox: 404, for reading and writing alike.
    for method in ("get", "patch"):
        response = getattr(outsider_client, method)(_path(sandbox), {"mode": "human"}, format="json")
        assert response.status_code == 404 and _code(response) == "sandbox_not_found"
    # Anonymous: 401.
    from rest_framework.test import APIClient

    assert APIClient().patch(_path(sandbox), {"mode": "human"}, format="json").status_code == 401
    # A key without sandboxes:write: 403 naming the scope.
    reader = client_for(owner, [SANDBOXES_READ])
    response = reader.patch(_path(sandbox), {"mode": "human"}, format="json")
    assert response.status_code == 403 and _code(response) == "insufficient_scope", response.content
    assert "sandboxes:write" in response.content.decode()
    # A viewer of the sandbox's organization reads the setup but may not change it: 403 naming
    # the permission its role lacks.
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    shared = sandbox_row(owner, sandbox.template, org=org, name="shared")
    ClaudeSetup.objects.create(sandbox=shared, version="2.1", home="/home/agent", token_hash="b" * 64)
    get_user_model().objects.create_user(username="vic", email="vic@example.com")
    org_services.member_add(org=org, user_ref="vic", role="viewer")
    vic = client_for(get_user_model().objects.get(username="vic"), ALL_SCOPES, org=org)
    assert vic.get(_path(shared)).json()["mode"] == "assist"
    denied = vic.patch(_path(shared), {"mode": "human"}, format="json")
    assert denied.status_code == 403 and _code(denied) == "permission_denied", denied.content
    assert denied.json()["error"]["details"]["permission"] == "sandboxes.exec"
    assert ClaudeSetup.objects.get(sandbox=shared).mode == "assist"


def test_human_mode_refuses_asks_through_rest(api_client, sandbox, setup):
    assert api_client.patch(_path(sandbox), {"mode": "human"}, format="json").status_code == 200
    asked = api_client.post(f"/api/v1/sandboxes/{sandbox.id}/claude/ask", {"prompt": "hi"}, format="json")
    assert asked.status_code == 409 and _code(asked) == "claude_disabled_by_mode", asked.content
    assert asked.json()["error"]["details"] == {"sandbox": sandbox.id, "mode": "human"}
    assert not ClaudeAsk.objects.filter(sandbox=sandbox).exists()
    assert not sandbox.claude_sessions.exists()


def test_autonomous_leaves_a_change_set_pending_when_it_cannot_apply_it(sandbox, setup):
    """The branches the e2e test does not reach: earlier pending change sets (made in assist mode)
    keep the new one waiting with them, and a failed apply leaves it pending; assist never applies."""
    session = ClaudeSession.objects.create(id="s-auto", sandbox=sandbox, cwd="/home/agent/wt", review=True)

    def change(n):
        ask = ClaudeAsk.objects.create(session=session, sandbox=sandbox, prompt=f"p{n}", status="completed")
        return ask, ChangeSet.objects.create(session=session, ask=ask, base_commit="a" * 40, head_commit="b" * 40)

    ask1, first = change(1)
    asks._apply_if_autonomous(ask1, session, sandbox, first)  # assist: nothing happens
    assert ChangeSet.objects.get(pk=first.pk).status == "pending"
    ClaudeSetup.objects.filter(pk=setup.pk).update(mode="autonomous")
    ask2, second = change(2)
    asks._apply_if_autonomous(ask2, session, sandbox, second)  # the first still waits for a person
    assert set(ChangeSet.objects.values_list("status", flat=True)) == {"pending"}
    first.delete()
    # No container behind this row: the merge fails, and the change set stays pending.
    asks._apply_if_autonomous(ask2, session, sandbox, second)
    assert ChangeSet.objects.get(pk=second.pk).status == "pending"
    assert not AuditEntry.objects.filter(action="claude.changes_approved").exists()


CONFIGURE = """mutation($id: ID!, $input: ConfigureClaudeInput!) {
  configureClaude(sandboxId: $id, input: $input) { mode model permissionMode effectiveModel ownKey }
}"""


def test_graphql_configure_claude_is_the_same_write(api_client, outsider_client, client_for, owner, sandbox, setup):
    """GraphQL's configureClaude goes through the REST view's function: same checks, same audit entry."""
    data = ok(api_client, CONFIGURE, id=sandbox.id, input={"mode": "human", "model": "claude-haiku-4-5"})
    assert data["configureClaude"] == {
        "mode": "human",
        "model": "claude-haiku-4-5",
        "permissionMode": None,
        "effectiveModel": "claude-haiku-4-5",
        "ownKey": False,
    }
    setup.refresh_from_db()
    assert (setup.mode, setup.model) == ("human", "claude-haiku-4-5")
    assert AuditEntry.objects.filter(action="claude.updated", target_id=sandbox.id).count() == 1
    # REST's refusals: a mode that is none, a key without the scope, another organization's sandbox.
    assert refused(api_client, CONFIGURE, "validation_error", id=sandbox.id, input={"mode": "chaos"})
    narrow = refused(client_for(owner, [SANDBOXES_READ]), CONFIGURE, "insufficient_scope", id=sandbox.id, input={})
    assert narrow["extensions"]["status"] == 403
    gone = refused(outsider_client, CONFIGURE, "sandbox_not_found", id=sandbox.id, input={"mode": "assist"})
    assert gone["extensions"]["status"] == 404
    setup.refresh_from_db()
    assert setup.mode == "human"
