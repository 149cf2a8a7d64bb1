"""Claude Code auto-start (issue 29 item 3, spec 2.1): a template's `claude: {autoStart: true, ...}`
(or the spec's `autoStart: [claude-code]`) has Claude enabled when the sandbox is created, through
the real create path, with the creating key's rights; node-20-claude-code is the spec's YAML.
The spec's other template keys (`baseImage`, `preInstalled`, `ports`) are honoured or refused."""

import json

import pytest
from django.test import override_settings

from apps.agents.models import ClaudeAsk, ClaudeSetup
from apps.keys.models import ApiKey
from apps.keys.scopes import EXECUTE, SANDBOXES_READ, SANDBOXES_WRITE
from apps.marketplace import spec as checks
from apps.marketplace.catalog import built_in_templates
from apps.marketplace.models import Template
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox, Status
from tests.waiting import wait_for
from vibebox import exceptions as errors

SPEC_TEMPLATE = "node-20-claude-code"


def run(client, sandbox_id: str, command: str) -> dict:
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_node_20_claude_code_is_the_specs_yaml(api_client, templates):
    body = api_client.get(f"/api/v1/templates/{SPEC_TEMPLATE}").json()
    assert body["name"] == SPEC_TEMPLATE and body["aliases"] == []
    assert body["claude"] == {"autoStart": True, "permissions": {"mode": "acceptEdits"}, "mcpServers": {"vibebox": {}}}
    assert body["defaultEnv"] == {"NODE_ENV": "development", "CLAUDE_CODE_ENABLED": "true"}
    assert {"claude-code", "nodejs", "npm", "git"} <= set(body["preInstalled"])  # the spec's list form, merged
    assert body["ports"] == [{"container": 3000, "protocol": "tcp", "description": "Application port"}]
    # The Node 22 template keeps Claude off until asked (POST …/claude/enable).
    assert api_client.get("/api/v1/templates/node-22-claude-code").json()["claude"] == {}


def test_a_sandbox_of_it_has_claude_enabled_at_create_with_the_callers_rights(
    owner, client_for, create_sandbox, templates
):
    # The creating key has no `execute`: the MCP key Claude's tools act with has none either.
    caller = client_for(owner, [SANDBOXES_READ, SANDBOXES_WRITE], test=True, name="narrow creator")
    created = create_sandbox(client=caller, template=SPEC_TEMPLATE, timeout="1h")
    assert created["status"] == "running"
    sandbox = Sandbox.objects.get(pk=created["id"])
    setup = ClaudeSetup.objects.get(sandbox=sandbox)
    assert setup.mcp is True and setup.api_key.name == "narrow creator" and setup.version.startswith("2.")
    [mcp_key] = ApiKey.objects.filter(sandbox_id=sandbox.id, revoked_at__isnull=True)
    assert mcp_key.scopes == [SANDBOXES_READ, SANDBOXES_WRITE] and EXECUTE not in mcp_key.scopes
    assert mcp_key.is_test and mcp_key.expires_at == sandbox.expires_at

    status = caller.get(f"/api/v1/sandboxes/{sandbox.id}/claude/status").json()
    assert status["enabled"] is True and status["mcp"] is True
    # The sandbox holds a gateway token, the spec's environment, and VibeBox's MCP server config.
    owner_client = client_for(owner)
    env = run(owner_client, sandbox.id, "printenv ANTHROPIC_API_KEY CLAUDE_CODE_ENABLED NODE_ENV")["stdout"].split()
    assert env[0].startswith("vbgw_") and env[1:] == ["true", "development"]
    config = json.loads(run(owner_client, sandbox.id, "cat ~/.vibebox/mcp.json")["stdout"])
    assert config["mcpServers"]["vibebox"]["url"].endswith("/mcp")
    assert run(owner_client, sandbox.id, "claude --version")["exitCode"] == 0

    # Enabling again is still allowed (200: it was enabled at create).
    again = caller.post(f"/api/v1/sandboxes/{sandbox.id}/claude/enable", {"mcp": True}, format="json")
    assert again.status_code == 200, again.content


def test_a_sandbox_created_stopped_gets_claude_at_its_first_start_only(owner, client_for, create_sandbox, templates):
    caller = client_for(owner, [SANDBOXES_READ, SANDBOXES_WRITE], test=True, name="stopped creator")
    created = create_sandbox(client=caller, template=SPEC_TEMPLATE, timeout="1h", autoStart=False)
    assert created["status"] == "stopped"
    assert not ClaudeSetup.objects.filter(sandbox_id=created["id"]).exists()  # nothing runs to enable it in

    started = caller.post(f"/api/v1/sandboxes/{created['id']}/start")
    assert started.status_code == 200, started.content
    setup = ClaudeSetup.objects.get(sandbox_id=created["id"])
    assert setup.mcp is True and setup.api_key.name == "stopped creator"  # the creating key's rights
    assert caller.get(f"/api/v1/sandboxes/{created['id']}/claude/status").json()["enabled"] is True

    # Set up by hand afterwards, it stays so across a stop and a start: only the first start finishes the create.
    changed = caller.patch(
        f"/api/v1/sandboxes/{created['id']}/claude/status", {"mode": "human", "model": "claude-custom"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert caller.post(f"/api/v1/sandboxes/{created['id']}/stop").status_code == 200
    assert caller.post(f"/api/v1/sandboxes/{created['id']}/start").status_code == 200
    status = caller.get(f"/api/v1/sandboxes/{created['id']}/claude/status").json()
    assert (status["mode"], status["model"]) == ("human", "claude-custom")
    assert ClaudeSetup.objects.filter(sandbox_id=created["id"]).get().pk == setup.pk


@pytest.mark.django_db(transaction=True)  # the ask runs in a thread of its own, on its own connection
def test_asks_take_the_templates_model_and_permissions_unless_they_say_otherwise(api_client, templates):
    spec = templates[SPEC_TEMPLATE]
    Template.objects.create(
        name="claude-planner",
        display_name="Claude that plans",
        image=spec.image,
        user=spec.user,
        workdir=spec.workdir,
        languages=spec.languages,
        claude={"autoStart": True, "model": "claude-test-model", "permissions": {"mode": "plan", "allow": ["Read"]}},
    )
    created = api_client.post("/api/v1/sandboxes", {"template": "claude-planner"}, format="json")
    assert created.status_code == 201, created.content
    sandbox_id = created.json()["id"]
    try:
        setup = ClaudeSetup.objects.get(sandbox_id=sandbox_id)
        assert setup.mcp is False  # no `vibebox` in its mcpServers
        base = f"/api/v1/sandboxes/{sandbox_id}/claude"
        for body, expected in [
            ({}, {"model": "claude-test-model", "permissionMode": "plan", "allowedTools": ["Read"]}),
            (
                {"model": "other-model", "permissionMode": "acceptEdits", "allowedTools": []},
                {"model": "other-model", "permissionMode": "acceptEdits", "allowedTools": []},
            ),
        ]:
            started = api_client.post(f"{base}/ask", {"prompt": "hello", "review": False, **body}, format="json")
            assert started.status_code == 202, started.content
            ask_id = started.json()["askId"]
            options = ClaudeAsk.objects.get(pk=ask_id).options
            assert {key: options[key] for key in expected} == expected
            # No model gateway runs here: the ask is stopped, and ends, before the next.
            api_client.post(f"{base}/asks/{ask_id}/cancel")
            wait_for(
                lambda ask_id=ask_id: ClaudeAsk.objects.get(pk=ask_id).status != "running",
                timeout=120,
                what="the ask to end",
            )
    finally:
        assert api_client.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code == 204


def test_a_template_that_auto_starts_claude_without_having_it_refuses_the_create(owner, api_client, templates):
    """Nothing half-made: the create answers Claude's error and leaves no live sandbox."""
    python = templates["python-3.13"]
    Template.objects.create(
        name="python-autostart",
        display_name="python with a wrong claude",
        image=python.image,
        user=python.user,
        workdir=python.workdir,
        languages=python.languages,
        claude={"autoStart": True},
    )
    response = api_client.post("/api/v1/sandboxes", {"template": "python-autostart"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "claude_unavailable"
    assert not Sandbox.objects.filter(template__name="python-autostart").exclude(status=Status.DESTROYED).exists()
    assert not ClaudeSetup.objects.exists()


SUBMISSION = """
name: team-claude
version: "1.0.0"
description: a template with Claude
smoke: "true"
"""


@pytest.mark.parametrize(
    "extra,field,needle",
    [
        ('baseImage: "vibebox/node-20-claude-code:latest"', "baseImage", "built from its Dockerfile"),
        ("autoStart: [jupyter]", "autoStart", "only claude-code"),
        ("claude: {autoStart: yes-please}", "claude", "true or false"),
        ("claude: {permissions: yolo}", "claude", "one of acceptEdits"),
        ("claude: {mcpServers: {remote: {url: 'https://x.example/mcp'}}}", "claude", "remote servers"),
        ("claude: {sessions: 3}", "claude", "unknown key"),
        ("ports: [{container: 3000, protocol: udp}]", "ports", "only tcp"),
        ("preInstalled: [{git: latest, npm: latest}]", "preInstalled", "one-entry mappings"),
    ],
)
def test_submissions_refuse_the_spec_keys_they_cannot_honour(owner, extra, field, needle):
    with pytest.raises(errors.InvalidTemplateYaml) as caught:
        checks.validate_spec(SUBMISSION + extra, org=personal_org_ensure(user=owner), visibility="private")
    problems = caught.value.details["fields"][field]
    assert needle in problems[0]["message"], problems


def test_submissions_honour_the_spec_keys(owner):
    accepted = checks.validate_spec(
        SUBMISSION
        + """
autoStart: [claude-code]
claude: {model: claude-sonnet-4-5, permissions: {mode: plan, allow: [Read]}, mcpServers: [vibebox]}
preInstalled:
  - nodejs: "22.x"
  - claude-code: latest
ports:
  - container: 3000
    protocol: tcp
    description: Application port
  - 8080
""",
        org=personal_org_ensure(user=owner),
        visibility="private",
    )
    assert accepted["claude"] == {
        "autoStart": True,
        "model": "claude-sonnet-4-5",
        "permissions": {"mode": "plan", "allow": ["Read"]},
        "mcpServers": {"vibebox": {}},
    }
    assert accepted["preInstalled"] == {"nodejs": "22.x", "claude-code": "latest"}
    assert accepted["ports"] == [3000, 8080]
    assert accepted["portDetails"][0] == {"container": 3000, "protocol": "tcp", "description": "Application port"}


def test_a_built_in_template_with_a_key_it_cannot_honour_stops_the_start(tmp_path, settings):
    for name, extra in [
        ("bad-base", 'baseImage: "debian:latest"'),
        ("bad-start", "autoStart: [vscode]"),
    ]:
        folder = tmp_path / name / name
        folder.mkdir(parents=True)
        (folder / "Dockerfile").write_text("FROM scratch\n")
        (folder / "template.yaml").write_text(f"name: {name}\n{extra}\n")
        with override_settings(VIBEBOX_IMAGES_DIR=tmp_path / name), pytest.raises(ValueError) as caught:
            built_in_templates()
        assert str(folder / "template.yaml") in str(caught.value)
        assert ("built from its Dockerfile" if name == "bad-base" else "only claude-code") in str(caught.value)
