"""Logs, activity and streaming exec over WebSockets: the real ASGI app and real containers."""

import asyncio
import hashlib
import json

import pytest
from asgiref.sync import async_to_sync

from apps.sandboxes.models import Execution, Sandbox, new_execution_id
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.runtime.base import ExecControl, ExecRequest
from tests.waiting import wait_for
from tests.ws import Communicator
from vibebox.asgi import application

MiB = 1024 * 1024

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(path: str, secret: str | None = None, subprotocol: str | None = None) -> Communicator:
    headers = [(b"authorization", f"Bearer {secret}".encode())] if secret else []
    return Communicator(application, path, headers=headers, subprotocols=[subprotocol] if subprotocol else None)


async def receive_until(comm, predicate, timeout=20.0) -> list[dict]:
    messages = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        output = await comm.receive_output(timeout=max(0.1, remaining))
        if output["type"] == "websocket.close":
            messages.append({"type": "__closed__", "code": output.get("code")})
            return messages
        message = json.loads(output["text"]) if output.get("text") else {"bytes": output.get("bytes")}
        messages.append(message)
        if predicate(message):
            return messages


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


def test_exec_streams_output_stdin_and_exit(api_key, sandbox_id):
    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        connected, _ = await comm.connect()
        assert connected
        await comm.send_json_to({"command": "echo start; cat; echo err >&2; exit 4", "timeout": "30s"})
        first = await receive_until(comm, lambda m: m.get("type") == "stdout")
        assert first[-1] == {"type": "stdout", "data": "start\n"}
        await comm.send_json_to({"type": "stdin", "data": "typed\n"})
        echoed = await receive_until(comm, lambda m: m.get("data") == "typed\n")
        assert echoed[-1]["type"] == "stdout"
        await comm.send_json_to({"type": "close_stdin"})
        rest = await receive_until(comm, lambda m: m.get("type") == "exit")
        assert {"type": "stderr", "data": "err\n"} in rest
        exit_message = rest[-1]
        assert exit_message["exitCode"] == 4 and exit_message["status"] == "failed"
        closed = await comm.receive_output(timeout=5)
        assert closed["type"] == "websocket.close"
        return exit_message["executionId"]

    execution_id = async_to_sync(scenario)()
    assert Execution.objects.get(pk=execution_id).stdout == "start\ntyped\n"


def test_exec_signal_and_timeout(api_key, sandbox_id):
    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        await comm.connect()
        await comm.send_json_to({"command": "echo ready; sleep 100", "timeout": 60})
        await receive_until(comm, lambda m: m.get("data") == "ready\n")
        await comm.send_json_to({"type": "signal", "signal": "SIGINT"})
        interrupted = (await receive_until(comm, lambda m: m.get("type") == "exit"))[-1]
        assert interrupted["exitCode"] == 130 and interrupted["status"] == "failed"
        await comm.disconnect()

        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        await comm.connect()
        await comm.send_json_to({"command": "sleep 100", "timeout": 1})
        timed_out = (await receive_until(comm, lambda m: m.get("type") == "exit"))[-1]
        assert timed_out["status"] == "timeout"
        await comm.disconnect()

    async_to_sync(scenario)()


def test_output_a_command_prints_after_a_signal_arrives(api_key, sandbox_id):
    """The supervisor's relays and watchdog ignore the signals sent to the command's session, so
    what the command prints while it handles one still arrives, with its own exit code."""

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        await comm.connect()
        command = "trap 'sleep 0.3; echo cleaned-up; exit 3' INT; echo ready; sleep 100 >/dev/null 2>&1 & wait"
        await comm.send_json_to({"command": command, "timeout": 60})
        await receive_until(comm, lambda m: m.get("data") == "ready\n")
        await comm.send_json_to({"type": "signal", "signal": "SIGINT"})
        rest = await receive_until(comm, lambda m: m.get("type") == "exit")
        assert {"type": "stdout", "data": "cleaned-up\n"} in rest
        assert rest[-1]["exitCode"] == 3 and rest[-1]["status"] == "failed"
        await comm.disconnect()

    async_to_sync(scenario)()


def test_logs_backlog_and_follow(api_client, api_key, sandbox_id):
    api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "echo to-the-log > /run/vibebox/stdout"}, format="json"
    )
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/logs?tail=all")
    assert response.status_code == 200
    lines = response.json()["logs"]
    assert any(entry["stream"] == "stdout" and entry["text"] == "to-the-log" for entry in lines)
    assert any(entry.get("event") == "sandbox.created" for entry in lines)
    assert any(entry.get("event") == "exec.finished" for entry in lines)
    only_err = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/logs?stream=stderr&events=0").json()["logs"]
    assert only_err == []
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}/logs?tail=0").json()["logs"] == []
    assert len(api_client.get(f"/api/v1/sandboxes/{sandbox_id}/logs?tail=1").json()["logs"]) == 1

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/logs?tail=all", api_key[1])
        connected, _ = await comm.connect()
        assert connected
        await receive_until(comm, lambda m: m.get("text") == "to-the-log")
        # follow: new container output and new events arrive live
        await asyncio.to_thread(
            api_client.post,
            f"/api/v1/sandboxes/{sandbox_id}/exec",
            {"command": "echo live-line > /run/vibebox/stdout"},
            format="json",
        )
        seen = await receive_until(comm, lambda m: m.get("text") == "live-line")
        # Events and container output are each in order; between the two, arrival order (each has
        # a timestamp). A fast command's output can arrive before its exec.started event.
        if not any(m.get("event") == "exec.started" for m in seen):
            seen += await receive_until(comm, lambda m: m.get("event") == "exec.started")
        assert any(m.get("event") == "exec.started" for m in seen)
        await comm.disconnect()

    async_to_sync(scenario)()


def test_activity_feed_gets_my_events_only(api_key, outsider, make_key, create_sandbox, api_client):
    outsider_key = make_key(outsider)[1]

    async def scenario():
        mine = communicator("/ws/activity", api_key[1])
        theirs = communicator("/ws/activity", outsider_key)
        assert (await mine.connect())[0] and (await theirs.connect())[0]
        created = await asyncio.to_thread(create_sandbox, template="python-3")
        events = await receive_until(mine, lambda m: m.get("type") == "sandbox.started")
        assert events[0]["type"] == "sandbox.created" and events[0]["sandboxId"] == created["id"]
        await asyncio.to_thread(api_client.post, f"/api/v1/sandboxes/{created['id']}/stop")
        stopped = await receive_until(mine, lambda m: m.get("type") == "sandbox.stopped")
        assert stopped[-1]["sandboxId"] == created["id"]
        assert await theirs.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await theirs.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize("endpoint", ["logs", "exec"])
def test_auth_refusals(endpoint, api_key, sandbox_id, owner, outsider, make_key):
    path = f"/ws/sandboxes/{sandbox_id}/{endpoint}"
    read_only = make_key(owner, ["sandboxes:read"])[1]
    no_scopes = make_key(owner, ["keys:manage"])[1]
    outsider_key = make_key(outsider)[1]

    async def scenario():
        assert await communicator(path).connect() == (False, 4401)
        assert await communicator(path, "vb_live_nonsense").connect() == (False, 4401)
        assert await communicator(path, outsider_key).connect() == (False, 4404)
        assert await communicator(path, no_scopes).connect() == (False, 4403)
        if endpoint == "exec":
            assert await communicator(path, read_only).connect() == (False, 4403)
        # browsers pass the key as a subprotocol, which the server echoes
        comm = communicator(path, subprotocol=f"vibebox.{api_key[1]}")
        connected, protocol = await comm.connect()
        assert connected and protocol == f"vibebox.{api_key[1]}"
        await comm.disconnect()

    async_to_sync(scenario)()


def test_exec_flood_keeps_memory_bounded(api_key, sandbox_id, settings):
    """A client that reads nothing while `yes` floods: the server drops it instead of buffering."""
    settings.VIBEBOX_WS_SLOW_CLIENT_SECONDS = 1
    settings.VIBEBOX_WS_QUEUE_MESSAGES = 8

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        await comm.connect()
        await comm.send_json_to({"command": "yes", "timeout": 10})
        await asyncio.sleep(4)  # not reading: the test communicator's own queue is unbounded,
        # so count what the server pushed; a bounded server stops after the client falls behind
        count = comm.output_queue.qsize()
        await comm.disconnect()
        return count

    pushed = async_to_sync(scenario)()
    assert pushed < 20_000  # `yes` alone would produce millions of chunks in 4 s


def test_background_process_outlives_the_request_and_reattaches(api_client, api_key, sandbox_id):
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": "for i in 1 2 3; do echo tick $i; sleep 0.5; done; echo done >&2", "background": True},
        format="json",
    )
    assert response.status_code == 202, response.content
    process_id = response.json()["processId"]
    listed = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/processes").json()["processes"]
    assert [p["processId"] for p in listed] == [process_id]

    async def reattach():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/processes/{process_id}", api_key[1])
        assert (await comm.connect())[0]
        messages = await receive_until(comm, lambda m: m.get("type") == "exit")
        await comm.disconnect()
        return messages

    messages = async_to_sync(reattach)()
    out = "".join(m["data"] for m in messages if m.get("type") == "stdout")
    assert out == "tick 1\ntick 2\ntick 3\n"  # from the start, though we attached late
    assert messages[-1]["status"] == "completed" and messages[-1]["exitCode"] == 0
    assert Execution.objects.get(pk=process_id).background is True
    # a finished process replays and exits at once
    again = async_to_sync(reattach)()
    assert again[-1]["type"] == "exit"
    # The list is the records': the end is recorded by the web process following the process, a
    # moment after sandboxd told the attach (on a loaded machine, after this line ran once).
    wait_for(
        lambda: api_client.get(f"/api/v1/sandboxes/{sandbox_id}/processes").json()["processes"] == [],
        what="the process's end recorded",
    )


def test_background_process_kill(api_client, api_key, sandbox_id):
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "sleep 300", "background": True}, format="json"
    )
    process_id = response.json()["processId"]
    killed = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/processes/{process_id}/kill")
    assert killed.status_code == 200

    async def wait_exit():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/processes/{process_id}", api_key[1])
        await comm.connect()
        messages = await receive_until(comm, lambda m: m.get("type") == "exit")
        await comm.disconnect()
        return messages[-1]

    assert async_to_sync(wait_exit)()["exitCode"] == 137
    left = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "pgrep -c 'sleep 300' || true"}, format="json"
    )
    assert left.json()["stdout"].strip() == "0"
    missing = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/processes/exec_nope/kill")
    assert missing.status_code == 404


def test_a_kill_sent_before_the_command_started_still_ends_it(sandbox_id):
    """A client's KILL can arrive as soon as the stream opens, before the command has printed
    anything: sandboxd takes it in order with the stream and the command ends, not at its deadline."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    control = ExecControl()
    control.signal("KILL")
    request = ExecRequest(
        argv=("sleep", "300"), exec_id=new_execution_id(), user=sandbox.template.user, timeout=60, control=control
    )
    result = get_driver().exec(sandbox.container_name, request)
    assert not result.timed_out and result.exit_code == 137, result
    assert result.duration_ms < 30000


def test_stdin_larger_than_the_buffer_arrives_whole_and_in_order(api_key, sandbox_id):
    """Stdin is taken from the stream's control at most STDIN_BUFFER ahead of the command: 6 MiB in
    1 MiB messages still reach the command whole and in order."""
    chunks = [f"{n:07d}".encode() * (MiB // 7) for n in range(6)]

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        assert (await comm.connect())[0]
        await comm.send_json_to({"command": "sha256sum", "timeout": "60s"})
        for chunk in chunks:
            await comm.send_json_to({"type": "stdin", "data": chunk.decode()})
        await comm.send_json_to({"type": "close_stdin"})
        messages = await receive_until(comm, lambda m: m.get("type") == "exit", timeout=60)
        await comm.disconnect()
        return "".join(m.get("data", "") for m in messages if m.get("type") == "stdout"), messages[-1]

    output, exit_message = async_to_sync(scenario)()
    assert exit_message["exitCode"] == 0, exit_message
    assert output.split()[0] == hashlib.sha256(b"".join(chunks)).hexdigest()
