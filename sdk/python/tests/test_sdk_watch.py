"""`sandbox.files.watch` (sync and async), `vibebox watch` and the MCP tool `watch_files`, against the
live server and real sandboxes: 100 files made by one command all reported, a watch that outlives a
pause and resume, one that ends with its directory, one whose connection drops and comes back, and
the refusals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time

import docker
import pytest
from conftest import VIBEBOX, cli
from test_mcp_tools import call, fail, http_client
from vibebox_sdk import (
    AsyncVibeBox,
    AuthenticationError,
    FileEvent,
    Sandbox,
    SandboxFileNotFoundError,
    SandboxNotFoundError,
    ValidationError,
    VibeBox,
)

from tests.relay import Relay

HUNDRED = "for i in $(seq 100); do echo $i > f$i; done"
NAMES = {f"/workspace/f{i}" for i in range(1, 101)}


def wait_until(condition, what: str, timeout: float = 60.0):
    """Polls `condition` until it is true (a deadline, never a fixed pause)."""
    deadline = time.monotonic() + timeout
    while not (answer := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return answer


def watching(sandbox_id: str) -> bool:
    """sandboxd (the container's PID 1) holds an inotify instance: a watch is in place. Read from
    the host, for clients (the MCP tool) that do not say when their watch began."""
    engine = docker.from_env()
    try:
        (container,) = engine.containers.list(filters={"label": [f"vibebox.sandbox-id={sandbox_id}"]})
        pid = container.attrs["State"]["Pid"]
    finally:
        engine.close()
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
    return count > 0


def created(events) -> set[str]:
    return {e.path for e in events if e.type == "create"}


def test_callback_watch_sees_a_hundred_files_and_outlives_a_pause(sandbox):
    events: list[FileEvent] = []
    watch = sandbox.files.watch("/workspace", events.append, excludes=["node_modules"])
    try:
        sandbox.exec(f"{HUNDRED}; mkdir -p node_modules/x; mv f1 moved")
        wait_until(lambda: created(events) >= NAMES, "100 creates")
        wait_until(lambda: any(e.type == "rename" for e in events), "the rename")
        rename = next(e for e in events if e.type == "rename")
        assert (rename.from_path, rename.path) == ("/workspace/f1", "/workspace/moved")
        assert not [e for e in events if "node_modules" in e.path]
        assert not [e for e in events if e.type == "overflow"]

        sandbox.pause()
        sandbox.resume()
        sandbox.exec("echo later > resumed.txt")
        wait_until(lambda: any(e.path == "/workspace/resumed.txt" for e in events), "the event after the resume")
        assert watch.ended is None and watch.error is None
    finally:
        watch.stop()
    assert watch.wait(10) == "stopped"


def test_iterator_watch_ends_with_its_directory(sandbox):
    sandbox.exec("mkdir -p work/sub")
    seen = []
    with sandbox.files.watch("work", recursive=False) as watch:
        sandbox.exec("touch work/sub/deep work/top && rm -rf work")
        for event in watch:
            seen.append(event)
        assert watch.ended == "root_removed"
    paths = {e.path for e in seen}
    assert "/workspace/work/top" in paths and "/workspace/work/sub/deep" not in paths  # not recursive
    assert seen[-1] == FileEvent(type="end", reason="root_removed")


def test_timeout_ends_the_watch(sandbox):
    with sandbox.files.watch(timeout="1s") as watch:
        assert [e.to_dict() for e in watch] == [{"type": "end", "reason": "timeout"}]


def test_refusals(server, sandbox, outsider_key):
    sandbox.exec("echo x > afile")
    with pytest.raises(SandboxFileNotFoundError):
        sandbox.files.watch("missing")
    with pytest.raises(ValidationError) as refused:
        sandbox.files.watch("afile")  # not a directory
    assert refused.value.code == "invalid_path"
    with pytest.raises(ValidationError) as refused:
        sandbox.files.watch(excludes=[""])
    assert refused.value.code == "validation_error"
    with VibeBox(api_key=outsider_key, base_url=server.url) as other, pytest.raises(SandboxNotFoundError):
        Sandbox(other, sandbox.info).files.watch()  # another user's sandbox does not exist for them
    with VibeBox(api_key="vb_live_nonsense", base_url=server.url) as anonymous, pytest.raises(AuthenticationError):
        Sandbox(anonymous, sandbox.info).files.watch()


def test_a_dropped_connection_is_opened_again(server, sandbox):
    host, port = server.url.removeprefix("http://").split(":")
    relay = Relay((host, int(port)))
    try:
        with VibeBox(api_key=server.key, base_url=f"http://127.0.0.1:{relay.port}") as through:
            box = through.get(sandbox.id)
            events: list[FileEvent] = []
            watch = box.files.watch("/workspace", events.append)
            sandbox.exec("touch before.txt")
            wait_until(lambda: any(e.path == "/workspace/before.txt" for e in events), "the first event")
            opened = relay.accepted
            relay.cut()
            # A watch that gave up says why (its error) instead of a bare timeout.
            wait_until(lambda: watch.error or any(e.reason == "reconnect" for e in events), "the reconnect event")
            assert watch.error is None, repr(watch.error)
            assert relay.accepted > opened
            reconnect = next(e for e in events if e.reason == "reconnect")
            assert (reconnect.type, reconnect.path) == ("overflow", "/workspace")
            sandbox.exec("touch after.txt")
            wait_until(lambda: any(e.path == "/workspace/after.txt" for e in events), "an event after it")
            watch.stop()
            assert watch.error is None
    finally:
        relay.close()


def test_async_watch(server):
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            sandbox = await vb.sandbox("python-3")
            try:
                events: list[FileEvent] = []

                async def collect(event):
                    events.append(event)

                watch = await sandbox.files.watch("/workspace", collect)
                await sandbox.exec(HUNDRED)
                while not created(events) >= NAMES:
                    await asyncio.sleep(0.05)
                await sandbox.pause()
                await sandbox.resume()
                await sandbox.exec("touch resumed.txt")
                while not any(e.path == "/workspace/resumed.txt" for e in events):
                    await asyncio.sleep(0.05)
                await watch.stop()
                assert await watch.wait(10) == "stopped"

                await sandbox.exec("mkdir gone")
                async with await sandbox.files.watch("gone") as watch:
                    await sandbox.exec("touch gone/a && rm -rf gone")
                    seen = [event async for event in watch]
                assert seen[-1].to_dict() == {"type": "end", "reason": "root_removed"}
                assert "/workspace/gone/a" in {e.path for e in seen}

                with pytest.raises(SandboxFileNotFoundError):
                    await sandbox.files.watch("missing")
            finally:
                await sandbox.destroy()

    asyncio.run(scenario())


def test_cli_watch(sandbox, cli_env):
    sandbox.exec("mkdir -p cli")
    command = [VIBEBOX, "watch", sandbox.id, "cli", "--json"]
    process = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "watching /workspace/cli" in process.stderr.readline()  # printed once the watch is in place
        sandbox.exec("cd cli && for i in $(seq 100); do echo $i > f$i; done && mv f1 g1")
        lines, wanted = [], {f"/workspace/cli/f{i}" for i in range(1, 101)}
        while not (
            {e["path"] for e in lines if e["type"] == "create"} >= wanted and any(e["type"] == "rename" for e in lines)
        ):
            lines.append(json.loads(process.stdout.readline()))
        rename = next(e for e in lines if e["type"] == "rename")
        assert (rename["from"], rename["path"]) == ("/workspace/cli/f1", "/workspace/cli/g1")
        sandbox.exec("rm -rf cli")  # the watch ends with its directory, and so does the command
        rest = process.stdout.read()
        assert process.wait(60) == 0
        assert json.loads(rest.strip().splitlines()[-1]) == {"type": "end", "reason": "root_removed"}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(30)

    # Text output, --no-recursive, Ctrl-C.
    sandbox.exec("mkdir -p txt/sub")
    process = subprocess.Popen(
        [VIBEBOX, "watch", sandbox.name, "/workspace/txt", "--no-recursive"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "watching" in process.stderr.readline()
        sandbox.exec("touch txt/sub/deep && mkdir txt/dir && mv txt/dir txt/dir2")
        lines = [process.stdout.readline().split()]
        while lines[-1][0] != "rename":
            lines.append(process.stdout.readline().split())
        assert ["create", "/workspace/txt/dir/"] in lines, lines
        assert lines[-1] == ["rename", "/workspace/txt/dir", "->", "/workspace/txt/dir2"]
        assert not [line for line in lines if "deep" in line[-1]]
        process.send_signal(signal.SIGINT)
        assert process.wait(30) in (0, 130)
    finally:
        if process.poll() is None:
            process.kill()

    missing = cli(cli_env, "watch", sandbox.id, "nowhere")
    assert missing.returncode == 3 and "file_not_found" in missing.stderr
    usage = cli(cli_env, "watch", sandbox.id, "--timeout", "soon")
    assert usage.returncode == 2


def test_mcp_watch_files(server, sandbox, outsider_key):
    async def scenario():
        async with http_client(server.url, server.key) as client:
            background = asyncio.ensure_future(
                call(client, "watch_files", sandbox_id=sandbox.id, path="/workspace", seconds=8, max_events=500)
            )
            # The tool collects for 8 s: the command runs meanwhile, once the watch is there.
            await asyncio.to_thread(wait_until, lambda: watching(sandbox.id), "the tool's watch")
            await asyncio.to_thread(sandbox.exec, f"{HUNDRED}; mv f1 renamed")
            result = await background
            assert {e["path"] for e in result["events"] if e["type"] == "create"} >= NAMES
            assert result["path"] == "/workspace" and result["ended"] is None and not result["truncated"]
            assert any(e["type"] == "rename" and e["from_path"] == "/workspace/f1" for e in result["events"])

            capped = asyncio.ensure_future(call(client, "watch_files", sandbox_id=sandbox.id, seconds=60, max_events=5))
            await asyncio.to_thread(wait_until, lambda: watching(sandbox.id), "the tool's watch")
            await asyncio.to_thread(sandbox.exec, "for i in $(seq 20); do touch g$i; done")
            result = await capped
            assert result["truncated"] and len(result["events"]) == 5

            error = await fail(client, "watch_files", sandbox_id=sandbox.id, path="missing", seconds=1)
            assert error["code"] == "file_not_found"
        async with http_client(server.url, outsider_key) as client:
            error = await fail(client, "watch_files", sandbox_id=sandbox.id, seconds=1)
            assert (error["code"], error["status"]) == ("sandbox_not_found", 404)

    asyncio.run(scenario())
