"""Every GraphQL mutation through the real /graphql view (DRF's APIClient, API keys), against the real
Docker engine: as the owner (the effect is checked where it happens: the container, the file, the
audit entry, the webhook delivery row), as an outsider (another organization's object: its
`*_not_found`, nothing changed) and with a read-only key (403 `insufficient_scope` naming the scope)."""

import base64

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.keys.models import ApiKey
from apps.orgs import selectors as org_selectors
from apps.orgs import services as org_services
from apps.orgs.models import Invitation, Membership, Organization
from apps.orgs.tokens import invitation_token
from apps.sandboxes.models import Sandbox, SandboxGrant, Snapshot
from apps.webhooks.models import Delivery, Webhook
from tests.agents.conftest import TEMPLATE as CLAUDE_TEMPLATE
from tests.agents.conftest import call, server, stub  # noqa: F401 (fixtures)
from tests.anthropic_stub import text, tool_use
from tests.conftest import sandbox_row
from tests.graphql.conftest import global_id
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db

READ_ONLY = ["sandboxes:read", "templates:read"]


def gql(client, query: str, **variables) -> dict:
    response = client.post("/graphql", {"query": query, "variables": variables}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def ok(client, query: str, **variables) -> dict:
    body = gql(client, query, **variables)
    assert "errors" not in body, body
    return body["data"]


def refused(client, query: str, code: str, **variables) -> dict:
    """The mutation's error (its field null): REST's code in extensions.code."""
    body = gql(client, query, **variables)
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == code, body
    return error


def engine_state(docker_client, sandbox_id: str) -> str:
    return docker_client.api.inspect_container(sandbox_id)["State"]["Status"]


def sh(docker_client, sandbox_id: str, command: str) -> str:
    result = docker_client.containers.get(sandbox_id).exec_run(["sh", "-c", command])
    return result.output.decode()


@pytest.fixture
def readonly_client(owner, client_for):
    return client_for(owner, READ_ONLY)


@pytest.fixture
def graphql_hook(settings):
    """Deliveries are rows the test reads (nothing is sent): no Celery, loopback allowed."""
    settings.VIBEBOX_WEBHOOK_ALLOW_HTTP = True
    settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE = True
    settings.VIBEBOX_WEBHOOK_DISPATCH = False
    return settings


SANDBOX_FIELDS = "id sandboxId name status template metadata resources { cpu memory } network"
CREATE = f"mutation($input: CreateSandboxInput!) {{ createSandbox(input: $input) {{ {SANDBOX_FIELDS} }} }}"
ACTION = "mutation($id: ID!) {{ {name}(id: $id) {{ sandboxId status }} }}"
CREATE_WEBHOOK = """mutation($input: CreateWebhookInput!) {
  createWebhook(input: $input) { webhook { id webhookId url events active filter } secret }
}"""


# ---- sandboxes: lifecycle ----


def test_sandbox_lifecycle(
    api_client, outsider_client, readonly_client, templates, cleanup_sandbox_ids, docker_client, graphql_hook
):
    made = ok(api_client, CREATE_WEBHOOK, input={"url": "http://127.0.0.1:9/hook", "events": ["*"]})["createWebhook"]
    hook = made["webhook"]
    assert made["secret"].startswith("whsec_") and hook["events"] == ["*"]

    created = ok(api_client, CREATE, input={"template": "python-3", "name": "gql-life", "metadata": {"team": "ml"}})
    sandbox = created["createSandbox"]
    sid = sandbox["sandboxId"]
    cleanup_sandbox_ids.append(sid)
    assert sandbox["id"] == global_id("Sandbox", sid)  # the same node as the queries'
    assert sandbox["status"] == "RUNNING" and sandbox["template"] == "python-3.13"
    assert sandbox["metadata"] == {"team": "ml"} and sandbox["resources"]["memory"] == "256m"
    assert engine_state(docker_client, sid) == "running"

    def act(name: str) -> dict:
        return ok(api_client, ACTION.format(name=name), id=sid)[name]

    assert act("stopSandbox")["status"] == "STOPPED" and engine_state(docker_client, sid) == "exited"
    error = refused(api_client, ACTION.format(name="stopSandbox"), "sandbox_state_conflict", id=sid)
    assert error["extensions"]["status"] == 409
    assert act("startSandbox")["status"] == "RUNNING" and engine_state(docker_client, sid) == "running"
    assert act("pauseSandbox")["status"] == "PAUSED" and engine_state(docker_client, sid) == "paused"
    assert act("resumeSandbox")["status"] == "RUNNING" and engine_state(docker_client, sid) == "running"
    started = docker_client.api.inspect_container(sid)["State"]["StartedAt"]
    assert act("restartSandbox")["status"] == "RUNNING"
    assert docker_client.api.inspect_container(sid)["State"]["StartedAt"] != started

    update = (
        "mutation($id: ID!, $input: UpdateSandboxInput!) { updateSandbox(id: $id, input: $input) { name timeout } }"
    )
    updated = ok(api_client, update, id=sid, input={"name": "gql-renamed", "timeout": "2h"})["updateSandbox"]
    assert updated == {"name": "gql-renamed", "timeout": 7200}
    assert Sandbox.objects.get(pk=sid).name == "gql-renamed"
    network = (
        "mutation($id: ID!, $input: NetworkInput!) { setSandboxNetwork(id: $id, input: $input) { internet allow } }"
    )
    policy = ok(api_client, network, id=sid, input={"internet": False, "allow": ["example.com"]})
    assert policy["setSandboxNetwork"] == {"internet": False, "allow": ["example.com"]}

    # having created a sandbox from it, the owner may rate its template (REST's rule)
    rate = 'mutation { rateTemplate(name: "python-3.13", rating: 5, text: "solid") { user rating text } }'
    assert ok(api_client, rate)["rateTemplate"] == {"user": "owner", "rating": 5, "text": "solid"}
    refused(outsider_client, rate, "review_not_allowed")  # never used it
    error = refused(readonly_client, rate, "insufficient_scope")
    assert error["extensions"]["details"]["missing"] == ["templates:submit"]

    destroyed = ok(api_client, "mutation($id: ID!) { destroySandbox(id: $id) { id deleted } }", id=sid)
    assert destroyed["destroySandbox"] == {"id": sid, "deleted": True}
    assert not docker_client.containers.list(all=True, filters={"name": sid})
    assert Sandbox.objects.get(pk=sid).status == "destroyed"

    # the same audit entries and webhook events as REST's
    actions = set(AuditEntry.objects.filter(target_id=sid).values_list("action", flat=True))
    assert {"sandbox.stopped", "sandbox.started", "sandbox.restarted"} <= actions  # pause/resume: events only
    assert {"sandbox.updated", "sandbox.network_changed", "sandbox.destroyed"} <= actions
    sources = set(AuditEntry.objects.filter(target_id=sid).values_list("source", flat=True))
    assert sources == {"api"}, sources  # /graphql is the API, not the dashboard
    events = list(Delivery.objects.filter(webhook_id=hook["webhookId"]).values_list("event", flat=True))
    for event in [
        "sandbox.created",
        "sandbox.started",
        "sandbox.stopped",
        "sandbox.paused",
        "sandbox.resumed",
        "sandbox.destroyed",
    ]:
        assert event in events


def test_create_sandbox_validates_as_rest(api_client, templates):
    error = refused(api_client, CREATE, "validation_error", input={"template": "python-3", "name": "sbx_nope"})
    assert "name" in error["extensions"]["details"]["fields"]
    refused(api_client, CREATE, "unknown_template", input={"template": "no-such-template"})
    refused(api_client, CREATE, "invalid_duration", input={"template": "python-3", "timeout": "soon"})
    assert not Sandbox.objects.exists()


def test_create_sandbox_needs_the_permission_and_the_scope(owner, outsider, make_key, client_for, templates):
    org = org_services.org_create(user=owner, name="Team GQL")
    org_services.member_add(org=org, user_ref="outsider", role="viewer", by=owner)
    viewer = client_for(outsider, org=org)
    error = refused(viewer, CREATE, "permission_denied", input={"template": "python-3"})
    assert error["extensions"]["status"] == 403
    assert error["extensions"]["details"]["permission"] == "sandboxes.create"
    error = refused(client_for(owner, READ_ONLY), CREATE, "insufficient_scope", input={"template": "python-3"})
    assert error["extensions"]["details"]["missing"] == ["sandboxes:write"]
    assert not Sandbox.objects.exists()


def test_anonymous_is_refused(client, templates):
    response = client.post("/graphql", {"query": CREATE, "variables": {"input": {"template": "x"}}}, "application/json")
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "not_authenticated"


# ---- everything on someone else's sandbox, and with a read-only key ----

ON_SANDBOX = [
    # (document, variables beyond $id / $sid, the scope a read-only key lacks)
    (ACTION.format(name="startSandbox"), {}, "sandboxes:write"),
    (ACTION.format(name="stopSandbox"), {}, "sandboxes:write"),
    (ACTION.format(name="restartSandbox"), {}, "sandboxes:write"),
    (ACTION.format(name="pauseSandbox"), {}, "sandboxes:write"),
    (ACTION.format(name="resumeSandbox"), {}, "sandboxes:write"),
    ("mutation($id: ID!) { destroySandbox(id: $id) { id } }", {}, "sandboxes:write"),
    (
        'mutation($id: ID!) { updateSandbox(id: $id, input: {name: "taken-over"}) { id } }',
        {},
        "sandboxes:write",
    ),
    ("mutation($id: ID!) { setSandboxNetwork(id: $id, input: {internet: false}) { internet } }", {}, "sandboxes:write"),
    ('mutation($id: ID!) { exec(sandboxId: $id, input: {command: "touch /tmp/x"}) { exitCode } }', {}, "execute"),
    ('mutation($id: ID!) { startProcess(sandboxId: $id, input: {command: "sleep 1"}) { processId } }', {}, "execute"),
    ('mutation($id: ID!) { killProcess(sandboxId: $id, processId: "p") { running } }', {}, "execute"),
    ('mutation($id: ID!) { execute(sandboxId: $id, input: {code: "print(1)"}) { exitCode } }', {}, "execute"),
    (
        'mutation($id: ID!) { writeFile(sandboxId: $id, path: "owned.txt", content: "x") { path } }',
        {},
        "sandboxes:write",
    ),
    ('mutation($id: ID!) { deleteFile(sandboxId: $id, path: "keep.txt") { path } }', {}, "sandboxes:write"),
    ('mutation($id: ID!) { makeDirectory(sandboxId: $id, path: "d") { path } }', {}, "sandboxes:write"),
    (
        'mutation($id: ID!) { moveFile(sandboxId: $id, source: "keep.txt", destination: "gone.txt") { path } }',
        {},
        "sandboxes:write",
    ),
    (
        'mutation($id: ID!) { setEnv(sandboxId: $id, variables: [{name: "KEEP", value: "no"}]) { name } }',
        {},
        "sandboxes:write",
    ),
    ('mutation($id: ID!) { deleteEnv(sandboxId: $id, name: "KEEP") { name } }', {}, "sandboxes:write"),
    (
        'mutation($id: ID!) { gitClone(sandboxId: $id, input: {url: "http://x/y.git"}) { commit } }',
        {},
        "sandboxes:write",
    ),
    ('mutation($id: ID!) { gitCommit(sandboxId: $id, input: {message: "m"}) { commit } }', {}, "sandboxes:write"),
    ("mutation($id: ID!) { gitPush(sandboxId: $id) { commit } }", {}, "sandboxes:write"),
    ("mutation($id: ID!) { gitPull(sandboxId: $id) { commit } }", {}, "sandboxes:write"),
    ('mutation($id: ID!) { gitCheckout(sandboxId: $id, input: {branch: "b"}) { commit } }', {}, "sandboxes:write"),
    ("mutation($id: ID!) { createSnapshot(sandboxId: $id) { id } }", {}, "sandboxes:write"),
    ('mutation($id: ID!) { restoreSnapshot(sandboxId: $id, snapshotId: "snap_x") { id } }', {}, "sandboxes:write"),
    ("mutation($id: ID!) { enableClaude(sandboxId: $id) { enabled } }", {}, "sandboxes:write"),
    ('mutation($id: ID!) { claudeAsk(sandboxId: $id, input: {prompt: "hi"}) { askId stream } }', {}, "execute"),
    ('mutation($id: ID!) { cancelClaudeAsk(sandboxId: $id, askId: "ask_x") { askId } }', {}, "execute"),
    ("mutation($id: ID!) { approveChanges(sandboxId: $id) { status } }", {}, "execute"),
    ("mutation($id: ID!) { rejectChanges(sandboxId: $id) { status } }", {}, "execute"),
]


def test_another_orgs_sandbox_is_not_found_and_a_read_only_key_lacks_the_scope(
    api_client, outsider_client, readonly_client, create_sandbox, docker_client
):
    sandbox = create_sandbox(template="python-3", name="not-yours", env={"KEEP": "yes"})
    sid = sandbox["id"]
    sh(docker_client, sid, "echo kept > /workspace/keep.txt")
    for document, variables, scope in ON_SANDBOX:
        error = refused(outsider_client, document, "sandbox_not_found", id=sid, **variables)
        assert error["extensions"]["status"] == 404, document
        error = refused(readonly_client, document, "insufficient_scope", id=sid, **variables)
        assert error["extensions"]["details"]["missing"] == [scope], document
    # nothing changed
    row = Sandbox.objects.get(pk=sid)
    assert row.status == "running" and row.name == "not-yours"
    assert engine_state(docker_client, sid) == "running"
    assert sh(docker_client, sid, "cat /workspace/keep.txt; ls /workspace") == "kept\nkeep.txt\n"
    assert sh(docker_client, sid, "test -e /tmp/x && echo ran || echo clean") == "clean\n"
    assert not Snapshot.objects.exists()
    assert not AuditEntry.objects.filter(target_id=sid).exclude(action="sandbox.created").exists()
    # by its Relay global id too
    node_id = global_id("Sandbox", sid)
    refused(outsider_client, ACTION.format(name="stopSandbox"), "sandbox_not_found", id=node_id)
    assert ok(api_client, ACTION.format(name="stopSandbox"), id=node_id)["stopSandbox"]["status"] == "STOPPED"


# ---- commands, files, environment ----

EXEC = (
    "mutation($id: ID!, $input: ExecInput!) { exec(sandboxId: $id, input: $input)"
    " { executionId exitCode stdout stderr status truncated } }"
)


def test_exec_execute_files_and_env(api_client, create_sandbox, docker_client):
    sid = create_sandbox(template="python-3")["id"]

    ran = ok(api_client, EXEC, id=sid, input={"command": "echo out; echo err >&2; exit 3"})["exec"]
    assert (ran["exitCode"], ran["stdout"], ran["stderr"], ran["status"]) == (3, "out\n", "err\n", "failed")
    argv = ok(api_client, EXEC, id=sid, input={"command": ["python3", "-c", "print(6*7)"], "cwd": "/tmp"})["exec"]
    assert argv["stdout"] == "42\n" and argv["exitCode"] == 0
    refused(api_client, EXEC, "validation_error", id=sid, input={"command": ""})
    refused(api_client, EXEC, "invalid_duration", id=sid, input={"command": "true", "timeout": "forever"})

    execute = (
        "mutation($id: ID!, $code: String!) { execute(sandboxId: $id, input:"
        ' {code: $code, language: "python"}) { exitCode stdout language } }'
    )
    done = ok(api_client, execute, id=sid, code="import sys\nprint(sys.version_info[0])")["execute"]
    assert done["exitCode"] == 0 and done["stdout"] == "3\n" and done["language"] == "python"

    write = """mutation($id: ID!, $path: String!, $content: String!, $encoding: FileEncoding!, $mode: String) {
      writeFile(sandboxId: $id, path: $path, content: $content, encoding: $encoding, mode: $mode) { path size mode }
    }"""
    written = ok(api_client, write, id=sid, path="notes/a.txt", content="héllo\n", encoding="UTF8", mode="0600")
    assert written["writeFile"] == {"path": "/workspace/notes/a.txt", "size": 7, "mode": "0600"}
    assert sh(docker_client, sid, "cat /workspace/notes/a.txt") == "héllo\n"
    binary = base64.b64encode(b"\x00\x01\xff").decode()
    ok(api_client, write, id=sid, path="/tmp/bin", content=binary, encoding="BASE64", mode=None)
    assert docker_client.containers.get(sid).exec_run(["od", "-An", "-tx1", "/tmp/bin"]).output.split() == [
        b"00",
        b"01",
        b"ff",
    ]
    refused(api_client, write, "validation_error", id=sid, path="x", content="%%%", encoding="BASE64", mode=None)
    refused(api_client, write, "validation_error", id=sid, path="x", content="x", encoding="UTF8", mode="999")

    mkdir = 'mutation($id: ID!) { makeDirectory(sandboxId: $id, path: "deep/er") { path } }'
    assert ok(api_client, mkdir, id=sid)["makeDirectory"]["path"] == "/workspace/deep/er"
    move = (
        'mutation($id: ID!) { moveFile(sandboxId: $id, source: "notes/a.txt", destination: "deep/er/b.txt") { path } }'
    )
    assert ok(api_client, move, id=sid)["moveFile"]["path"] == "/workspace/deep/er/b.txt"
    assert sh(docker_client, sid, "cat /workspace/deep/er/b.txt; test -e /workspace/notes/a.txt || echo moved") == (
        "héllo\nmoved\n"
    )
    delete = (
        "mutation($id: ID!, $recursive: Boolean!)"
        ' { deleteFile(sandboxId: $id, path: "deep", recursive: $recursive) { path } }'
    )
    refused(api_client, delete, "file_conflict", id=sid, recursive=False)  # a directory needs recursive
    assert ok(api_client, delete, id=sid, recursive=True)["deleteFile"]["path"] == "/workspace/deep"
    assert sh(docker_client, sid, "test -e /workspace/deep || echo gone") == "gone\n"
    actions = set(AuditEntry.objects.filter(target_id=sid).values_list("action", flat=True))
    assert {"file.written", "directory.created", "file.moved", "file.deleted"} <= actions

    set_env = """mutation($id: ID!, $variables: [EnvVarInput!]!) {
      setEnv(sandboxId: $id, variables: $variables) { name value secret }
    }"""
    variables = [{"name": "GREETING", "value": "hi"}, {"name": "TOKEN", "value": "s3cret", "secret": True}]
    env = {v["name"]: v for v in ok(api_client, set_env, id=sid, variables=variables)["setEnv"]}
    assert env["GREETING"]["value"] == "hi" and env["TOKEN"] == {"name": "TOKEN", "value": "********", "secret": True}
    shown = ok(api_client, EXEC, id=sid, input={"command": "echo $GREETING-$TOKEN"})["exec"]["stdout"]
    assert shown.startswith("hi-")  # the secret reaches the command (the output redacts it)
    removed = ok(api_client, 'mutation($id: ID!) { deleteEnv(sandboxId: $id, name: "GREETING") { name } }', id=sid)
    assert [v["name"] for v in removed["deleteEnv"]] == ["TOKEN"]
    assert ok(api_client, EXEC, id=sid, input={"command": "echo [$GREETING]"})["exec"]["stdout"] == "[]\n"
    refused(api_client, set_env, "invalid_env", id=sid, variables=[{"name": "1BAD", "value": "x"}])
    refused(
        api_client,
        'mutation($id: ID!) { deleteEnv(sandboxId: $id, name: "NOPE") { name } }',
        "env_var_not_found",
        id=sid,
    )

    started = ok(
        api_client,
        'mutation($id: ID!) { startProcess(sandboxId: $id, input: {command: "sleep 300"}) { processId status } }',
        id=sid,
    )["startProcess"]
    assert started["status"] == "running"
    kill = "mutation($id: ID!, $p: String!) { killProcess(sandboxId: $id, processId: $p) { processId running } }"
    killed = ok(api_client, kill, id=sid, p=started["processId"])["killProcess"]
    assert killed["processId"] == started["processId"]


# ---- git ----

GIT = "mutation($id: ID!, $input: {kind}Input!) {{ {name}(sandboxId: $id, input: $input) {{ {fields} }} }}"


def test_git_clone_commit_push_checkout_pull(api_client, create_sandbox, git, docker_client):
    sid = create_sandbox(template="python-3")["id"]
    clone = GIT.format(kind="GitClone", name="gitClone", fields="path branch commit url")
    cloned = ok(api_client, clone, id=sid, input={"url": git.http_url, "auth": git.token_auth(), "path": "/repo"})
    assert cloned["gitClone"]["path"] == "/repo" and len(cloned["gitClone"]["commit"]) == 40
    assert git.token not in cloned["gitClone"]["url"]

    ok(
        api_client,
        'mutation($id: ID!) { writeFile(sandboxId: $id, path: "/repo/GQL.md", content: "from graphql\\n") { path } }',
        id=sid,
    )
    commit = GIT.format(kind="GitCommit", name="gitCommit", fields="commit message")
    made = ok(api_client, commit, id=sid, input={"message": "gql: a file", "all": True, "path": "/repo"})["gitCommit"]
    assert made["message"] == "gql: a file" and len(made["commit"]) == 40
    checkout = GIT.format(kind="GitCheckout", name="gitCheckout", fields="branch commit")
    branch = f"gql-{sid[-6:]}"
    switched = ok(api_client, checkout, id=sid, input={"branch": branch, "create": True, "path": "/repo"})
    assert switched["gitCheckout"] == {"branch": branch, "commit": made["commit"]}
    push = GIT.format(kind="GitPush", name="gitPush", fields="branch commit")
    pushed = ok(api_client, push, id=sid, input={"path": "/repo", "auth": git.token_auth(), "setUpstream": True})[
        "gitPush"
    ]
    assert pushed == {"branch": branch, "commit": made["commit"]} and git.http_ref(branch) == made["commit"]
    pull = GIT.format(kind="GitPull", name="gitPull", fields="updated commit")
    pulled = ok(api_client, pull, id=sid, input={"path": "/repo", "auth": git.token_auth()})["gitPull"]
    assert pulled == {"updated": False, "commit": made["commit"]}
    actions = set(AuditEntry.objects.filter(target_id=sid).values_list("action", flat=True))
    assert {"git.cloned", "git.committed", "git.checked_out", "git.pushed", "git.pulled"} <= actions
    refused(
        api_client, commit, "validation_error", id=sid, input={"message": "m", "author": {"name": "", "email": "x"}}
    )


# ---- snapshots ----


def test_snapshot_create_restore_delete(api_client, outsider_client, readonly_client, create_sandbox, docker_client):
    sid = create_sandbox(template="python-3")["id"]
    sh(docker_client, sid, "echo before > /workspace/state.txt")
    snap = ok(
        api_client,
        'mutation($id: ID!) { createSnapshot(sandboxId: $id, name: "gql-snap") { snapshotId name sandboxId size } }',
        id=sid,
    )["createSnapshot"]
    assert snap["name"] == "gql-snap" and snap["sandboxId"] == sid and snap["size"] > 0
    snap["id"] = snap.pop("snapshotId")
    assert Snapshot.objects.filter(pk=snap["id"]).exists()
    sh(docker_client, sid, "echo after > /workspace/state.txt")

    restore = (
        "mutation($id: ID!, $snap: ID!) { restoreSnapshot(sandboxId: $id, snapshotId: $snap) { sandboxId status } }"
    )
    restored = ok(api_client, restore, id=sid, snap=global_id("Snapshot", snap["id"]))["restoreSnapshot"]
    assert restored == {"sandboxId": sid, "status": "RUNNING"}
    assert sh(docker_client, sid, "cat /workspace/state.txt") == "before\n"
    assert AuditEntry.objects.filter(action="sandbox.restored", target_id=sid).exists()

    delete = "mutation($id: ID!) { deleteSnapshot(id: $id) { id deleted } }"
    refused(outsider_client, delete, "snapshot_not_found", id=snap["id"])
    error = refused(readonly_client, delete, "insufficient_scope", id=snap["id"])
    assert error["extensions"]["details"]["missing"] == ["sandboxes:write"]
    assert Snapshot.objects.filter(pk=snap["id"]).exists()
    assert ok(api_client, delete, id=snap["id"])["deleteSnapshot"] == {"id": snap["id"], "deleted": True}
    assert not Snapshot.objects.filter(pk=snap["id"]).exists()
    assert AuditEntry.objects.filter(action="snapshot.deleted", target_id=snap["id"]).exists()


# ---- API keys ----

CREATE_KEY = (
    "mutation($input: CreateApiKeyInput!) {"
    " createApiKey(input: $input) { apiKey { id keyId name scopes active } key } }"
)


def test_api_keys_create_rotate_revoke(api_client, outsider_client, readonly_client, owner):
    client = APIClient()
    answer = ok(api_client, CREATE_KEY, input={"name": "from gql", "scopes": ["sandboxes:read"]})["createApiKey"]
    created, secret = answer["apiKey"], answer["key"]
    assert secret.startswith("vb_") and created["scopes"] == ["sandboxes:read"] and created["active"]
    assert created["id"] == global_id("ApiKey", created["keyId"])  # the node apiKeys lists
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/sandboxes").status_code == 200
    assert AuditEntry.objects.filter(action="key.created", target_id=created["keyId"]).exists()
    refused(api_client, CREATE_KEY, "validation_error", input={"name": "x", "scopes": ["root"]})

    rotate = "mutation($id: ID!) { rotateApiKey(id: $id, gracePeriod: 0) { apiKey { keyId rotatedFrom } key } }"
    answer = ok(api_client, rotate, id=created["id"])["rotateApiKey"]
    rotated, rotated_secret = answer["apiKey"], answer["key"]
    assert rotated["rotatedFrom"] == created["keyId"] and rotated_secret != secret

    revoke = "mutation($id: ID!) { revokeApiKey(id: $id) { keyId active revokedAt } }"
    refused(outsider_client, revoke, "key_not_found", id=rotated["keyId"])
    error = refused(readonly_client, revoke, "insufficient_scope", id=rotated["keyId"])
    assert error["extensions"]["details"]["missing"] == ["keys:manage"]
    refused(readonly_client, CREATE_KEY, "insufficient_scope", input={"name": "nope"})
    assert ApiKey.objects.get(pk=rotated["keyId"]).is_active()
    revoked = ok(api_client, revoke, id=rotated["keyId"])["revokeApiKey"]
    assert revoked["active"] is False and revoked["revokedAt"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {rotated_secret}")
    assert client.get("/api/v1/sandboxes").status_code == 401
    assert AuditEntry.objects.filter(action="key.revoked", target_id=rotated["keyId"]).exists()
    assert ApiKey.objects.filter(user=owner, name="nope").count() == 0


# ---- webhooks ----


def test_webhooks_create_update_test_rotate_delete(api_client, outsider_client, readonly_client, graphql_hook):
    answer = ok(
        api_client,
        CREATE_WEBHOOK,
        input={"url": "http://127.0.0.1:9/a", "events": ["sandbox.created"], "filter": {"template": "python-3"}},
    )["createWebhook"]
    made, secret = answer["webhook"], answer["secret"]
    assert made["filter"] == {"template": "python-3"} and secret.startswith("whsec_")
    assert made["id"] == global_id("Webhook", made["webhookId"])
    refused(api_client, CREATE_WEBHOOK, "unknown_event", input={"url": "http://127.0.0.1:9/a", "events": ["nope"]})
    refused(api_client, CREATE_WEBHOOK, "validation_error", input={"url": "ftp://x", "events": ["*"]})
    wid = made["webhookId"]

    update = (
        "mutation($id: ID!, $input: UpdateWebhookInput!)"
        " { updateWebhook(id: $id, input: $input) { events active description } }"
    )
    refused(outsider_client, update, "webhook_not_found", id=made["id"], input={"active": False})
    error = refused(readonly_client, update, "insufficient_scope", id=made["id"], input={"active": False})
    assert error["extensions"]["details"]["missing"] == ["webhooks:manage"]
    assert Webhook.objects.get(pk=wid).active is True
    changed = ok(api_client, update, id=made["id"], input={"events": ["*"], "description": "all"})["updateWebhook"]
    assert changed == {"events": ["*"], "active": True, "description": "all"}

    tested = ok(api_client, "mutation($id: ID!) { testWebhook(id: $id) { id deliveryId event status } }", id=wid)
    delivery = tested["testWebhook"]
    assert delivery["event"] == "webhook.test" and Delivery.objects.filter(pk=delivery["deliveryId"]).exists()
    again = (
        "mutation($w: ID!, $d: ID!) { redeliverWebhookDelivery(webhookId: $w, deliveryId: $d)"
        " { deliveryId event redeliveryOf } }"
    )
    redelivered = ok(api_client, again, w=made["id"], d=delivery["id"])["redeliverWebhookDelivery"]
    assert redelivered["event"] == "webhook.test" and redelivered["redeliveryOf"] == delivery["deliveryId"]

    rotate = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { previousSecretExpiresAt } } }"
    rotated = ok(api_client, rotate, id=wid)["rotateWebhookSecret"]
    assert rotated["secret"] != secret and rotated["webhook"]["previousSecretExpiresAt"]

    delete = "mutation($id: ID!) { deleteWebhook(id: $id) { id deleted } }"
    refused(outsider_client, delete, "webhook_not_found", id=wid)
    assert ok(api_client, delete, id=wid)["deleteWebhook"] == {"id": wid, "deleted": True}
    assert not Webhook.objects.filter(pk=wid).exists()
    actions = set(AuditEntry.objects.filter(target_id=wid).values_list("action", flat=True))
    assert {"webhook.updated", "webhook.tested", "webhook.deleted"} <= actions


# ---- organizations, members, invitations ----


def test_organizations_members_invitations(owner, outsider, make_key, client_for, outsider_client, readonly_client):
    made = ok(
        client_for(owner),
        'mutation { createOrganization(input: {name: "GQL Team", slug: "gql-team"}) { id slug role permissions } }',
    )["createOrganization"]
    assert made["slug"] == "gql-team" and made["role"] == "owner" and "members.manage" in made["permissions"]
    org = Organization.objects.get(slug="gql-team")
    owner_client = client_for(owner, org=org)  # a key acts in its own organization only
    assert AuditEntry.objects.filter(action="org.created", org_id=org.pk).exists()
    refused(readonly_client, 'mutation { createOrganization(input: {name: "No"}) { id } }', "insufficient_scope")

    add = 'mutation { addMember(slug: "gql-team", input: {username: "outsider", role: "viewer"}) { id username role } }'
    refused(outsider_client, add, "org_not_found")  # not a member: it does not exist for them
    member = ok(owner_client, add)["addMember"]
    assert member["username"] == "outsider" and member["role"] == "viewer"
    # a viewer lacks members.manage: 403 naming it
    viewer = client_for(outsider, org=org)
    error = refused(
        viewer,
        'mutation { inviteMember(slug: "gql-team", email: "x@example.com", role: "viewer") { id } }',
        "permission_denied",
    )
    assert error["extensions"]["details"]["permission"] == "members.manage"

    update = 'mutation($m: ID!) { updateMember(slug: "gql-team", memberId: $m, role: "developer") { role } }'
    assert ok(owner_client, update, m=str(member["id"]))["updateMember"]["role"] == "developer"
    assert Membership.objects.get(pk=member["id"]).role_name == "developer"

    invite = (
        'mutation { inviteMember(slug: "gql-team", email: "new@example.com", role: "developer") { id email role } }'
    )
    invitation = ok(owner_client, invite)["inviteMember"]
    assert invitation["email"] == "new@example.com" and Invitation.objects.filter(pk=invitation["id"]).exists()
    revoke = 'mutation($i: ID!) { revokeInvitation(slug: "gql-team", invitationId: $i) { deleted } }'
    assert ok(owner_client, revoke, i=invitation["id"])["revokeInvitation"]["deleted"] is True
    assert AuditEntry.objects.filter(action="invitation.revoked", org_id=org.pk).exists()

    rename = 'mutation { updateOrganization(slug: "gql-team", input: {name: "GQL Renamed"}) { name } }'
    assert ok(owner_client, rename)["updateOrganization"]["name"] == "GQL Renamed"
    remove = 'mutation($m: ID!) { removeMember(slug: "gql-team", memberId: $m) { deleted } }'
    assert ok(owner_client, remove, m=str(member["id"]))["removeMember"]["deleted"] is True
    assert not Membership.objects.filter(pk=member["id"]).exists()
    assert ok(owner_client, 'mutation { deleteOrganization(slug: "gql-team") { deleted } }')["deleteOrganization"]
    assert not Organization.objects.filter(slug="gql-team").exists()


# ---- Claude Code: a real sandbox on a throwaway server whose model gateway talks to a stub ----


def test_claude_enable_ask_approve_and_reject(server, stub):  # noqa: F811
    def run(query: str, **variables) -> dict:
        status, body = call(server, "POST", "/graphql", {"query": query, "variables": variables})
        assert status == 200 and "errors" not in body, body
        return body["data"]

    created = run(CREATE, input={"template": CLAUDE_TEMPLATE})["createSandbox"]
    sid = created["sandboxId"]
    try:
        enabled = run("mutation($id: ID!) { enableClaude(sandboxId: $id) { enabled installed version } }", id=sid)
        assert enabled["enableClaude"]["enabled"] is True and enabled["enableClaude"]["version"].startswith("2.")

        ask = (
            "mutation($id: ID!, $input: ClaudeAskInput!) {"
            " claudeAsk(sandboxId: $id, input: $input) { askId sessionId status stream } }"
        )

        def finished(ask_id: str) -> dict:
            def done():
                _, body = call(server, "GET", f"/api/v1/sandboxes/{sid}/claude/asks/{ask_id}")
                return body if body["status"] != "running" else None

            return wait_for(done, timeout=120, interval=0.3, what=f"ask {ask_id} to finish")

        stub.script("GQL-WRITE", [tool_use("Write", file_path="gql.txt", content="from graphql\n")], [text("Wrote.")])
        started = run(ask, id=sid, input={"prompt": "GQL-WRITE please"})["claudeAsk"]
        assert started["status"] == "running" and started["askId"] in started["stream"]
        assert finished(started["askId"])["changeSetId"]
        review = (
            "mutation($id: ID!, $s: String) {{ {name}(sandboxId: $id, sessionId: $s)"
            " {{ status changeSets {{ status files {{ path }} }} }} }}"
        )
        approved = run(review.format(name="approveChanges"), id=sid, s=started["sessionId"])["approveChanges"]
        assert approved["status"] == "approved" and approved["changeSets"][0]["files"] == [{"path": "gql.txt"}]
        _, shown = call(server, "POST", f"/api/v1/sandboxes/{sid}/exec", {"command": "cat /workspace/gql.txt"})
        assert shown["stdout"] == "from graphql\n"

        stub.script("GQL-DROP", [tool_use("Write", file_path="drop.txt", content="no\n")], [text("Wrote.")])
        second = run(ask, id=sid, input={"prompt": "GQL-DROP please"})["claudeAsk"]  # a session of its own
        assert finished(second["askId"])["changeSetId"]
        rejected = run(review.format(name="rejectChanges"), id=sid, s=second["sessionId"])["rejectChanges"]
        assert rejected["status"] == "rejected" and rejected["changeSets"][0]["status"] == "rejected"
        _, again = call(
            server, "POST", "/graphql", {"query": review.format(name="rejectChanges"), "variables": {"id": sid}}
        )
        assert again["errors"][0]["extensions"]["code"] == "no_pending_changes"
        _, audit = call(server, "GET", f"/api/v1/sandboxes/{sid}/claude/changes?status=all&diff=false")
        assert sorted(c["status"] for c in audit["data"]) == ["approved", "rejected"]
    finally:
        call(
            server,
            "POST",
            "/graphql",
            {"query": "mutation($id: ID!) { destroySandbox(id: $id) { id } }", "variables": {"id": sid}},
        )


# ---- sharing a sandbox; accepting an invitation ----

SHARE = 'mutation($id: ID!, $user: String) { shareSandbox(id: $id, access: "use", user: $user) { id user access } }'


def test_share_and_unshare_a_sandbox(owner, outsider, client_for, outsider_client, templates):
    org = org_services.org_create(user=owner, name="GQL Share")
    org_services.member_add(org=org, user_ref="outsider", role="viewer", by=owner)
    sandbox = sandbox_row(owner, templates["python-3"], org=org, name="shared")
    owner_client = client_for(owner, org=org)

    refused(outsider_client, SHARE, "sandbox_not_found", id=sandbox.pk, user="outsider")  # their own org's key
    error = refused(client_for(owner, READ_ONLY, org=org), SHARE, "insufficient_scope", id=sandbox.pk, user="outsider")
    assert error["extensions"]["details"]["missing"] == ["sandboxes:write"]
    refused(owner_client, SHARE, "validation_error", id=sandbox.pk, user=None)  # a user or a team
    refused(owner_client, SHARE, "member_not_found", id=sandbox.pk, user="nobody")
    assert not SandboxGrant.objects.exists()

    grant = ok(owner_client, SHARE, id=sandbox.pk, user="outsider")["shareSandbox"]
    assert grant["user"] == "outsider" and grant["access"] == "use"
    assert SandboxGrant.objects.get(pk=grant["id"]).access == "use"
    unshare = "mutation($id: ID!, $g: ID!) { unshareSandbox(id: $id, grantId: $g) { id deleted } }"
    viewer = client_for(outsider, org=org)  # now holding `use`: may not take others' grants, may give up its own
    assert ok(viewer, unshare, id=sandbox.pk, g=grant["id"])["unshareSandbox"] == {"id": grant["id"], "deleted": True}
    assert not SandboxGrant.objects.exists()
    actions = list(AuditEntry.objects.filter(target_id=sandbox.pk).values_list("action", flat=True))
    assert actions == ["grant.created", "grant.deleted"]


def test_accept_an_invitation(owner, outsider, client_for, outsider_client):
    outsider.email = "outsider@example.com"
    outsider.save(update_fields=["email"])
    org = org_services.org_create(user=owner, name="GQL Invite")
    invitation, _ = org_services.invitation_create(
        org=org, email="outsider@example.com", role="developer", base_url="http://testserver/", by=owner
    )
    accept = "mutation($token: String!) { acceptInvitation(token: $token) { slug role } }"
    refused(outsider_client, accept, "invitation_not_found", token="not-a-token")
    refused(client_for(outsider, READ_ONLY), accept, "insufficient_scope", token=invitation_token(invitation))
    assert not Membership.objects.filter(org=org, user=outsider).exists()
    joined = ok(outsider_client, accept, token=invitation_token(invitation))["acceptInvitation"]
    assert joined == {"slug": org.slug, "role": "developer"}
    assert Membership.objects.get(org=org, user=outsider).role_name == "developer"
    refused(outsider_client, accept, "invitation_accepted", token=invitation_token(invitation))


def test_roles_teams_and_resending_an_invitation(owner, outsider, client_for, outsider_client):
    org = org_services.org_create(user=owner, name="GQL Roles")
    org_services.member_add(org=org, user_ref="outsider", role="developer", by=owner)
    admin = client_for(owner, org=org)
    create_role = (
        'mutation($perms: [String!]!) { createRole(slug: "gql-roles", name: "auditor", permissions: $perms)'
        " { name builtIn permissions } }"
    )
    refused(outsider_client, create_role, "org_not_found", perms=["audit.read"])
    member = client_for(outsider, org=org)  # a developer: no members.manage
    error = refused(member, create_role, "permission_denied", perms=["audit.read"])
    assert error["extensions"]["details"]["permission"] == "members.manage"
    refused(admin, create_role, "validation_error", perms=["no.such"])
    role = ok(admin, create_role, perms=["audit.read"])["createRole"]
    assert role == {"name": "auditor", "builtIn": False, "permissions": ["audit.read"]}
    update_role = (
        'mutation($name: String!) { updateRole(slug: "gql-roles", name: $name, description: "reads") { description } }'
    )
    assert ok(admin, update_role, name="auditor")["updateRole"] == {"description": "reads"}
    refused(admin, update_role, "role_built_in", name="owner")

    team = 'mutation { createTeam(slug: "gql-roles", name: "ops", role: "auditor") { name role members } }'
    assert ok(admin, team)["createTeam"] == {"name": "ops", "role": "auditor", "members": []}
    add = 'mutation { addTeamMember(slug: "gql-roles", team: "ops", username: "outsider") { members } }'
    assert ok(admin, add)["addTeamMember"]["members"] == ["outsider"]
    assert "audit.read" in org_selectors.permissions_of(user=outsider, org=org)  # the team's role reaches them
    refused(admin, 'mutation { deleteRole(slug: "gql-roles", name: "auditor") { id } }', "role_in_use")
    rename = 'mutation { updateTeam(slug: "gql-roles", name: "ops", newName: "sre", role: "") { name role } }'
    assert ok(admin, rename)["updateTeam"] == {"name": "sre", "role": None}
    remove = 'mutation { removeTeamMember(slug: "gql-roles", team: "sre", username: "outsider") { members } }'
    assert ok(admin, remove)["removeTeamMember"]["members"] == []
    assert ok(admin, 'mutation { deleteTeam(slug: "gql-roles", name: "sre") { id deleted } }')["deleteTeam"]
    assert ok(admin, 'mutation { deleteRole(slug: "gql-roles", name: "auditor") { deleted } }')["deleteRole"]
    assert not org.roles.exists() and not org.teams.exists()
    actions = set(AuditEntry.objects.filter(org_id=org.pk).values_list("action", flat=True))
    assert {"role.created", "role.deleted", "team.created", "team.updated", "team.deleted"} <= actions

    invitation, _ = org_services.invitation_create(
        org=org, email="later@example.com", role="viewer", base_url="http://testserver/", by=owner
    )
    sent = invitation.sent_at
    resend = 'mutation($i: ID!) { resendInvitation(slug: "gql-roles", invitationId: $i) { email sentAt } }'
    refused(member, resend, "permission_denied", i=invitation.pk)
    assert ok(admin, resend, i=invitation.pk)["resendInvitation"]["email"] == "later@example.com"
    invitation.refresh_from_db()
    assert invitation.sent_at > sent
