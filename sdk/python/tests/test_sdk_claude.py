"""Claude Code from the SDK and the CLI: the real binary in a node-22-claude-code sandbox, through the
server's model gateway, against the session's Anthropic stub (conftest `anthropic`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
from conftest import OPERATOR_KEY, cli
from vibebox_sdk import (
    AsyncVibeBox,
    ClaudeDisabledByModeError,
    MergeConflictError,
    NoPendingChangesError,
    Sandbox,
    VibeBox,
)

from tests.anthropic_stub import text, tool_use


@pytest.fixture(scope="module")
def claude_box(vb: VibeBox) -> Iterator[Sandbox]:
    box = vb.sandbox("node-22-claude-code", name=f"claude-{uuid.uuid4().hex[:6]}")
    box.claude.enable()
    yield box
    box.destroy()


def test_ask_streams_events_then_review(claude_box, anthropic):
    anthropic.script(
        "SDK-WRITE", [tool_use("Write", file_path="sdk.txt", content="from the sdk\n")], [text("wrote it")]
    )
    seen = []
    done = claude_box.claude.ask("SDK-WRITE please", on_event=seen.append, timeout=120)
    assert done["status"] == "completed" and done["result"] == "wrote it" and done["change_set_id"]
    kinds = [event["type"] for event in seen]
    assert {"claude.init", "claude.tool_use", "claude.tool_result", "claude.result", "claude.ask.finished"} <= set(
        kinds
    )
    [change] = claude_box.claude.changes(done["session_id"])
    assert change["files"][0]["path"] == "sdk.txt" and "+from the sdk" in change["diff"]
    claude_box.exec("printf 'mine\\n' > /workspace/sdk.txt")  # a person got there first
    with pytest.raises(MergeConflictError) as conflict:
        claude_box.claude.approve(done["session_id"])
    assert conflict.value.files == ["sdk.txt"]
    rejected = claude_box.claude.reject(done["session_id"])
    assert rejected["change_sets"][0]["status"] == "rejected"
    with pytest.raises(NoPendingChangesError):
        claude_box.claude.approve()
    assert claude_box.files.read_text("/workspace/sdk.txt") == "mine\n"
    headers = {k.lower(): v for k, v in anthropic.conversation_requests("SDK-WRITE")[0]["headers"].items()}
    assert headers["x-api-key"] == OPERATOR_KEY


def test_async_ask_and_sessions(server, claude_box, anthropic):
    anthropic.script("ASYNC-HI", [text("hello from async")])

    async def main():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as client:
            box = await client.get(claude_box.id)
            events = []
            done = await box.claude.ask("ASYNC-HI", review=False, on_event=events.append, timeout=120)
            history = await box.claude.session(done["session_id"])
            return done, events, history, await box.claude.sessions()

    done, events, history, sessions = asyncio.run(main())
    assert done["status"] == "completed" and done["result"] == "hello from async"
    assert any(e["type"] == "claude.result" for e in events)
    assert history["messages"][0]["type"] == "prompt"
    assert any(m.get("text") == "hello from async" for m in history["messages"])
    assert done["session_id"] in [s["session_id"] for s in sessions]


def test_cli_claude_ask_changes_approve(cli_env, claude_box, anthropic):
    anthropic.script(
        "CLI-WRITE", [tool_use("Write", file_path="cli.txt", content="from the cli\n")], [text("cli done")]
    )
    result = cli(cli_env, "claude", "ask", claude_box.name, "CLI-WRITE now")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "cli done\n"
    assert "[tool_use] Write cli.txt" in result.stderr and "vibebox claude changes" in result.stderr
    result = cli(cli_env, "claude", "changes", claude_box.name)
    assert result.returncode == 0 and "+from the cli" in result.stdout
    result = cli(cli_env, "claude", "approve", claude_box.name)
    assert result.returncode == 0 and result.stdout == "approved: cli.txt\n"
    assert claude_box.files.read_text("/workspace/cli.txt") == "from the cli\n"
    result = cli(cli_env, "claude", "status", claude_box.name, "--json")
    status = json.loads(result.stdout)
    assert status["enabled"] is True and status["usage"]["requests"] >= 2
    assert cli(cli_env, "claude", "approve", claude_box.name).returncode == 1  # nothing pending


def test_configure_sets_the_mode_and_defaults(claude_box):
    status = claude_box.claude.configure(mode="human", model="claude-haiku-4-5", permission_mode="plan")
    try:
        assert (status["mode"], status["model"], status["permission_mode"]) == ("human", "claude-haiku-4-5", "plan")
        assert status["effective_model"] == "claude-haiku-4-5"
        with pytest.raises(ClaudeDisabledByModeError) as refused:
            claude_box.claude.ask("hi", wait=False)
        assert refused.value.details["mode"] == "human"
        # None leaves a field alone; "" goes back to the template's default.
        again = claude_box.claude.configure(model="")
        assert again["mode"] == "human" and again["model"] is None and again["permission_mode"] == "plan"
    finally:
        claude_box.claude.configure(mode="assist", permission_mode="")
    assert claude_box.claude.status()["mode"] == "assist"


def test_cli_claude_configure(cli_env, claude_box):
    def configure(*options: str, env: dict[str, str] = cli_env):
        return cli(env, "claude", "configure", claude_box.name, *options)

    result = configure("--mode", "autonomous", "--model", "claude-haiku-4-5", "--permission-mode", "plan", "--json")
    try:
        assert result.returncode == 0, result.stderr
        wanted = ("autonomous", "claude-haiku-4-5", "plan")
        shown = json.loads(result.stdout)
        assert (shown["mode"], shown["model"], shown["permission_mode"]) == wanted
        status = claude_box.claude.status()  # what the server keeps
        assert (status["mode"], status["model"], status["permission_mode"]) == wanted
        assert status["own_key"] is False

        # Only what is given changes; '' goes back to the template's default.
        result = configure("--model", "")
        assert result.returncode == 0, result.stderr
        assert "autonomous" in result.stdout  # the status, as fields
        status = claude_box.claude.status()
        assert (status["mode"], status["model"], status["permission_mode"]) == ("autonomous", None, "plan")

        assert configure("--own-key", env={**cli_env, "ANTHROPIC_API_KEY": "sk-ant-cli-own"}).returncode == 0
        assert claude_box.claude.status()["own_key"] is True
        unset = configure("--own-key", env={k: v for k, v in cli_env.items() if k != "ANTHROPIC_API_KEY"})
        assert unset.returncode == 1 and "ANTHROPIC_API_KEY is not set" in unset.stderr
        assert claude_box.claude.status()["own_key"] is True  # nothing sent

        refused = configure("--mode", "solo")
        assert refused.returncode == 1 and "(validation_error)" in refused.stderr
        nothing = configure()
        assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    finally:
        back = configure("--mode", "assist", "--model", "", "--permission-mode", "", "--platform-key", "--json")
    assert back.returncode == 0, back.stderr
    status = claude_box.claude.status()
    assert (status["mode"], status["model"], status["permission_mode"], status["own_key"]) == (
        "assist",
        None,
        None,
        False,
    )
