"""Claude Code end to end: the real binary in a real sandbox, through VibeBox's model gateway,
against a local stub of the Anthropic API (there is never a real key).

One throwaway server (uvicorn + `manage.py rungateway`) for the module; its upstream is the
stub, its operator key a fake the stub must see in place of the sandbox's gateway token.
"""

import json
import os
import sys
import time
import urllib.error
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests import anthropic_stub
from tests.anthropic_stub import text, tool_use

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from common import api, live_server  # noqa: E402

OPERATOR_KEY = "sk-ant-operator-" + "x" * 24
TEMPLATE = "node-22-claude-code"


@pytest.fixture(scope="module")
def stub():
    found, server = anthropic_stub.start()
    yield found
    server.shutdown()


@pytest.fixture(scope="module")
def server(stub):
    with live_server(
        f"claude{os.getpid()}",
        gateway=True,
        VIBEBOX_ANTHROPIC_UPSTREAM=stub.url,
        VIBEBOX_ANTHROPIC_API_KEY=OPERATOR_KEY,
    ) as running:
        yield running


def call(server, method, path, body=None):
    """(status, body) for any status: errors are answers too."""
    try:
        return api(server.url, server.key, method, path, body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def sandbox(server):
    status, body = call(server, "POST", "/api/v1/sandboxes", {"template": TEMPLATE})
    assert status == 201, body
    yield body["id"]
    call(server, "DELETE", f"/api/v1/sandboxes/{body['id']}")


@pytest.fixture(scope="module")
def enabled(server, sandbox):
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/enable", {})
    assert status == 201, body
    return body


def sh(server, sandbox, command) -> dict:
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/exec", {"command": command})
    assert status == 200, body
    return body


def wait_ask(server, sandbox, ask_id, timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/asks/{ask_id}")
        assert status == 200, body
        if body["status"] != "running":
            return body
        time.sleep(0.3)
    raise AssertionError(f"ask {ask_id} still running")


def ask(server, sandbox, prompt, **options) -> dict:
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/ask", {"prompt": prompt, **options})
    assert status == 202, body
    assert body["askId"].startswith("ask_") and body["sessionId"] and body["status"] == "running"
    return body


def test_enable_reports_the_binary_and_gives_only_a_gateway_token(server, sandbox, enabled):
    assert enabled["installed"] is True and enabled["version"].startswith("2.")
    status, body = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/status")
    assert status == 200 and body["enabled"] is True and body["runningAsks"] == []
    env = sh(server, sandbox, "printenv ANTHROPIC_API_KEY ANTHROPIC_BASE_URL")["stdout"].split()
    assert env[0].startswith("vbgw_") and OPERATOR_KEY not in sh(server, sandbox, "env")["stdout"]
    assert env[1].startswith("http://") and env[1].endswith(f":{server.env['VIBEBOX_GATEWAY_PORT']}")


def test_ask_with_review_writes_in_the_worktree_then_approve(server, sandbox, enabled, stub):
    stub.script(
        "WRITE-HELLO",
        [tool_use("Write", file_path="hello.txt", content="hello from claude\n")],
        [text("I wrote hello.txt.")],
    )
    started = ask(server, sandbox, "Please WRITE-HELLO now")
    with connect(
        server.url.replace("http", "ws") + f"/ws/sandboxes/{sandbox}/claude?askId={started['askId']}",
        additional_headers={"Authorization": f"Bearer {server.key}"},
        open_timeout=10,
    ) as ws:
        kinds = []
        while "claude.ask.finished" not in kinds:
            kinds.append(json.loads(ws.recv(timeout=120))["type"])
    for kind in ("claude.init", "claude.tool_use", "claude.tool_result", "claude.result"):
        assert kind in kinds, kinds
    done = wait_ask(server, sandbox, started["askId"])
    assert done["status"] == "completed", done
    assert done["result"] == "I wrote hello.txt." and done["numTurns"] >= 2 and done["changeSetId"]
    # The write happened in Claude's worktree, not in /workspace.
    assert sh(server, sandbox, "test -e /workspace/hello.txt; echo $?")["stdout"].strip() == "1"
    status, changes = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes")
    assert status == 200 and len(changes["data"]) == 1
    change = changes["data"][0]
    assert change["files"] == [{"path": "hello.txt", "status": "added", "additions": 1, "deletions": 0, "binary": False}]
    assert "+hello from claude" in change["diff"] and change["sessionId"] == started["sessionId"]
    status, approved = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/approve", {})
    assert status == 200 and approved["changeSets"][0]["status"] == "approved", approved
    assert sh(server, sandbox, "cat /workspace/hello.txt")["stdout"] == "hello from claude\n"
    status, after = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes")
    assert after["data"] == []
    # The stub saw the operator's key, never the sandbox's token.
    seen = stub.conversation_requests("WRITE-HELLO")
    assert len(seen) == 2
    for request in seen:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["x-api-key"] == OPERATOR_KEY and "authorization" not in headers
        assert "vbgw_" not in json.dumps(headers)
    # The gateway recorded usage per request, for this ask, its session and the sandbox.
    usage = done["gatewayUsage"]
    assert usage["requests"] == 2 and usage["inputTokens"] == 2 * anthropic_stub.USAGE_IN
    assert usage["outputTokens"] == 2 * anthropic_stub.USAGE_OUT and usage["costUsd"] > 0
    status, session = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/sessions/{started['sessionId']}")
    assert session["usage"]["requests"] >= 2
