"""The background-process and Claude WebSocket streams refuse as the logs, exec and terminal ones do
(tests/sandboxes/test_streams.py, test_terminal.py): no or a bad key 4401, a key without the scope
4403 naming it, another user's sandbox, process, ask or session 4404 as if it did not exist, also
when its id is put under one of the caller's own sandboxes; a refusal changes nothing. Through the
real ASGI app, with real containers where a background process is involved, and once through a
live uvicorn with a real WebSocket client."""

import json

import pytest
from asgiref.sync import async_to_sync
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from apps.agents.models import ClaudeAsk, ClaudeSession
from tests.conftest import live_server, sandbox_row
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

HTTP_RESPONSE = {"websocket.http.response": {}}  # the ASGI extension uvicorn offers


def communicator(path: str, secret: str | None = None, *, http_response: bool = False) -> Communicator:
    headers = [(b"authorization", f"Bearer {secret}".encode())] if secret else []
    comm = Communicator(application, path, headers=headers)
    if http_response:
        comm.scope["extensions"] = HTTP_RESPONSE
    return comm


def close_code(path: str, secret: str | None = None):
    """(accepted, close code or subprotocol), as Communicator.connect answers."""

    async def scenario():
        comm = communicator(path, secret)
        result = await comm.connect(timeout=30)
        await comm.disconnect()
        return result

    return async_to_sync(scenario)()


def http_refusal(path: str, secret: str | None = None) -> tuple[int, dict]:
    """The HTTP answer to the upgrade request, where the server has the HTTP-response extension."""

    async def scenario():
        comm = communicator(path, secret, http_response=True)
        await comm.send_input({"type": "websocket.connect"})
        start = await comm.receive_output(timeout=30)
        assert start["type"] == "websocket.http.response.start", start
        body = await comm.receive_output(timeout=30)
        # What a server sends once it has answered the upgrade with HTTP: the consumer then ends
        # at once (without it, wait() cancelled it after its 30 s, four times in one test).
        await comm.send_input({"type": "websocket.disconnect", "code": 1006})
        await comm.wait(timeout=30)
        return start["status"], json.loads(body["body"])

    return async_to_sync(scenario)()


def opens(path: str, secret: str) -> list[dict]:
    """Connects (it must be accepted), reads what comes within a moment, and leaves."""

    async def scenario():
        comm = communicator(path, secret)
        connected, code = await comm.connect(timeout=30)
        assert connected, code
        messages = []
        while not await comm.receive_nothing(timeout=1):
            output = await comm.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                break
            messages.append(json.loads(output["text"]))
        await comm.disconnect()
        return messages

    return async_to_sync(scenario)()


def background(client, sandbox_id: str) -> str:
    response = client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "sleep 300", "background": True}, format="json"
    )
    assert response.status_code == 202, response.content
    return response.json()["processId"]


def running(client, sandbox_id: str) -> list[str]:
    listed = client.get(f"/api/v1/sandboxes/{sandbox_id}/processes").json()["processes"]
    return [p["processId"] for p in listed if p["running"]]


# ---- WS /ws/sandboxes/{id}/processes/{processId} ----


@pytest.fixture
def processes(create_sandbox, api_client, outsider_client):
    """The owner's sandbox `mine` running process `p`, the owner's `other` sandbox, and the
    outsider's sandbox `theirs` running process `q`."""
    mine, other = create_sandbox()["id"], create_sandbox()["id"]
    theirs = create_sandbox(client=outsider_client)["id"]
    return {
        "mine": mine,
        "other": other,
        "theirs": theirs,
        "p": background(api_client, mine),
        "q": background(outsider_client, theirs),
    }


def test_process_stream_refusals(processes, api_client, api_key, outsider_client, owner, outsider, make_key):
    mine, other, theirs, p, q = (processes[k] for k in ("mine", "other", "theirs", "p", "q"))
    path = f"/ws/sandboxes/{mine}/processes/{p}"
    read_only = make_key(owner, ["sandboxes:read"])[1]
    no_scopes = make_key(owner, ["keys:manage"])[1]
    outsider_key = make_key(outsider)[1]

    assert close_code(path) == (False, 4401)
    assert close_code(path, "vb_live_nonsense") == (False, 4401)
    # Reading a process's output is `execute`, as running one is: `sandboxes:read` is not enough.
    assert close_code(path, read_only) == (False, 4403)
    assert close_code(path, no_scopes) == (False, 4403)
    # Another user's sandbox, or its process under one's own sandbox, does not exist for the caller.
    assert close_code(path, outsider_key) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{theirs}/processes/{q}", api_key[1]) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{mine}/processes/{q}", api_key[1]) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{theirs}/processes/{p}", outsider_key) == (False, 4404)
    # The owner's own process under the owner's other sandbox: the wrong sandbox is not found either.
    assert close_code(f"/ws/sandboxes/{other}/processes/{p}", api_key[1]) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{mine}/processes/exec_nope", api_key[1]) == (False, 4404)

    # Over HTTP (uvicorn's extension) the refusal is the usual envelope: the missing scope named,
    # another's object the same not-found as a missing one.
    status, body = http_refusal(path, read_only)
    assert status == 403 and body["error"]["code"] == "insufficient_scope"
    assert body["error"]["details"]["missing"] == ["execute"]
    assert http_refusal(path, outsider_key)[1]["error"]["code"] == "sandbox_not_found"
    missing = http_refusal(f"/ws/sandboxes/{mine}/processes/exec_nope", api_key[1])
    wrong = http_refusal(f"/ws/sandboxes/{mine}/processes/{q}", api_key[1])
    assert missing[0] == wrong[0] == 404
    assert missing[1]["error"]["code"] == wrong[1]["error"]["code"] == "execution_not_found"
    assert http_refusal(path)[0] == 401

    # Nothing changed: both processes run on, and the owner still attaches to theirs.
    assert running(api_client, mine) == [p]
    assert running(outsider_client, theirs) == [q]
    assert running(api_client, other) == []
    assert opens(path, api_key[1]) == []  # `sleep` prints nothing: no output, no exit


# ---- WS /ws/sandboxes/{id}/claude ----


@pytest.fixture
def claude_rows(owner, outsider, templates):
    """Rows only: the Claude stream reads the database, never the engine. The owner's sandboxes
    `mine` (with a finished ask in a session) and `other`, and the outsider's `theirs` (likewise)."""

    def sandbox(user, name):
        return sandbox_row(user, templates["python-3"], name=name)

    def ask(box, session_id):
        session = ClaudeSession.objects.create(id=session_id, sandbox=box, cwd="/workspace")
        return ClaudeAsk.objects.create(session=session, sandbox=box, prompt="hi", status="completed")

    mine, other, theirs = sandbox(owner, "mine"), sandbox(owner, "other"), sandbox(outsider, "theirs")
    return {
        "mine": mine,
        "other": other,
        "theirs": theirs,
        "ask": ask(mine, "s-mine"),
        "their_ask": ask(theirs, "s-theirs"),
    }


def test_claude_stream_refusals(claude_rows, api_key, owner, outsider, make_key):
    mine, other, theirs = (claude_rows[k].id for k in ("mine", "other", "theirs"))
    ask, their_ask = claude_rows["ask"], claude_rows["their_ask"]
    path = f"/ws/sandboxes/{mine}/claude"
    no_read = make_key(owner, ["execute", "sandboxes:write"])[1]
    outsider_key = make_key(outsider)[1]

    assert close_code(path) == (False, 4401)
    assert close_code(path, "vb_live_nonsense") == (False, 4401)
    assert close_code(path, no_read) == (False, 4403)
    assert close_code(path, outsider_key) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{theirs}/claude", api_key[1]) == (False, 4404)
    # Another user's ask or session under one's own sandbox, or one's own under the wrong sandbox.
    assert close_code(f"{path}?askId={their_ask.id}", api_key[1]) == (False, 4404)
    assert close_code(f"{path}?sessionId={their_ask.session_id}", api_key[1]) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{other}/claude?askId={ask.id}", api_key[1]) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{other}/claude?sessionId={ask.session_id}", api_key[1]) == (False, 4404)
    assert close_code(f"/ws/sandboxes/{theirs}/claude?askId={ask.id}", outsider_key) == (False, 4404)
    assert close_code(f"{path}?sessionId=s-nope", api_key[1]) == (False, 4404)

    status, body = http_refusal(path, no_read)
    assert status == 403 and body["error"]["code"] == "insufficient_scope"
    assert body["error"]["details"]["missing"] == ["sandboxes:read"]
    assert http_refusal(path, outsider_key)[1]["error"]["code"] == "sandbox_not_found"
    assert http_refusal(f"{path}?askId={their_ask.id}", api_key[1])[1]["error"]["code"] == "ask_not_found"
    refused = http_refusal(f"/ws/sandboxes/{other}/claude?sessionId={ask.session_id}", api_key[1])
    assert refused[0] == 404 and refused[1]["error"]["code"] == "claude_session_not_found"

    # The owner's own ask and session, under the right sandbox: the ask's record, replayed.
    replayed = opens(f"{path}?askId={ask.id}", api_key[1])
    assert [m["type"] for m in replayed] == ["claude.ask.finished"]
    assert replayed[0]["data"]["askId"] == ask.id
    assert opens(f"{path}?sessionId={ask.session_id}", api_key[1]) == []
    assert ClaudeAsk.objects.get(pk=ask.pk).status == "completed"


def test_live_server_answers_refusals_over_http(claude_rows, processes, api_key, owner, outsider, make_key):
    """What a real client sees from uvicorn: the refusal is the upgrade request's HTTP answer."""
    mine, their_ask = claude_rows["mine"].id, claude_rows["their_ask"]
    no_read = make_key(owner, ["execute"])[1]
    read_only = make_key(owner, ["sandboxes:read"])[1]
    outsider_key = make_key(outsider)[1]
    process_path = f"/ws/sandboxes/{processes['mine']}/processes/{processes['p']}"
    cases = [
        (f"/ws/sandboxes/{mine}/claude", None, 401, "not_authenticated"),
        (f"/ws/sandboxes/{mine}/claude", no_read, 403, "insufficient_scope"),
        (f"/ws/sandboxes/{mine}/claude", outsider_key, 404, "sandbox_not_found"),
        (f"/ws/sandboxes/{mine}/claude?askId={their_ask.id}", api_key[1], 404, "ask_not_found"),
        (process_path, read_only, 403, "insufficient_scope"),
        (process_path, outsider_key, 404, "sandbox_not_found"),
        (f"/ws/sandboxes/{processes['other']}/processes/{processes['p']}", api_key[1], 404, "execution_not_found"),
    ]
    with live_server() as (url, _pid):
        base = url.replace("http", "ws")

        async def scenario():
            answers = []
            for path, secret, _status, _code in cases:
                headers = {"Authorization": f"Bearer {secret}"} if secret else {}
                with pytest.raises(InvalidStatus) as refused:
                    await connect(f"{base}{path}", additional_headers=headers, open_timeout=30)
                answers.append((refused.value.response.status_code, json.loads(refused.value.response.body)))
            return answers

        answers = async_to_sync(scenario)()
    for (path, _secret, status, code), (got_status, body) in zip(cases, answers, strict=True):
        assert (got_status, body["error"]["code"]) == (status, code), path
    assert answers[1][1]["error"]["details"]["missing"] == ["sandboxes:read"]
    assert answers[4][1]["error"]["details"]["missing"] == ["execute"]
