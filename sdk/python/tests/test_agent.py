"""The orchestrator (`vibebox_sdk.agent`) against the live server and the real engine."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import docker
import pytest
from conftest import OPERATOR_KEY, LiveServer
from vibebox_sdk import VibeBox
from vibebox_sdk.agent import AsyncVibeBoxAgent, TaskFailedError, VibeBoxAgent

from tests.anthropic_stub import text, tool_use
from tests.waiting import wait_for


@pytest.fixture
def agent(server: LiveServer) -> Iterator[VibeBoxAgent]:
    with VibeBoxAgent(api_key=server.key, base_url=server.url, max_parallel_sandboxes=6) as running:
        yield running
    assert running.alive() == []


def tagged(vb: VibeBox, tag: str) -> list:
    return vb.list(metadata={"agentTest": tag})


class Watcher:
    """Counts this test's live sandboxes through the API while the work runs."""

    def __init__(self, vb: VibeBox, tag: str) -> None:
        self.vb, self.tag, self.peak, self.samples = vb, tag, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, len(tagged(self.vb, self.tag)))
            self.samples += 1
            self._stop.wait(0.1)  # the sampling interval

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_map_is_bounded_keeps_order_reuses_sandboxes_and_cleans_up(vb, agent):
    tag = uuid.uuid4().hex[:8]
    used = []

    def double(item, sandbox):
        used.append(sandbox.id)
        time.sleep(0.5)  # the work takes a while: the workers overlap
        return int(sandbox.exec(f"echo $(( {item} * 2 ))").stdout)

    watcher = Watcher(vb, tag)
    try:
        results = agent.map(range(9), double, parallelism=3, template="python-3", metadata={"agentTest": tag})
    finally:
        watcher.stop()
    assert results == [i * 2 for i in range(9)]
    assert watcher.samples > 5 and 2 <= watcher.peak <= 3
    assert len(set(used)) == 3  # each worker's sandbox took several items
    assert tagged(vb, tag) == [] and agent.alive() == []


def test_failures_are_per_item_retried_in_a_fresh_sandbox(vb, agent):
    tag = uuid.uuid4().hex[:8]
    seen: dict[int, list[str]] = {}
    errors_seen = []

    def flaky(item, sandbox):
        seen.setdefault(item, []).append(sandbox.id)
        if item == 5 or (item == 2 and len(seen[item]) == 1):
            raise RuntimeError(f"item {item} broke")
        return item

    results = agent.map(
        range(6),
        flaky,
        parallelism=2,
        template="python-3",
        retries=1,
        return_exceptions=True,
        on_error=lambda error, item, attempt: errors_seen.append((item, attempt)),
        metadata={"agentTest": tag},
    )
    assert results[:5] == [0, 1, 2, 3, 4]
    assert isinstance(results[5], TaskFailedError) and results[5].attempts == 2
    assert "item 5 broke" in str(results[5].cause)
    assert seen[2][0] != seen[2][1]  # the failed attempt's sandbox was replaced
    assert sorted(errors_seen) == [(2, 1), (5, 1), (5, 2)]
    with pytest.raises(TaskFailedError):
        agent.map([1, 2], lambda item, sandbox: 1 / 0, parallelism=2, template="python-3", metadata={"agentTest": tag})
    assert tagged(vb, tag) == []


def test_context_reaches_the_function_and_reduce(agent):
    ctx = agent.create_context(shared_data={"apiKey": "k-123", "suffix": "!"})

    def fn(item, sandbox, context):
        return sandbox.exec(f"echo {item}{context.get('suffix')}").stdout.strip() + context.get("apiKey")

    results = agent.map(["a", "b"], fn, parallelism=2, template="python-3", context=ctx)
    assert results == ["a!k-123", "b!k-123"]
    assert agent.reduce(results, lambda total, r: total + len(r), 0) == 14


def test_pool_submit_wait_shutdown(vb, agent):
    pool = agent.create_pool(workers=2, template="python-3", persistent=True)
    workers = pool.sandbox_ids
    assert len(workers) == 2
    futures = [
        pool.submit(lambda sandbox, n: (sandbox.id, sandbox.exec(f"echo {n}").stdout.strip()), n) for n in range(5)
    ]
    results = pool.wait_for_completion(timeout=120)
    assert [r[1] for r in results] == ["0", "1", "2", "3", "4"] and futures[0].result() == results[0]
    assert {r[0] for r in results} <= set(workers)  # persistent: the same two sandboxes did all the jobs
    pool.shutdown()
    assert all(vb.get(sandbox_id).status == "destroyed" for sandbox_id in workers)
    with pytest.raises(RuntimeError):
        pool.submit(print)


def test_stream_results_yields_updates_from_several_sandboxes(agent):
    tasks = ["echo first; sleep 1; echo second", "echo other", lambda sandbox: sandbox.id]
    updates = list(agent.stream_results(tasks, parallelism=3, template="python-3"))
    started = {u.index: u.sandbox_id for u in updates if u.status == "started"}
    assert set(started) == {0, 1, 2} and len(set(started.values())) >= 2
    output = "".join(u.logs for u in updates if u.status == "output" and u.index == 0)
    assert output == "first\nsecond\n"
    completed = {u.index: u.result for u in updates if u.status == "completed"}
    assert completed[2] == started[2] and completed[1].stdout == "other\n"


def test_task_runs_a_tool_use_loop_in_its_sandbox(server, anthropic):
    anthropic.script(
        "AGENT-TASK",
        [tool_use("run_command", command="echo from-the-sandbox > /workspace/out.txt && uname -s")],
        [tool_use("read_file", path="out.txt")],
        [text("done: from-the-sandbox")],
    )
    with VibeBoxAgent(
        api_key=server.key, base_url=server.url, claude_api_key="sk-ant-direct", claude_base_url=anthropic.url
    ) as agent:
        task = agent.task("AGENT-TASK: look around", template="python-3")
        result = task.wait_for_completion(timeout=120)
    assert task.status == "completed" and result.text == "done: from-the-sandbox" and result.turns == 3
    names = [call["name"] for call in result.tool_calls]
    assert names == ["run_command", "read_file"]
    assert '"exit_code": 0' in result.tool_calls[0]["output"] and "Linux" in result.tool_calls[0]["output"]
    assert result.tool_calls[1]["output"] == "from-the-sandbox\n"  # written by the command, in the sandbox
    assert result.usage["input_tokens"] > 0 and len(result.transcript) == 6
    last = anthropic.conversation_requests("AGENT-TASK")[-1]
    headers = {k.lower(): v for k, v in last["headers"].items()}
    assert headers.get("authorization") == "Bearer sk-ant-direct"  # the Anthropic SDK's way
    assert {tool["name"] for tool in last["body"]["tools"]} >= {"run_command", "read_file", "write_file"}


def test_task_through_the_sandboxes_gateway_and_with_claude_code(server, anthropic):
    anthropic.script("GW-TASK", [text("answered via the gateway")])
    anthropic.script("CC-TASK", [text("answered by Claude Code")])
    with VibeBoxAgent(api_key=server.key, base_url=server.url) as agent:
        via_gateway = agent.task("GW-TASK hi").wait_for_completion(timeout=120)
        via_claude_code = agent.task("CC-TASK hi", engine="claude-code").wait_for_completion(timeout=120)
    assert via_gateway.text == "answered via the gateway"
    headers = {k.lower(): v for k, v in anthropic.conversation_requests("GW-TASK")[0]["headers"].items()}
    assert headers["x-api-key"] == OPERATOR_KEY
    assert via_claude_code.text == "answered by Claude Code"


SCRIPT = """
import sys, time
from vibebox_sdk.agent import VibeBoxAgent
agent = VibeBoxAgent(api_key=sys.argv[1], base_url=sys.argv[2], sandbox_ttl="10m")
agent.map(range(2), lambda item, sandbox: time.sleep(600), parallelism=2, template="python-3",
          metadata={"agentTest": sys.argv[3]})
"""


def test_a_killed_orchestrator_leaves_only_sandboxes_that_expire(server, vb):
    tag = uuid.uuid4().hex[:8]
    child = subprocess.Popen([sys.executable, "-c", SCRIPT, server.key, server.url, tag])
    try:

        def both_in_fn() -> bool:  # both sandboxes running, the child sleeping in fn
            assert child.poll() is None, "the orchestrator exited"
            return len([s for s in tagged(vb, tag) if s.status == "running"]) >= 2

        wait_for(both_in_fn, timeout=120, interval=0.2, what="both sandboxes of the orchestrator")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    left = tagged(vb, tag)
    try:
        assert len(left) == 2
        for sandbox in left:
            assert sandbox.info.ephemeral and sandbox.info.timeout == 600 and sandbox.info.expires_at
    finally:
        for sandbox in left:
            sandbox.destroy()
    assert tagged(vb, tag) == []


def test_async_agent_map_stream_and_task(server, vb, anthropic):
    tag = uuid.uuid4().hex[:8]
    anthropic.script("ASYNC-TASK", [tool_use("run_command", command="echo async-ran")], [text("async done")])

    async def main():
        async with AsyncVibeBoxAgent(
            api_key=server.key, base_url=server.url, claude_api_key="k", claude_base_url=anthropic.url
        ) as agent:
            live = []

            async def fn(item, sandbox):
                live.append(len(agent.alive()))
                await asyncio.sleep(0.3)
                return (await sandbox.exec(f"echo {item}")).stdout.strip()

            mapped = await agent.map(range(6), fn, parallelism=2, template="python-3", metadata={"agentTest": tag})
            updates = [
                u async for u in agent.stream_results(["echo x; echo y", "echo z"], parallelism=2, template="python-3")
            ]
            result = await agent.task("ASYNC-TASK", template="python-3")
            return mapped, max(live), updates, result, agent.alive()

    mapped, peak, updates, result, alive = asyncio.run(main())
    assert mapped == [str(i) for i in range(6)] and peak <= 2 and alive == []
    assert "".join(u.logs for u in updates if u.index == 0 and u.status == "output") == "x\ny\n"
    assert {u.index for u in updates if u.status == "completed"} == {0, 1}
    assert result.text == "async done" and "async-ran" in result.tool_calls[0]["output"]
    assert tagged(vb, tag) == []


def test_runs_are_recorded_for_the_dashboard(agent):
    def work(item, sandbox):
        if item == "bad":
            raise ValueError("bad item")
        return {"item": item, "sandbox": sandbox.id}

    results = agent.map(["a", "bad", "c"], work, parallelism=2, template="python-3", return_exceptions=True, name="rec")
    run = agent.run()
    assert run["id"] == agent.last_run_id and run["name"] == "rec" and run["kind"] == "map"
    assert run["status"] == "failed" and run["parallelism"] == 2 and run["template"] == "python-3"
    assert run["counts"] == {"pending": 0, "running": 0, "completed": 2, "failed": 1, "cancelled": 0, "total": 3}
    tasks = run["tasks"]
    assert [t["name"] for t in tasks] == ["a", "bad", "c"] and [t["status"] for t in tasks] == [
        "completed",
        "failed",
        "completed",
    ]
    assert tasks[0]["sandboxId"] == results[0]["sandbox"] and tasks[0]["result"] == results[0]
    assert "bad item" in tasks[1]["error"] and tasks[1]["attempts"] == 1 and tasks[1]["finishedAt"]
    assert run["id"] in [r["id"] for r in agent.runs()]


# ---- execute_all with the spec's {"repo": ..., "task": ...} form: a server whose sandboxes reach a git server ----


@pytest.fixture(scope="module")
def git_server_and_vibebox(anthropic) -> Iterator[tuple[LiveServer, str]]:
    """A smart-HTTP git server (tests/gitserver) on a network of its own, and a VibeBox
    server (own instance label, model gateway to the `anthropic` stub) whose sandboxes join it.
    Yields (server, the repository's URL with its credentials)."""
    from common import live_server

    from tests import sessions
    from tests.gitservers import start_http_git_server

    instance = sessions.new_label("sdkgit", 10)
    network_name = f"vibebox-{instance}-git"
    labels = {"vibebox.test-fixture": "sdk-agent-git", "vibebox.test-instance": instance}
    engine = docker.from_env()
    image = next(image.tags[0] for image in engine.images.list("vibebox/python-3.13"))
    gateway = {"VIBEBOX_ANTHROPIC_UPSTREAM": anthropic.url, "VIBEBOX_ANTHROPIC_API_KEY": OPERATOR_KEY}
    with sessions.claimed(engine, instance):
        network = engine.networks.create(network_name, driver="bridge", labels=labels)
        token = uuid.uuid4().hex
        git = start_http_git_server(
            engine,
            image,
            name=f"vibebox-{instance}-git-http",
            network=network_name,
            labels=labels,
            user="agent",
            token=token,
        )
        try:
            with live_server(instance, gateway=True, VIBEBOX_EXTRA_NETWORKS=network_name, **gateway) as running:
                yield running, f"http://agent:{token}@git-http:8080/project.git"
        finally:
            git.remove(force=True)
            network.reload()
            for attached in network.containers:
                network.disconnect(attached, force=True)
            network.remove()
            engine.close()


def test_execute_all_takes_the_specs_repo_and_task_dicts(git_server_and_vibebox, anthropic):
    """The spec's `orchestrator.execute_all([{"repo": ..., "task": ...}])`: each repo cloned into
    /repo of its own sandbox, Claude (through the sandbox's gateway) working on the task there;
    `{"repo", "command"}` runs a command in /repo. The run's record names no credential."""
    server, repo = git_server_and_vibebox
    anthropic.script("PY-ORCH-TESTS", [tool_use("run_command", command="cd /repo && npm test")], [text("tests ran")])
    with VibeBoxAgent(api_key=server.key, base_url=server.url) as agent:
        orchestrator = agent.orchestrate(max_workers=2, template="node-22-claude-code")
        results = orchestrator.execute_all(
            [
                {"repo": repo, "task": "PY-ORCH-TESTS: Run tests"},
                {"repo": repo, "branch": "develop", "command": "cat DEVELOP.md"},
            ]
        )
        run = agent.run()
        with pytest.raises(ValueError, match="unknown keys"):
            orchestrator.execute_all([{"repo": repo, "tsak": "typo"}])
        with pytest.raises(TypeError):
            orchestrator.execute_all([42])
    claude, command = results
    assert claude.text == "tests ran" and "tests passed" in claude.tool_calls[0]["output"]
    assert command.stdout == "develop branch\n"
    assert run["kind"] == "orchestrate" and run["status"] == "completed" and run["counts"]["completed"] == 2
    public = repo.replace(repo.split("://")[1].split("@")[0] + "@", "")
    assert [t["name"] for t in run["tasks"]] == [f"{public}: PY-ORCH-TESTS: Run tests", f"{public}: cat DEVELOP.md"]
