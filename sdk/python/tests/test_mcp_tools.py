"""Every MCP tool, called by a real MCP client (the `mcp` SDK's) over both transports:
Streamable HTTP at the live server's /mcp, and stdio through `vibebox mcp`.

Each call's effect is checked (through the tools themselves, and through the SDK where that is
the independent witness). Git works against repositories made inside the sandbox: a bare
`origin.git` served by `git daemon` on the sandbox's own loopback, and a path remote.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from conftest import VIBEBOX
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from vibebox_sdk import VibeBox

EVERY_TOOL = {
    "sandbox_create",
    "sandbox_list",
    "sandbox_info",
    "sandbox_destroy",
    "sandbox_exec",
    "sandbox_run_code",
    "run_code",
    "file_read",
    "file_write",
    "file_list",
    "file_delete",
    "watch_files",
    "git_clone",
    "git_status",
    "git_diff",
    "git_commit",
    "git_push",
    "env_get",
    "env_set",
    "sandbox_metrics",
    "packages_install",
    "packages_list",
}


@contextlib.asynccontextmanager
async def http_client(url: str, key: str, *, mode: str = "legacy", header: str = "Authorization") -> AsyncIterator:
    """An MCP client session on `url`/mcp with `key`."""
    value = f"Bearer {key}" if header == "Authorization" else key
    http = httpx2.AsyncClient(headers={header: value}, timeout=httpx2.Timeout(30, read=300))
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client:
        yield client


@contextlib.asynccontextmanager
async def stdio_client(url: str, key: str, *args: str) -> AsyncIterator:
    """An MCP client session on a `vibebox mcp` subprocess."""
    env = {**os.environ, "VIBEBOX_API_URL": url, "VIBEBOX_API_KEY": key, "NO_COLOR": "1"}
    async with Client(StdioServerParameters(command=VIBEBOX, args=["mcp", *args], env=env), mode="legacy") as client:
        yield client


async def call(client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """The tool's structured result; fails the test on a tool error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {result.content[0].text}"
    assert json.loads(result.content[0].text) == result.structured_content  # the same, as text
    return result.structured_content


async def fail(client, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """The error of a call expected to fail as a tool error (not a protocol error)."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} unexpectedly worked: {result.structured_content}"
    assert result.structured_content is None
    return json.loads(result.content[0].text)["error"]


GIT_SETUP = """set -e
git config --global user.email dev@example.com && git config --global user.name Dev
git init -q --bare -b main /workspace/origin.git
git init -q -b main /workspace/seed && cd /workspace/seed
echo hello > README.md && git add README.md && git commit -qm init
git push -q /workspace/origin.git main
git --git-dir=/workspace/origin.git rev-parse main
"""
DAEMON = (
    "git daemon --reuseaddr --export-all --enable=receive-pack --base-path=/workspace"
    " --listen=127.0.0.1 --port=9418 /workspace"
)
WAIT_FOR_DAEMON = """for i in $(seq 100); do
  git ls-remote git://127.0.0.1/origin.git >/dev/null 2>&1 && exit 0; sleep 0.1
done; exit 1"""


async def exercise_every_tool(client, vb: VibeBox) -> None:
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) == EVERY_TOOL
    for tool in listed.values():
        assert tool.description and tool.input_schema["type"] == "object" and tool.output_schema["type"] == "object"
    # every language the server's /execute runs (apps/sandboxes/languages.py RUNNABLE), and auto
    languages = listed["sandbox_run_code"].input_schema["properties"]["language"]["enum"]
    assert set(languages) == {"auto", "javascript", "typescript", "python", "shell", "go", "rust", "ruby", "java"}
    assert listed["sandbox_run_code"].output_schema["properties"]["phase"]

    name = f"mcp-{uuid.uuid4().hex[:8]}"
    created = await call(
        client,
        "sandbox_create",
        template="python-3",
        name=name,
        timeout="15m",
        env={"FROM_CREATE": "yes"},
        metadata={"suite": "mcp"},
    )
    sandbox_id = created["id"]
    try:
        assert (created["name"], created["template"], created["status"]) == (name, "python-3.13", "running")
        assert created["expires_at"] and created["metadata"] == {"suite": "mcp"}

        listing = await call(client, "sandbox_list", name=name)
        assert (listing["total"], [s["id"] for s in listing["sandboxes"]]) == (1, [sandbox_id])
        info = await call(client, "sandbox_info", sandbox_id=name)  # names work as well as ids
        assert (info["id"], info["status"]) == (sandbox_id, "running")

        # Commands: cwd, env (the sandbox's and the call's), exit codes, stdin, argv lists, timeouts.
        ran = await call(
            client, "sandbox_exec", sandbox_id=sandbox_id, command="echo $FROM_CREATE $EXTRA; pwd", cwd="/tmp",
            env={"EXTRA": "extra"},
        )  # fmt: skip
        assert (ran["stdout"], ran["exit_code"], ran["status"]) == ("yes extra\n/tmp\n", 0, "completed")
        failed = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command="echo oops >&2; exit 3")
        assert (failed["exit_code"], failed["stderr"]) == (3, "oops\n")  # a result, not a tool error
        echoed = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command=["cat"], stdin="from stdin")
        assert echoed["stdout"] == "from stdin"
        slow = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command="sleep 30", timeout=1)
        assert (slow["status"], slow["exit_code"]) == ("timeout", None)
        assert slow["duration_ms"] < 15000

        code = await call(
            client, "sandbox_run_code", sandbox_id=sandbox_id, code="import os\nprint(os.getcwd())\n6 * 7",
            language="python", cwd="/workspace",
        )  # fmt: skip
        assert (code["return_value"], code["stdout"], code["language"]) == (42, "/workspace\n", "python")
        assert code["phase"] == "run"

        # Files.
        written = await call(
            client, "file_write", sandbox_id=sandbox_id, path="notes/hello.txt", content="héllo\n", mode="640"
        )
        assert (written["path"], written["size"]) == ("/workspace/notes/hello.txt", 7)
        read = await call(client, "file_read", sandbox_id=sandbox_id, path="/workspace/notes/hello.txt")
        assert (read["content"], read["encoding"], read["size"], read["truncated"]) == ("héllo\n", "utf-8", 7, False)
        assert vb.get(sandbox_id).files.read("notes/hello.txt") == "héllo\n".encode()
        mode = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command="stat -c %a notes/hello.txt")
        assert mode["stdout"] == "640\n"
        part = await call(client, "file_read", sandbox_id=sandbox_id, path="notes/hello.txt", max_bytes=2)
        assert (part["content"], part["truncated"]) == ("h", True)  # never half a character

        blob = bytes(range(256))
        await call(
            client, "file_write", sandbox_id=sandbox_id, path="bin/blob", content=base64.b64encode(blob).decode(),
            encoding="base64",
        )  # fmt: skip
        binary = await call(client, "file_read", sandbox_id=sandbox_id, path="bin/blob")
        assert (binary["encoding"], base64.b64decode(binary["content"])) == ("base64", blob)

        listed_files = await call(client, "file_list", sandbox_id=sandbox_id, path="notes")
        assert listed_files["path"] == "/workspace/notes"
        assert [(e["name"], e["type"], e["size"]) for e in listed_files["entries"]] == [("hello.txt", "file", 7)]
        everything = await call(client, "file_list", sandbox_id=sandbox_id, recursive=True, max_entries=2)
        assert len(everything["entries"]) == 2 and everything["truncated"]

        assert (await fail(client, "file_delete", sandbox_id=sandbox_id, path="notes"))["code"]  # not empty
        deleted = await call(client, "file_delete", sandbox_id=sandbox_id, path="notes/hello.txt")
        assert deleted == {"path": "notes/hello.txt", "deleted": True}
        assert (await fail(client, "file_read", sandbox_id=sandbox_id, path="notes/hello.txt"))["code"] == (
            "file_not_found"
        )
        await call(client, "file_delete", sandbox_id=sandbox_id, path="bin", recursive=True)
        assert not vb.get(sandbox_id).files.exists("bin")

        # Environment variables.
        env = await call(client, "env_set", sandbox_id=sandbox_id, variables={"API_MODE": "test", "FROM_CREATE": None})
        assert env["variables"]["API_MODE"] == {"value": "test", "secret": False}
        assert "FROM_CREATE" not in env["variables"]
        secret = await call(client, "env_set", sandbox_id=sandbox_id, variables={"TOKEN": "s3cr3t"}, secret=True)
        assert secret["variables"]["TOKEN"] == {"value": "********", "secret": True}
        got = await call(client, "env_get", sandbox_id=sandbox_id, name="API_MODE")
        assert got == {"variables": {"API_MODE": {"value": "test", "secret": False}}}
        assert set((await call(client, "env_get", sandbox_id=sandbox_id))["variables"]) == {"API_MODE", "TOKEN"}
        used = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command="echo $API_MODE $TOKEN $FROM_CREATE")
        assert used["stdout"] == "test s3cr3t\n"
        assert (await fail(client, "env_get", sandbox_id=sandbox_id, name="FROM_CREATE"))["code"] == "env_var_not_found"

        # Git: an origin made in the sandbox, served by git daemon on the sandbox's own loopback.
        setup = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command=GIT_SETUP)
        assert setup["exit_code"] == 0, setup["stderr"]
        first_commit = setup["stdout"].strip()
        vb.get(sandbox_id).exec(DAEMON, background=True, timeout="15m")
        assert (await call(client, "sandbox_exec", sandbox_id=sandbox_id, command=WAIT_FOR_DAEMON))["exit_code"] == 0

        clone = await call(client, "git_clone", sandbox_id=sandbox_id, url="git://127.0.0.1/origin.git", path="work")
        assert clone == {"path": "/workspace/work", "url": "git://127.0.0.1/origin.git", "branch": "main",
                         "commit": first_commit}  # fmt: skip
        await call(client, "file_write", sandbox_id=sandbox_id, path="work/README.md", content="hello\nchanged\n")
        await call(client, "file_write", sandbox_id=sandbox_id, path="work/app.py", content="print('app')\n")
        status = await call(client, "git_status", sandbox_id=sandbox_id, path="work")
        assert (status["branch"], status["upstream"], status["clean"]) == ("main", "origin/main", False)
        assert status["unstaged"] == [{"path": "README.md", "status": "M"}] and status["untracked"] == ["app.py"]
        diff = await call(client, "git_diff", sandbox_id=sandbox_id, path="work")
        assert "+changed" in diff["diff"] and not diff["truncated"]
        assert diff["files"] == [{"path": "README.md", "additions": 1, "deletions": 0, "binary": False}]
        assert (await call(client, "git_diff", sandbox_id=sandbox_id, path="work", staged=True))["diff"] == ""

        commit = await call(
            client, "git_commit", sandbox_id=sandbox_id, path="work", message="feat: app", all=True,
            author={"name": "MCP Agent", "email": "agent@example.com"},
        )  # fmt: skip
        assert len(commit["commit"]) == 40 and commit["message"] == "feat: app"
        after = await call(client, "git_status", sandbox_id=sandbox_id, path="work")
        assert (after["clean"], after["ahead"], after["commit"]) == (True, 1, commit["commit"])
        author = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command="git -C work log -1 --format=%an")
        assert author["stdout"] == "MCP Agent\n"
        nothing = await fail(client, "git_commit", sandbox_id=sandbox_id, path="work", message="again")
        assert nothing["code"] == "nothing_to_commit"

        pushed = await call(client, "git_push", sandbox_id=sandbox_id, path="work")
        assert (pushed["remote"], pushed["branch"], pushed["commit"]) == ("origin", "main", commit["commit"])
        origin = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command="git -C origin.git rev-parse main")
        assert origin["stdout"].strip() == commit["commit"]
        # A path remote: another bare repository in the same sandbox.
        remote = "git init -q --bare /workspace/backup.git && git -C work remote add backup /workspace/backup.git"
        assert (await call(client, "sandbox_exec", sandbox_id=sandbox_id, command=remote))["exit_code"] == 0
        backup = await call(
            client, "git_push", sandbox_id=sandbox_id, path="work", remote="backup", branch="main", set_upstream=True
        )
        assert backup["remote"] == "backup"
        log = "git -C backup.git log --oneline main"
        mirrored = await call(client, "sandbox_exec", sandbox_id=sandbox_id, command=log)
        assert mirrored["stdout"].split("\n")[0].endswith("feat: app")

        # A file watch for a moment: nothing changes, so no events, and it ends by its time.
        watched = await call(client, "watch_files", sandbox_id=sandbox_id, path="work", seconds=1)
        assert (watched["path"], watched["events"], watched["truncated"]) == ("/workspace/work", [], False)

        # Metrics: the dd below is in the workspace's size.
        await call(client, "sandbox_exec", sandbox_id=sandbox_id, command="head -c 2097152 /dev/zero > big.bin")
        metrics = await call(client, "sandbox_metrics", sandbox_id=sandbox_id)
        assert (metrics["sandbox_id"], metrics["status"]) == (sandbox_id, "running")
        assert 0 < metrics["memory"]["usage"] < metrics["memory"]["limit"]
        assert metrics["disk"]["workspace"] >= 2 * 1024 * 1024
        assert metrics["pids"]["current"] >= 2  # sandboxd, git daemon
        assert metrics["cpu"]["limit"] > 0 and metrics["cpu"]["online_cpus"] >= 1

        destroyed = await call(client, "sandbox_destroy", sandbox_id=sandbox_id)
        assert destroyed == {"sandbox_id": sandbox_id, "destroyed": True}
        assert vb.get(sandbox_id).status == "destroyed"
        gone = await call(client, "sandbox_list", name=name)
        assert gone["total"] == 0
    finally:
        vb.get(sandbox_id).destroy()  # idempotent


def test_every_tool_over_streamable_http(server, vb):
    async def scenario():
        async with http_client(server.url, server.key) as client:
            await exercise_every_tool(client, vb)

    asyncio.run(scenario())


def test_every_tool_over_stdio(server, vb):
    async def scenario():
        async with stdio_client(server.url, server.key) as client:
            await exercise_every_tool(client, vb)

    asyncio.run(scenario())


@pytest.mark.parametrize("mode", ["auto", "2026-07-28"])
def test_newer_protocol_versions_over_http(server, sandbox, mode):
    """Clients that speak the 2026-07-28 protocol (no initialize handshake) get the same tools."""

    async def scenario():
        async with http_client(server.url, server.key, mode=mode) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == EVERY_TOOL
            ran = await call(client, "sandbox_exec", sandbox_id=sandbox.id, command="echo $((6 * 7))")
            assert ran["stdout"] == "42\n"
            assert (await fail(client, "sandbox_info", sandbox_id="sbx_missing"))["code"] == "sandbox_not_found"

    asyncio.run(scenario())
