"""Every WebSocket route, dropped at every stage (before it was accepted, refused, right after it
was accepted, mid-stream), ends without an exception in the log; client messages are parsed with
a depth limit and capped in size. The real ASGI app and a live uvicorn, real containers."""

import asyncio
import contextlib
import gc
import json
import logging
import socket
import time
import urllib.parse

import pytest
from asgiref.sync import async_to_sync
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apps.marketplace.services import submission_log_append
from tests.conftest import live_server
from tests.marketplace.pipeline_helpers import SMALL_DOCKERFILE, make_submission, spec_for
from tests.waiting import wait_for
from tests.ws import Communicator
from vibebox.asgi import application
from vibebox.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"type":' * 100_000 + "1" + "}" * 100_000


def communicator(path: str, secret: str | None = None) -> Communicator:
    headers = [(b"host", b"testserver")]
    if secret:
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    subprotocols = ["graphql-transport-ws"] if path.startswith("/graphql") else None
    return Communicator(application, path, headers=headers, subprotocols=subprotocols)


async def receive_until(comm, predicate, timeout=30.0) -> list[dict]:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        output = await comm.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            seen.append({"type": "__closed__", "code": output.get("code")})
            return seen
        message = json.loads(output["text"]) if output.get("text") else {"bytes": output.get("bytes")}
        seen.append(message)
        if predicate(message):
            return seen


async def exec_midstream(comm):
    await comm.send_json_to({"command": "echo go; sleep 60", "timeout": 90})
    await receive_until(comm, lambda m: m.get("data") == "go\n")


async def terminal_midstream(comm):
    await receive_until(comm, lambda m: m.get("type") == "session")
    await comm.send_to(text_data="echo mid-$((3*7))\n")
    await receive_until(comm, lambda m: b"mid-21" in (m.get("bytes") or b""))


async def process_midstream(comm):
    await receive_until(comm, lambda m: m.get("data") == "go\n")


async def logs_midstream(comm):
    await receive_until(comm, lambda m: m.get("event") == "sandbox.created")


async def submission_log_midstream(comm):
    await receive_until(comm, lambda m: m.get("type") == "log")


async def watch_midstream(comm):
    assert await comm.receive_nothing(timeout=0.3)  # nothing changes in /workspace: no events


async def graphql_midstream(comm):
    """A live subscription left open, and a query answered beside it on the same socket."""
    await comm.send_json_to({"type": "connection_init"})
    assert json.loads(await comm.receive_from()) == {"type": "connection_ack"}
    for op, query in (("1", "subscription { activity { type } }"), ("2", "{ viewer { username } }")):
        await comm.send_json_to({"id": op, "type": "subscribe", "payload": {"query": query}})
    await receive_until(comm, lambda m: m.get("id") == "2" and m.get("type") == "next")


async def nothing(comm):
    assert await comm.receive_nothing(timeout=0.3)


# route pattern -> (path with {sandbox} and {process}, what "mid-stream" means for it)
ROUTES = {
    "ws/activity": ("/ws/activity", nothing),
    "ws/sandboxes/<str:sandbox_id>/logs": ("/ws/sandboxes/{sandbox}/logs?tail=all", logs_midstream),
    "ws/sandboxes/<str:sandbox_id>/exec": ("/ws/sandboxes/{sandbox}/exec", exec_midstream),
    "ws/sandboxes/<str:sandbox_id>/processes/<str:process_id>": (
        "/ws/sandboxes/{sandbox}/processes/{process}",
        process_midstream,
    ),
    "ws/sandboxes/<str:sandbox_id>/terminal": ("/ws/sandboxes/{sandbox}/terminal", terminal_midstream),
    "ws/sandboxes/<str:sandbox_id>/claude": ("/ws/sandboxes/{sandbox}/claude", nothing),
    "ws/sandboxes/<str:sandbox_id>/files/watch": ("/ws/sandboxes/{sandbox}/files/watch", watch_midstream),
    "graphql": ("/graphql", graphql_midstream),
    "ws/v1/marketplace/submissions/<str:submission_id>/log": (
        "/ws/v1/marketplace/submissions/{submission}/log",
        submission_log_midstream,
    ),
}


def test_every_route_is_covered():
    assert {str(route.pattern) for route in websocket_urlpatterns} == set(ROUTES)


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


@pytest.fixture
def process_id(api_client, sandbox_id):
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "echo go; sleep 300", "background": True}, format="json"
    )
    assert response.status_code == 202, response.content
    yield response.json()["processId"]
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/processes/{response.json()['processId']}/kill")


def problems(caplog) -> list[str]:
    gc.collect()  # an asyncio task that died with an exception says so when it is collected
    return [
        f"{record.name} {record.levelname}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]


@pytest.fixture
def submission_id(owner, tmp_path):
    """A queued template submission of the owner's organization, with some build log."""
    submission = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("ws-lifecycle"))
    submission_log_append(submission.pk, "Step 1/3 : FROM debian:trixie\n")
    return submission.pk


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_drop_at_every_stage_leaves_a_clean_log(
    route, api_key, outsider, make_key, sandbox_id, process_id, submission_id, caplog
):
    caplog.set_level(logging.INFO)
    template, midstream = ROUTES[route]
    path = template.format(sandbox=sandbox_id, process=process_id, submission=submission_id)
    secret = api_key[1]
    outsider_key = make_key(outsider)[1]

    async def scenario():
        # before it was accepted: the client is gone before the server answered
        comm = communicator(path, secret)
        await comm.send_input({"type": "websocket.connect"})
        await comm.send_input({"type": "websocket.disconnect", "code": 1001})
        await comm.wait(timeout=30)

        # refused: no credentials; an outsider (after the lookups started)
        comm = communicator(path)
        if path == "/graphql":  # accepted: connection_init may bring the key (apps/graphql_api/consumer.py)
            assert (await comm.connect(timeout=30))[0] is True
            await comm.send_json_to({"type": "connection_init"})
            closed = await comm.receive_output(timeout=30)
            assert (closed["type"], closed["code"]) == ("websocket.close", 4401)
        else:
            assert await comm.connect(timeout=30) == (False, 4401)
        await comm.disconnect()
        comm = communicator(path, outsider_key)
        expected = 4404 if "sandbox" in path or "submissions" in path else True
        connected, code = await comm.connect(timeout=30)
        assert (connected if expected is True else code) == expected
        await comm.disconnect()
        if "terminal" in path:  # refused after the sandbox was found
            comm = communicator(path + "?cols=0", secret)
            assert await comm.connect(timeout=30) == (False, 4400)
            await comm.disconnect()

        # right after it was accepted
        comm = communicator(path, secret)
        connected, _ = await comm.connect(timeout=30)
        assert connected
        await comm.disconnect()

        # mid-stream
        comm = communicator(path, secret)
        connected, _ = await comm.connect(timeout=30)
        assert connected
        await midstream(comm)
        await comm.disconnect()

    async_to_sync(scenario)()
    assert problems(caplog) == []


def test_deep_json_answers_invalid_json(api_key, sandbox_id, caplog):
    caplog.set_level(logging.INFO)

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        assert (await comm.connect(timeout=30))[0]
        for deep in (DEEP, DEEP_OBJECT, "[" * 65 + "]" * 65):
            await comm.send_to(text_data=deep)
            answer = await receive_until(comm, lambda m: m.get("type") == "error")
            assert answer[-1]["error"]["code"] == "invalid_json", answer
        await comm.send_to(text_data="not json")
        assert (await receive_until(comm, lambda m: True))[-1]["error"]["code"] == "invalid_json"
        await comm.send_to(bytes_data=b"\xff\xfe")
        assert (await receive_until(comm, lambda m: True))[-1]["error"]["code"] == "invalid_json"
        # the connection still works
        await comm.send_json_to({"command": "echo after-$((6*7))"})
        done = await receive_until(comm, lambda m: m.get("type") == "exit")
        assert {"type": "stdout", "data": "after-42\n"} in done
        await comm.disconnect()

        comm = communicator(f"/ws/sandboxes/{sandbox_id}/terminal", api_key[1])
        assert (await comm.connect(timeout=30))[0]
        await receive_until(comm, lambda m: m.get("type") == "session")
        await comm.send_to(text_data=DEEP_OBJECT)
        answer = await receive_until(comm, lambda m: m.get("type") == "error")
        assert answer[-1]["error"]["code"] == "invalid_json"
        await comm.send_to(text_data="{not json, typed\n")  # text that is not JSON is still keystrokes
        await comm.send_to(text_data="echo typed-$((5*5))\n")
        await receive_until(comm, lambda m: b"typed-25" in (m.get("bytes") or b""))
        await comm.disconnect()

    async_to_sync(scenario)()
    assert problems(caplog) == []


def test_oversized_message_is_refused(api_key, sandbox_id, settings):
    settings.VIBEBOX_WS_MAX_MESSAGE = 1024

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/exec", api_key[1])
        assert (await comm.connect(timeout=30))[0]
        await comm.send_to(text_data=json.dumps({"command": "echo " + "x" * 2000}))
        seen = await receive_until(comm, lambda m: m.get("type") == "__closed__")
        assert seen[0]["error"]["code"] == "request_too_large" and seen[0]["error"]["details"] == {"limit": 1024}
        assert seen[-1]["code"] == 4413
        await comm.disconnect()

    async_to_sync(scenario)()


# ---- a live server ----


@pytest.fixture
def uvicorn_server(transactional_db, templates, tmp_path):
    """A live server writing its log to a file the test reads; yields (url, log path)."""
    log_path = tmp_path / "server.log"
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(log_path, "w"))
        url, _pid = stack.enter_context(live_server(output=log))
        yield url, log_path


def raw_handshake_then_drop(url: str, path: str, secret: str) -> None:
    """Sends a WebSocket upgrade and hangs up before the answer."""
    parsed = urllib.parse.urlsplit(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {secret}\r\n\r\n"
        )
        sock.sendall(request.encode())


def test_live_server_drops_leave_a_clean_log(uvicorn_server, api_key, outsider, make_key, sandbox_id, docker_client):
    url, log_path = uvicorn_server
    base = url.replace("http", "ws")
    secret = api_key[1]
    auth = {"Authorization": f"Bearer {secret}"}
    outsider_key = make_key(outsider)[1]
    container = docker_client.containers.get(sandbox_id)

    def processes() -> set[str]:
        return {row[-1] for row in container.top(ps_args="-eo pid,args")["Processes"]}

    at_rest = processes()

    async def scenario():
        for route in ("exec", "terminal", "logs"):
            path = f"/ws/sandboxes/{sandbox_id}/{route}"
            await asyncio.to_thread(raw_handshake_then_drop, url, path, secret)
            with pytest.raises(InvalidStatus) as refused:
                await connect(base + path, additional_headers={"Authorization": f"Bearer {outsider_key}"})
            assert refused.value.response.status_code == 404
            assert json.loads(refused.value.response.body)["error"]["code"] == "sandbox_not_found"
            ws = await connect(base + path, additional_headers={"Authorization": f"Bearer {secret}"})
            await ws.close()
            ws = await connect(base + path, additional_headers={"Authorization": f"Bearer {secret}"})
            if route == "exec":
                await ws.send(json.dumps({"command": "echo go; sleep 60"}))
            await asyncio.wait_for(ws.recv(), 30)  # something streamed
            await ws.close()

    async_to_sync(scenario)()
    # Terminals outlive their clients; the two that were told their ids are ended through the API.
    # The one dropped in its handshake is ended by the server when it sees the drop before it has
    # answered the handshake. When its open was quicker than the client's hang-up reached it, the
    # server answered (101 and the session id) into a socket it could not yet know was closed:
    # then that terminal is a known one too, and is ended the same way.
    terminals = f"{url}/api/v1/sandboxes/{sandbox_id}/terminals"
    with urllib.request.urlopen(urllib.request.Request(terminals, headers=auth), timeout=60) as response:
        listed = [t["sessionId"] for t in json.load(response)["terminals"]]
    assert len(listed) in (2, 3), listed
    for session_id in listed:
        request = urllib.request.Request(f"{terminals}/{session_id}", headers=auth, method="DELETE")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 204
    # The server has cleaned up when the sessions' processes (the exec's sleep, the terminal's
    # shell, the log follower) are gone from the sandbox; the log is read after.
    wait_for(lambda: processes() <= at_rest, timeout=60, what="the sessions' processes to go")
    log = log_path.read_text()
    assert "WebSocket /ws/sandboxes/" in log  # the server's log is the one read here
    assert "Traceback" not in log and "ERROR" not in log and "Exception" not in log, log[-5000:]
