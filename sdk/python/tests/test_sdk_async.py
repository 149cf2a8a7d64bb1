"""AsyncVibeBox: the same surface, awaited (each test runs its own event loop with asyncio.run)."""

from __future__ import annotations

import asyncio
import contextlib

import docker
import pytest
from vibebox_sdk import AsyncVibeBox, CommandExitError, SandboxNotFoundError


def gone(sandbox_id: str) -> bool:
    client = docker.from_env()
    try:
        return not client.containers.list(all=True, filters={"label": [f"vibebox.sandbox-id={sandbox_id}"]})
    finally:
        client.close()


def test_async_surface(server, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print('app')\n")

    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            sandbox = await vb.sandbox("python-3", name="async-box", metadata={"mode": "async"})
            try:
                result = await sandbox.run("x = 6\nx * 7")
                assert result.return_value == 42
                assert result.phase == "run"
                with pytest.raises(CommandExitError) as failed:
                    await sandbox.run("def broken(:\n    pass")
                # Python is not compiled ahead: its syntax errors are the run phase's
                assert (failed.value.result.phase, failed.value.result.exit_code) == ("run", 1)
                assert (await sandbox.exec("echo hi; exit 2")).exit_code == 2
                with pytest.raises(CommandExitError):
                    await sandbox.run("exit 1", language="shell", retries=1, retry_delay=0.05)

                await sandbox.upload(tmp_path / "src")
                assert await sandbox.download("src/app.py") == b"print('app')\n"
                await sandbox.download("src/", tmp_path / "back")
                assert (tmp_path / "back" / "app.py").read_text() == "print('app')\n"
                assert [e.name for e in await sandbox.files.list("src")] == ["app.py"]

                await sandbox.env.set("MODE", "async")
                assert (await sandbox.env.get("MODE")).value == "async"
                await sandbox.run("git init -q -b trunk /workspace/r", language="shell")
                assert (await sandbox.git.status(path="/workspace/r"))["branch"] == "trunk"

                assert [s.name for s in await vb.list(metadata={"mode": "async"})] == ["async-box"]
                assert (await vb.get("async-box")).id == sandbox.id
                assert (await sandbox.pause()).status == "paused"
                assert (await sandbox.resume()).status == "running"
            finally:
                await sandbox.destroy()
            assert gone(sandbox.id)

    asyncio.run(scenario())


def test_async_streams(server):
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb, vb.with_sandbox("python-3") as sandbox:
            chunks = []
            stream = await sandbox.exec("for i in 1 2 3; do echo $i; sleep 0.1; done", stream=True)
            stream.on_data(chunks.append)
            events = [event async for event in stream]
            assert [e.type for e in events] == ["stdout", "stdout", "stdout", "exit"]
            assert events[-1].result.stdout == "1\n2\n3\n"
            assert "".join(chunks) == "1\n2\n3\n"

            stream = await sandbox.exec("cat; exit 3", stream=True, stdin="fed")
            result = await stream.wait()
            assert (result.stdout, result.exit_code) == ("fed", 3)

            await sandbox.exec("echo async-log > /run/vibebox/stdout")
            entries = [e async for e in await sandbox.stream_logs(follow=False, tail="all")]
            assert any(e.text == "async-log" for e in entries)
            assert any(e.text == "async-log" for e in await sandbox.logs(tail="all", filter="stdout"))

    asyncio.run(scenario())


def test_async_helpers_clean_up(server):
    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            made = {}
            with pytest.raises(ValueError, match="inside"):
                async with vb.with_sandbox("python-3") as sandbox:
                    made["id"] = sandbox.id
                    raise ValueError("inside")
            assert gone(made["id"])

            boxes = await vb.create_many([{"template": "python-3"}, {"template": "node-20"}])
            assert {b.template for b in boxes} == {"python-3.13", "node-20"}
            assert await vb.destroy_all(boxes) == 2

            result = await vb.run_once("node-20", "return [1, 2, 3].map(x => x * 2)")
            assert result.return_value == [2, 4, 6]

            async def work(sandbox):
                return (await sandbox.run("print('eph')")).stdout

            assert await vb.with_ephemeral("python-3", work, timeout="5m") == "eph\n"
            assert await vb.list() == []
            with pytest.raises(SandboxNotFoundError):
                await vb.get("no-such-sandbox")
            assert {t.name for t in await vb.templates()} >= {"node-20", "python-3.13"}
            assert (await vb.health())["status"] == "ok"

    asyncio.run(scenario())


def test_async_background_terminal_logs_and_files(server, tmp_path):
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    (tmp_path / "tree" / "sub" / "f.txt").write_text("F")

    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb, vb.with_sandbox("python-3") as sandbox:
            process = await sandbox.exec("echo bg-start; sleep 60", background=True)
            assert any(p["process_id"] == process.process_id for p in await sandbox.processes())
            stream = await process.attach()
            first = await anext(aiter(stream))
            assert first.data == "bg-start\n"
            await process.kill()
            assert (await stream.wait()).exit_code != 0
            assert (await sandbox.execution(process.execution_id)).command == "echo bg-start; sleep 60"

            async with await sandbox.terminal(cols=90, rows=20) as term:
                assert term.session_id.startswith("term_")
                await term.resize(100, 30)
                await term.send("stty size; exit 4\r")
                output = b""
                while (chunk := await term.recv()) is not None:
                    output += chunk
                assert b"30 100" in output and term.exit_code == 4

            seen = asyncio.Event()

            def collect(entry):
                if "async-follow" in entry.text:
                    seen.set()

            task = sandbox.on_log(collect, filter="stdout")

            async def until_seen():  # written again until it arrives: the follow may start late
                while not seen.is_set():
                    await sandbox.exec("echo async-follow > /run/vibebox/stdout")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(seen.wait(), 1)

            await asyncio.wait_for(until_seen(), 60)
            task.cancel()

            await sandbox.files.upload_dir(tmp_path / "tree", "/workspace/tree")
            assert await sandbox.files.exists("tree/sub/f.txt")
            assert not await sandbox.files.exists("tree/nope")
            assert await sandbox.files.read_text("tree/sub/f.txt") == "F"
            assert (await sandbox.set_timeout("1h")).info.timeout == 3600

    asyncio.run(scenario())
