"""A finished background process answers from sandboxd and its record, and each user's
background processes, streams and terminals are capped (429 too_many_streams
over REST, 4429 for a WebSocket, HTTP 429 from a live server). Real containers, Redis, uvicorn."""

import asyncio
import json
import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apps.sandboxes import limits
from apps.sandboxes.models import Execution
from tests.conftest import live_server
from tests.waiting import async_wait_for, wait_for
from tests.ws import Communicator
from vibebox import redisdb
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(path: str, secret: str) -> Communicator:
    return Communicator(
        application, path, headers=[(b"host", b"testserver"), (b"authorization", f"Bearer {secret}".encode())]
    )


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


@pytest.fixture(autouse=True)
def fresh_counts(owner, outsider):
    """No slot left over from an earlier run of this instance (user ids restart with each test
    database; a killed run's slots would only expire after limits.LEASE_SECONDS)."""
    for user in (owner, outsider):
        for kind in (limits.STREAMS, limits.TERMINALS, limits.PROCESSES):
            redisdb.client(django_settings.REDIS_URL).delete(limits._key(kind, user.pk))


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


def start(client, sandbox_id, command, expect=202):
    """The answer's body; with `expect=None`, its status."""
    response = client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, "background": True}, format="json"
    )
    if expect is None:
        return response.status_code
    assert response.status_code == expect, response.content
    return response.json()


def attach_until_exit(sandbox_id: str, process_id: str, secret: str) -> list[dict]:
    async def attach():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/processes/{process_id}", secret)
        assert (await comm.connect(timeout=30))[0]
        messages = await receive_until(comm, lambda m: m.get("type") == "exit")
        await comm.disconnect()
        return messages

    return async_to_sync(attach)()


def recorded(process_id: str) -> bool:
    return Execution.objects.get(pk=process_id).status != Execution.Status.RUNNING


def test_a_finished_process_answers_from_sandboxd_and_its_record(api_client, api_key, sandbox_id):
    process_id = start(api_client, sandbox_id, "echo kept-out; echo kept-err >&2; exit 3")["processId"]
    assert wait_for(lambda: recorded(process_id))  # the web process that started it records its end
    row = Execution.objects.get(pk=process_id)
    assert (row.exit_code, row.status, row.stdout, row.stderr) == (3, "failed", "kept-out\n", "kept-err\n")
    messages = attach_until_exit(sandbox_id, process_id, api_key[1])
    assert {"type": "stdout", "data": "kept-out\n"} in messages
    assert {"type": "stderr", "data": "kept-err\n"} in messages
    assert messages[-1]["exitCode"] == 3 and messages[-1]["status"] == "failed"
    killed = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/processes/{process_id}/kill")
    assert killed.status_code == 200, killed.content
    assert killed.json()["running"] is False and killed.json()["exit"]["exitCode"] == 3
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/processes/exec_nope/kill").status_code == 404


def test_background_processes_are_capped_per_owner(api_client, outsider, client_for, create_sandbox, settings):
    settings.VIBEBOX_MAX_PROCESSES_PER_OWNER = 2
    sandbox_id = create_sandbox(template="python-3")["id"]
    first = start(api_client, sandbox_id, "sleep 300")["processId"]
    start(api_client, sandbox_id, "sleep 300")
    refused = start(api_client, sandbox_id, "sleep 300", expect=429)
    assert refused["error"]["code"] == "too_many_streams"
    assert refused["error"]["details"] == {"kind": "processes", "limit": 2, "current": 2}
    # another user has slots of their own
    outsider_client = client_for(outsider)
    theirs = create_sandbox(client=outsider_client, template="python-3")["id"]
    start(outsider_client, theirs, "true")
    # a process that ends gives its slot back
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/processes/{first}/kill")
    assert wait_for(lambda: recorded(first))
    assert wait_for(lambda: start(api_client, sandbox_id, "sleep 300", expect=None) != 429)
    assert start(api_client, sandbox_id, "sleep 300", expect=429)["error"]["details"]["current"] == 2


def test_streams_are_capped_per_owner_and_freed_on_close(api_key, owner, outsider, make_key, settings):
    settings.VIBEBOX_MAX_STREAMS_PER_OWNER = 2
    outsider_key = make_key(outsider)[1]

    async def scenario():
        first = communicator("/ws/activity", api_key[1])
        second = communicator("/ws/activity", api_key[1])
        assert (await first.connect(timeout=10))[0] and (await second.connect(timeout=10))[0]
        third = communicator("/ws/activity", api_key[1])
        assert await third.connect(timeout=10) == (False, 4429)
        await third.disconnect()
        theirs = communicator("/ws/activity", outsider_key)  # counted for its own user
        assert (await theirs.connect(timeout=10))[0]
        await theirs.disconnect()
        await first.disconnect()
        # the slot comes back once the stream closed
        await async_wait_for(
            lambda: asyncio.to_thread(lambda: limits.current(limits.STREAMS, owner.pk) < 2),
            what="the closed stream's slot to come back",
        )
        again = communicator("/ws/activity", api_key[1])
        assert (await again.connect(timeout=10))[0]
        await again.disconnect()
        await second.disconnect()

    async_to_sync(scenario)()
    assert wait_for(lambda: limits.current(limits.STREAMS, owner.pk) == 0)


def test_terminals_are_capped_per_owner(api_key, sandbox_id, settings):
    settings.VIBEBOX_MAX_TERMINALS_PER_OWNER = 1
    path = f"/ws/sandboxes/{sandbox_id}/terminal"

    async def scenario():
        first = communicator(path, api_key[1])
        assert (await first.connect(timeout=30))[0]
        session = (await receive_until(first, lambda m: m.get("type") == "session"))[-1]
        second = communicator(path, api_key[1])
        assert await second.connect(timeout=30) == (False, 4429)
        await second.disconnect()
        # joining the open session opens no terminal
        joined = communicator(f"{path}?session={session['sessionId']}", api_key[1])
        assert (await joined.connect(timeout=30))[0]
        await joined.disconnect()
        await first.disconnect()  # the terminal lives on without clients: its slot stays taken
        await asyncio.sleep(1)
        second = communicator(path, api_key[1])
        assert await second.connect(timeout=30) == (False, 4429)
        await second.disconnect()
        # ending it gives its slot back (its opener sees the end within a few seconds)
        killer = communicator(f"{path}?session={session['sessionId']}", api_key[1])
        assert (await killer.connect(timeout=30))[0]
        await killer.send_json_to({"type": "kill"})
        await receive_until(killer, lambda m: m.get("type") == "exit")
        await killer.disconnect()
        deadline = time.monotonic() + 30
        while True:
            again = communicator(path, api_key[1])
            connected, code = await again.connect(timeout=30)
            if connected:
                break
            assert code == 4429 and time.monotonic() < deadline
            await again.disconnect()
            await asyncio.sleep(0.2)
        await again.disconnect()

    async_to_sync(scenario)()


def test_live_server_answers_429_with_details(transactional_db, api_key):
    with live_server(VIBEBOX_MAX_STREAMS_PER_OWNER="1") as (url, _pid):
        base = url.replace("http", "ws")
        headers = {"Authorization": f"Bearer {api_key[1]}"}

        async def scenario():
            held = await connect(f"{base}/ws/activity", additional_headers=headers)
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"{base}/ws/activity", additional_headers=headers)
            await held.close()
            return refused.value.response

        response = async_to_sync(scenario)()
        assert response.status_code == 429
        error = json.loads(response.body)["error"]
        assert error["code"] == "too_many_streams"
        assert error["details"] == {"kind": "streams", "limit": 1, "current": 1}
