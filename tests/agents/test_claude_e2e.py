"""Claude Code end to end: the real binary in a real sandbox, through VibeBox's model gateway,
against a local stub of the Anthropic API (there is never a real key).

One throwaway server (uvicorn + `manage.py rungateway`) for the module; its upstream is the
stub, its operator key a fake the stub must see in place of the sandbox's gateway token. Each test
has a fresh sandbox of its own: what one leaves (files, sessions, pending changes, a restart, an
own key) never reaches the next, whatever the order.
"""

import json
import urllib.error

import pytest
from websockets.sync.client import connect

from tests import anthropic_stub
from tests.agents.conftest import OPERATOR_KEY, TEMPLATE, api, call, sh
from tests.anthropic_stub import text, tool_use
from tests.waiting import wait_for


@pytest.fixture
def sandbox(server):
    """A fresh Claude Code sandbox for each test (the conftest's is shared by the module)."""
    status, body = call(server, "POST", "/api/v1/sandboxes", {"template": TEMPLATE})
    assert status == 201, body
    yield body["id"]
    status, gone = call(server, "DELETE", f"/api/v1/sandboxes/{body['id']}")
    assert status < 300, gone


@pytest.fixture
def enabled(server, sandbox):
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/enable", {})
    assert status == 201, body
    return body


def wait_ask(server, sandbox, ask_id, timeout=120) -> dict:
    def finished():
        status, body = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/asks/{ask_id}")
        assert status == 200, body
        return body if body["status"] != "running" else None

    return wait_for(finished, timeout=timeout, interval=0.3, what=f"ask {ask_id} to finish")


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
    approved = sh(server, sandbox, "jq -c .customApiKeyResponses.approved $CLAUDE_CONFIG_DIR/.claude.json")
    assert json.loads(approved["stdout"]) == [env[0][-20:]]  # interactive claude takes the token unasked


def test_a_person_runs_claude_by_hand_with_the_same_gateway(server, sandbox, enabled, stub):
    stub.script("BY-HAND", [text("hello, person")])
    answer = sh(server, sandbox, "claude -p 'BY-HAND hi' --output-format json < /dev/null")
    assert answer["exitCode"] == 0 and json.loads(answer["stdout"])["result"] == "hello, person"
    assert stub.conversation_requests("BY-HAND")[0]["headers"]["x-api-key"] == OPERATOR_KEY


def test_ask_with_review_writes_in_the_worktree_then_approve(server, sandbox, enabled, stub):
    stub.script(
        "WRITE-HELLO",
        [tool_use("Write", file_path="hello.txt", content="hello from claude\n")],
        [text("I wrote hello.txt.")],
    )
    # A webhook hears Claude's events of this sandbox (its deliveries are read, not sent: the
    # module's server does not dispatch, and nothing listens there).
    status, hook = call(
        server,
        "POST",
        "/api/v1/webhooks",
        {
            "url": "http://127.0.0.1:9/hook",
            "events": ["claude.ask.finished", "claude.changes.pending"],
            "filter": {"sandboxId": sandbox},
        },
    )
    assert status == 201, hook
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
    assert change["files"] == [
        {"path": "hello.txt", "status": "added", "additions": 1, "deletions": 0, "binary": False}
    ]
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
    # Each event once, written with the ask's end and the change set's row (docs/webhooks.md).
    status, deliveries = call(server, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries")
    assert status == 200, deliveries
    assert sorted(d["event"] for d in deliveries["results"]) == ["claude.ask.finished", "claude.changes.pending"]
    for delivery in deliveries["results"]:
        status, detail = call(server, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}")
        data = detail["payload"]["data"]
        assert data["sandboxId"] == sandbox and data["askId"] == started["askId"], data
        assert data["changeSetId"] == change["id"], data
    assert call(server, "DELETE", f"/api/v1/webhooks/{hook['id']}")[0] == 204


def test_resume_sends_the_earlier_turns_and_reject_drops_changes(server, sandbox, enabled, stub):
    stub.script("RESUME-A", [tool_use("Write", file_path="notes.md", content="# notes\n")], [text("first answer")])
    first = ask(server, sandbox, "RESUME-A: start notes")
    assert wait_ask(server, sandbox, first["askId"])["status"] == "completed"
    second = ask(server, sandbox, "and now summarise", sessionId=first["sessionId"])
    assert second["sessionId"] == first["sessionId"]
    done = wait_ask(server, sandbox, second["askId"])
    assert done["status"] == "completed", done
    last = stub.conversation_requests("RESUME-A")[-1]["body"]["messages"]
    assistant_text = json.dumps([m for m in last if m["role"] == "assistant"])
    assert "first answer" in assistant_text and "summarise" in json.dumps(last[-1])
    status, history = call(
        server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/sessions/{first['sessionId']}?transcript=1"
    )
    assert status == 200 and history["askIds"] == [first["askId"], second["askId"]]
    kinds = [(m["role"], m["type"]) for m in history["messages"]]
    assert kinds[0] == ("user", "prompt") and ("assistant", "tool_use") in kinds and ("tool", "tool_result") in kinds
    assert any(m.get("text") == "first answer" for m in history["messages"])
    assert any(entry.get("sessionId") == first["sessionId"] for entry in history["transcript"])
    status, listed = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/sessions")
    assert first["sessionId"] in [s["sessionId"] for s in listed["data"]]
    # The notes are pending; rejecting drops them from the branch and leaves /workspace alone.
    status, pending = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes?sessionId={first['sessionId']}")
    assert [f["path"] for f in pending["data"][0]["files"]] == ["notes.md"]
    status, rejected = call(
        server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/reject", {"sessionId": first["sessionId"]}
    )
    assert status == 200 and rejected["changeSets"][0]["status"] == "rejected"
    worktree = history["cwd"]
    assert (
        sh(server, sandbox, f"test -e {worktree}/notes.md || test -e /workspace/notes.md; echo $?")["stdout"] == "1\n"
    )
    status, again = call(
        server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/reject", {"sessionId": first["sessionId"]}
    )
    assert status == 409 and again["error"]["code"] == "no_pending_changes"


def test_approve_with_a_conflicting_workspace_is_a_409_that_changes_nothing(server, sandbox, enabled, stub):
    sh(server, sandbox, "printf 'original\\n' > /workspace/shared.txt")
    # Claude's Write of an existing file needs a Read first; relative paths are in its worktree.
    stub.script(
        "CONFLICT-ME",
        [tool_use("Read", file_path="shared.txt")],
        [tool_use("Write", file_path="shared.txt", content="claude's version\n")],
        [text("rewrote shared.txt")],
    )
    started = ask(server, sandbox, "CONFLICT-ME rewrite it")
    done = wait_ask(server, sandbox, started["askId"])
    history = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/sessions/{started['sessionId']}")[1]
    assert done["status"] == "completed" and done["changeSetId"], json.dumps(history["messages"])
    sh(server, sandbox, "printf 'a person edited this\\n' > /workspace/shared.txt")
    status, body = call(
        server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/approve", {"sessionId": started["sessionId"]}
    )
    assert status == 409 and body["error"]["code"] == "merge_conflict", body
    assert body["error"]["details"]["files"] == ["shared.txt"]
    assert sh(server, sandbox, "cat /workspace/shared.txt")["stdout"] == "a person edited this\n"
    status, pending = call(
        server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes?sessionId={started['sessionId']}"
    )
    assert len(pending["data"]) == 1 and pending["data"][0]["status"] == "pending"
    # Non-conflicting: the person's edit goes; approving applies Claude's version on top.
    sh(server, sandbox, "printf 'original\\n' > /workspace/shared.txt && printf 'mine\\n' > /workspace/other.txt")
    status, body = call(
        server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/approve", {"sessionId": started["sessionId"]}
    )
    assert status == 200, body
    assert sh(server, sandbox, "cat /workspace/shared.txt /workspace/other.txt")["stdout"] == "claude's version\nmine\n"


def test_without_review_claude_writes_to_the_workspace(server, sandbox, enabled, stub):
    stub.script(
        "DIRECT-WRITE", [tool_use("Write", file_path="/workspace/direct.txt", content="direct\n")], [text("ok")]
    )
    started = ask(server, sandbox, "DIRECT-WRITE please", review=False)
    done = wait_ask(server, sandbox, started["askId"])
    assert done["status"] == "completed" and done["review"] is False and done["changeSetId"] is None
    assert sh(server, sandbox, "cat /workspace/direct.txt")["stdout"] == "direct\n"
    status, body = call(
        server,
        "POST",
        f"/api/v1/sandboxes/{sandbox}/claude/ask",
        {"prompt": "x", "sessionId": started["sessionId"], "review": True},
    )
    assert status == 400 and body["error"]["code"] == "validation_error"


def test_cancel_kills_a_running_ask_and_one_ask_runs_per_session(server, sandbox, enabled, stub):
    slow = "python3 -c 'import time; time.sleep(60)'"  # Claude refuses a bare `sleep 60`
    stub.script("SLOW-BASH", [tool_use("Bash", command=slow, description="wait")], [text("slept")])
    started = ask(server, sandbox, "SLOW-BASH now", permissionMode="bypassPermissions", review=False)
    wait_for(
        lambda: "time.sleep(60)" in sh(server, sandbox, "ps -eo args")["stdout"],
        timeout=60,
        interval=0.3,
        what="Claude to run the slow command",
    )
    status, body = call(
        server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/ask", {"prompt": "more", "sessionId": started["sessionId"]}
    )
    assert status == 409 and body["error"]["code"] == "ask_running"
    status, status_body = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/status")
    assert started["askId"] in status_body["runningAsks"]
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/asks/{started['askId']}/cancel")
    assert status in (200, 202)
    done = wait_ask(server, sandbox, started["askId"], timeout=60)
    assert done["status"] == "cancelled"
    wait_for(
        lambda: "time.sleep(60)" not in sh(server, sandbox, "ps -eo args")["stdout"],
        timeout=30,
        what="the cancelled ask's command to be gone",
    )


def test_bad_input_and_access(server, sandbox, enabled):
    base = f"/api/v1/sandboxes/{sandbox}/claude"
    for body, code in [
        ({}, "validation_error"),
        ({"prompt": "x", "colour": "red"}, "unknown_field"),
        ({"prompt": "x", "permissionMode": "yolo"}, "validation_error"),
        ({"prompt": "x", "maxTurns": 0}, "validation_error"),
        ({"prompt": "x", "model": "--dangerously"}, "validation_error"),
    ]:
        status, answer = call(server, "POST", f"{base}/ask", body)
        assert status == 400 and answer["error"]["code"] == code, (body, answer)
    status, answer = call(server, "POST", f"{base}/ask", {"prompt": "x", "sessionId": "nope"})
    assert status == 404 and answer["error"]["code"] == "claude_session_not_found"
    status, answer = call(server, "GET", f"{base}/asks/ask_missing")
    assert status == 404 and answer["error"]["code"] == "ask_not_found"
    outsider = server.create_key("outsider")
    for method, path in [
        ("GET", "status"),
        ("POST", "ask"),
        ("GET", "changes"),
        ("POST", "approve"),
        ("GET", "sessions"),
    ]:
        try:
            api(server.url, outsider, method, f"{base}/{path}", {"prompt": "x"} if method == "POST" else None)
            raise AssertionError("outsider got through")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404 and json.loads(exc.read())["error"]["code"] == "sandbox_not_found"
    try:
        api(server.url, "", "GET", f"{base}/status")
        raise AssertionError("anonymous got through")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
    reader = server.create_key(server.env["VIBEBOX_INSTANCE"], "sandboxes:read")
    try:
        api(server.url, reader, "POST", f"{base}/ask", {"prompt": "x"})
        raise AssertionError("a read-only key asked")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403 and json.loads(exc.read())["error"]["code"] == "insufficient_scope"


def test_templates_without_claude_and_sandboxes_not_enabled(server):
    status, plain = call(server, "POST", "/api/v1/sandboxes", {"template": "python-3"})
    assert status == 201
    try:
        status, body = call(server, "POST", f"/api/v1/sandboxes/{plain['id']}/claude/enable", {})
        assert status == 409 and body["error"]["code"] == "claude_unavailable", body
        status, body = call(server, "POST", f"/api/v1/sandboxes/{plain['id']}/claude/ask", {"prompt": "hi"})
        assert status == 409 and body["error"]["code"] == "claude_not_enabled"
        status, body = call(server, "GET", f"/api/v1/sandboxes/{plain['id']}/claude/status")
        assert status == 200 and body["enabled"] is False
    finally:
        call(server, "DELETE", f"/api/v1/sandboxes/{plain['id']}")
    # The product spec's node-20-claude-code is a template of its own: Claude enabled at create
    # (tests/agents/test_claude_autostart.py).
    status, spec = call(server, "GET", "/api/v1/templates/node-20-claude-code")
    assert status == 200 and spec["name"] == "node-20-claude-code" and spec["claude"]["autoStart"] is True


def test_gateway_checks_tokens_and_is_the_only_port_sandboxes_reach(server, sandbox, enabled, stub):
    probe = (
        'code=$(curl -s -o /dev/null -w "%{http_code}" -H "x-api-key: $1" "$ANTHROPIC_BASE_URL/v1/models"); echo $code'
    )
    good = sh(server, sandbox, f"sh -c '{probe}' sh \"$ANTHROPIC_API_KEY\"")["stdout"].strip()
    bad = sh(server, sandbox, f"sh -c '{probe}' sh vbgw_forged")["stdout"].strip()
    assert (good, bad) == ("200", "401")
    # A listener of the host's on another port of the same address is not reachable.
    import socket

    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))  # noqa: S104  (all interfaces: the bridge address too)
    listener.listen()
    try:
        port = listener.getsockname()[1]
        reach = (
            "host=${ANTHROPIC_BASE_URL#http://}; host=${host%:*}; curl -s -m 2 -o /dev/null http://$host:"
            + str(port)
            + "/; echo $?"
        )
        assert sh(server, sandbox, reach)["stdout"].strip() in ("28", "7")  # timed out / refused, never connected
    finally:
        listener.close()


def test_own_anthropic_key_is_used_and_never_enters_the_sandbox(server, sandbox, enabled, stub):
    own = "sk-ant-own-" + "y" * 24
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/enable", {"anthropicApiKey": own})
    assert status == 200 and body["ownKey"] is True and "anthropicApiKey" not in body
    stub.script("OWN-KEY", [text("paid by you")])
    done = wait_ask(server, sandbox, ask(server, sandbox, "OWN-KEY hello", review=False)["askId"])
    assert done["status"] == "completed" and done["result"] == "paid by you"
    headers = {k.lower(): v for k, v in stub.conversation_requests("OWN-KEY")[-1]["headers"].items()}
    assert headers["x-api-key"] == own
    assert own not in sh(server, sandbox, "env; cat -v $CLAUDE_CONFIG_DIR/*.json 2>/dev/null")["stdout"]
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/enable", {})
    assert body["ownKey"] is False


def test_mcp_gives_claude_vibebox_tools_for_its_own_sandbox_only(server, sandbox, enabled, stub):
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/enable", {"mcp": True})
    assert status == 200 and body["mcp"] is True
    config = json.loads(sh(server, sandbox, "cat ~/.vibebox/mcp.json")["stdout"])
    assert config["mcpServers"]["vibebox"]["url"].endswith("/mcp")
    stub.script(
        "MCP-EXEC",
        [tool_use("mcp__vibebox__sandbox_exec", command="echo via-mcp > /workspace/mcp.txt")],
        [text("ran it through VibeBox")],
    )
    started = ask(server, sandbox, "MCP-EXEC go", review=False, allowedTools=["mcp__vibebox__sandbox_exec"])
    done = wait_ask(server, sandbox, started["askId"])
    history = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/sessions/{started['sessionId']}")[1]
    assert done["status"] == "completed", json.dumps(history["messages"])
    results = [m for m in history["messages"] if m["type"] == "tool_result"]
    assert results and not results[0]["isError"], json.dumps(results)
    assert sh(server, sandbox, "cat /workspace/mcp.txt")["stdout"] == "via-mcp\n"
    # Claude saw the sandbox's tools, without the ones that reach other sandboxes.
    with connect(
        server.url.replace("http", "ws") + f"/ws/sandboxes/{sandbox}/claude?askId={started['askId']}",
        additional_headers={"Authorization": f"Bearer {server.key}"},
        open_timeout=10,
    ) as ws:
        init = json.loads(ws.recv(timeout=10))  # replayed: the ask's first event
    assert init["type"] == "claude.init" and init["replayed"] is True
    servers = {s["name"]: s["status"] for s in init["data"]["event"]["mcp_servers"]}
    assert servers == {"vibebox": "connected"}
    names = {name for name in init["data"]["event"]["tools"] if name.startswith("mcp__vibebox__")}
    assert {"mcp__vibebox__sandbox_exec", "mcp__vibebox__file_read", "mcp__vibebox__git_status"} <= names
    assert not names & {"mcp__vibebox__sandbox_create", "mcp__vibebox__sandbox_list", "mcp__vibebox__sandbox_destroy"}
    forged = sh(
        server,
        sandbox,
        'curl -s -o /dev/null -w "%{http_code}" -X POST -H "Authorization: Bearer vbgw_forged" $ANTHROPIC_BASE_URL/mcp',
    )
    assert forged["stdout"] == "401"


def test_a_session_survives_a_restart_of_its_sandbox(server, sandbox, enabled, stub):
    stub.script("RESTART-A", [tool_use("Write", file_path="kept.txt", content="kept\n")], [text("before restart")])
    first = ask(server, sandbox, "RESTART-A begin")
    assert wait_ask(server, sandbox, first["askId"])["status"] == "completed"
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/restart")
    assert status == 200, body
    second = ask(server, sandbox, "continue after the restart", sessionId=first["sessionId"])
    assert wait_ask(server, sandbox, second["askId"])["status"] == "completed"
    # The transcript (on the workspace volume) and the pending change survived: Claude resumed.
    last = stub.conversation_requests("RESTART-A")[-1]["body"]["messages"]
    assert "before restart" in json.dumps(last) and "continue after the restart" in json.dumps(last[-1])
    status, pending = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes?sessionId={first['sessionId']}")
    assert [f["path"] for f in pending["data"][0]["files"]] == ["kept.txt"]
    call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/reject", {"sessionId": first["sessionId"]})
