"""The collaboration modes enforced on real asks (docs/claude.md, "Collaboration modes"): the real
Claude Code binary in a real sandbox, through the REST ask endpoint of a live server and its
gateway, against the local Anthropic stub (tests/agents/conftest.py)."""

from tests.agents.conftest import call, sh
from tests.agents.test_claude_e2e import ask, enabled, sandbox, wait_ask  # noqa: F401  (fixtures)
from tests.anthropic_stub import text, tool_use


def _mode(server, sandbox_id, **body) -> dict:
    status, found = call(server, "PATCH", f"/api/v1/sandboxes/{sandbox_id}/claude/status", body)
    assert status == 200, found
    return found


def _exists(server, sandbox_id, path) -> bool:
    return sh(server, sandbox_id, f"test -e {path}; echo $?")["stdout"].strip() == "0"


def test_each_mode_through_the_ask_endpoint(server, sandbox, enabled, stub):  # noqa: F811
    # human: the ask is refused and nothing runs.
    assert _mode(server, sandbox, mode="human")["mode"] == "human"
    status, refused = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/ask", {"prompt": "hi"})
    assert status == 409 and refused["error"]["code"] == "claude_disabled_by_mode", refused
    status, listed = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/asks")
    assert status == 200 and listed["data"] == []

    # assist: the change waits for review, /workspace untouched; the sandbox's default model is sent.
    _mode(server, sandbox, mode="assist", model="claude-haiku-4-5")
    stub.script("ASSIST-WRITE", [tool_use("Write", file_path="assist.txt", content="assist\n")], [text("done")])
    started = ask(server, sandbox, "Please ASSIST-WRITE now")
    done = wait_ask(server, sandbox, started["askId"])
    assert done["status"] == "completed" and done["changeSetId"], done
    assert done["options"]["model"] == "claude-haiku-4-5"
    assert stub.conversation_requests("ASSIST-WRITE")[0]["body"]["model"] == "claude-haiku-4-5"
    assert not _exists(server, sandbox, "/workspace/assist.txt")
    status, pending = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes?diff=false")
    assert [c["id"] for c in pending["data"]] == [done["changeSetId"]]
    status, approved = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/approve", {})
    assert status == 200, approved

    # autonomous: the change set is applied as its ask ends, recorded as approved.
    _mode(server, sandbox, mode="autonomous")
    stub.script("AUTO-WRITE", [tool_use("Write", file_path="auto.txt", content="auto\n")], [text("done")])
    started = ask(server, sandbox, "Please AUTO-WRITE now")
    done = wait_ask(server, sandbox, started["askId"])
    assert done["status"] == "completed" and done["changeSetId"], done
    assert sh(server, sandbox, "cat /workspace/auto.txt")["stdout"] == "auto\n"
    status, changes = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes?status=all&diff=false")
    by_id = {c["id"]: c for c in changes["data"]}
    assert by_id[done["changeSetId"]]["status"] == "approved"
    status, pending = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/changes?diff=false")
    assert pending["data"] == []
