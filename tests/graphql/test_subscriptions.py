"""GraphQL subscriptions over `graphql-transport-ws` at WS /graphql (issue 27): a real client (`gql`'s
websockets transport) against the live server receiving a sandbox's created → started → exec events,
and, through the real ASGI app with channels' communicator speaking the protocol by hand: logs, an
execution's stream, two subscriptions side by side on one socket, the document limits, and the
refusals (no key, a bad key, a missing scope, another organization's sandbox or execution). Real
containers throughout."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client as DjangoClient
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from rest_framework.test import APIClient

from apps.agents.asks import claude_group
from apps.agents.models import ClaudeSession
from apps.keys.scopes import ALL_SCOPES
from apps.keys.services import api_key_revoke
from apps.orgs import services as org_services
from apps.orgs.models import Membership
from apps.sandboxes import events
from apps.sandboxes.events import activity_group
from apps.sandboxes.models import Sandbox
from tests.conftest import live_server
from tests.graphql.conftest import global_id
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

PROTOCOL = "graphql-transport-ws"
EVENT_FIELDS = "type sandboxId text data timestamp replayed"
EXEC_FIELDS = "type data droppedBytes exit { status executionId exitCode durationMs truncated oomKilled errorCode }"


async def listeners(group: str) -> int:
    """How many channels the layer has in `group` (channels_redis keeps a group as a sorted set)."""
    layer = get_channel_layer()
    connection = layer.connection(layer.consistent_hash(group))
    return await connection.zcard(layer._group_key(group))


async def until_listening(group: str, before: int, more: int = 1) -> None:
    """Waits until `more` subscriptions joined `group` (a deadline, not a fixed pause: on a loaded
    machine the server may take seconds to register a subscription)."""
    deadline = asyncio.get_running_loop().time() + 30
    while await listeners(group) < before + more:
        assert asyncio.get_running_loop().time() < deadline, f"no subscription joined {group}"
        await asyncio.sleep(0.05)


# ---- a graphql-transport-ws client over channels' communicator ----


class Socket:
    """One WS /graphql connection through the real ASGI app, speaking graphql-transport-ws."""

    def __init__(self, secret: str | None = None, *, headers: list | None = None):
        headers = list(headers or [])
        if secret:
            headers.append((b"authorization", f"Bearer {secret}".encode()))
        self.comm = Communicator(application, "/graphql", headers=headers, subprotocols=[PROTOCOL])
        self.pending: dict[str, list[dict]] = {}  # messages read while waiting for another operation's
        self.closed: dict | None = None
        self.next_id = 0

    async def open(self, payload: dict | None = None) -> None:
        connected, protocol = await self.comm.connect()
        assert connected and protocol == PROTOCOL, (connected, protocol)
        await self.send({"type": "connection_init", **({"payload": payload} if payload is not None else {})})
        ack = await self._read()
        assert ack == {"type": "connection_ack"}, ack

    async def send(self, message: dict) -> None:
        await self.comm.send_to(text_data=json.dumps(message))

    async def _read(self) -> dict:
        output = await self.comm.receive_output()
        if output["type"] == "websocket.close":
            self.closed = output
            return {"type": "__closed__", "code": output.get("code"), "reason": output.get("reason")}
        return json.loads(output["text"])

    async def subscribe(self, query: str, variables: dict | None = None) -> str:
        self.next_id += 1
        op = str(self.next_id)
        self.pending[op] = []
        await self.send({"id": op, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
        return op

    async def receive(self, op: str) -> dict:
        """The next message of operation `op` (others' are kept for them)."""
        while not self.pending[op]:
            message = await self._read()
            if message["type"] == "__closed__":
                return message
            self.pending.setdefault(message.get("id", ""), []).append(message)
        return self.pending[op].pop(0)

    async def until(self, op: str, predicate, field: str) -> list[dict]:
        """`field`'s payloads of `op` until one matches `predicate` (an error or the end fails)."""
        seen = []
        while True:
            message = await self.receive(op)
            assert message["type"] == "next" and "errors" not in message["payload"], (message, seen)
            item = message["payload"]["data"][field]
            seen.append(item)
            if predicate(item):
                return seen

    async def complete(self, op: str) -> None:
        await self.send({"id": op, "type": "complete"})

    async def close(self) -> None:
        if self.closed is None:
            await self.comm.disconnect()


def codes(message: dict) -> list[str]:
    errors = message["payload"]["errors"] if message["type"] == "next" else message["payload"]
    return [error["extensions"]["code"] for error in errors]


async def error_of(sock: Socket, query: str, variables: dict | None = None) -> list[str]:
    """The error codes a subscription ends with, and that it ends (complete) or was an error message."""
    op = await sock.subscribe(query, variables)
    message = await sock.receive(op)
    assert message["type"] in ("next", "error"), message
    found = codes(message)
    if message["type"] == "next":
        assert message["payload"]["data"] is None, message
        assert (await sock.receive(op))["type"] == "complete"
    return found


SANDBOX_EVENTS = f"subscription($id: ID!) {{ sandboxEvents(id: $id) {{ {EVENT_FIELDS} }} }}"
ACTIVITY = f"subscription {{ activity {{ {EVENT_FIELDS} }} }}"
EXEC_STREAM = f"subscription($id: ID!) {{ execStream(executionId: $id) {{ {EXEC_FIELDS} }} }}"
LOGS = (
    "subscription($id: ID!, $follow: Boolean!) { logs(sandboxId: $id, follow: $follow, tail: 100) "
    "{ type stream text timestamp event } }"
)


def post(client, path: str, body: dict | None = None, expect: int = 200) -> dict:
    response = client.post(path, body or {}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


# ---- the lifecycle through a real client against the live server ----


def test_gql_client_receives_created_started_and_exec_events(owner, api_key, api_client, create_sandbox):
    """`gql` 4.4's graphql-transport-ws client, on the live uvicorn: `activity` sees a new sandbox's
    created → started → exec.started → exec.finished; `sandboxEvents` on the same socket replays the
    kept ones (created, started) then the exec's live; both end when asked, the socket stays open."""
    with live_server() as (url, _pid):
        ws_url = url.replace("http://", "ws://") + "/graphql"

        async def scenario():
            transport = WebsocketsTransport(url=ws_url, headers={"Authorization": f"Bearer {api_key[1]}"})
            async with Client(transport=transport, fetch_schema_from_transport=False) as session:
                group = activity_group(owner.pk)
                before = await listeners(group)
                feed = session.subscribe(GraphQLRequest(ACTIVITY))
                first = asyncio.ensure_future(anext(feed))
                await until_listening(group, before)  # registered before the sandbox exists
                created = await asyncio.to_thread(create_sandbox, template="python-3")
                sandbox = created["id"]
                activity = [(await first)["activity"]]
                while activity[-1]["type"] != "sandbox.started":
                    activity.append((await anext(feed))["activity"])
                mine = [e for e in activity if e["sandboxId"] == sandbox]
                assert [e["type"] for e in mine][:1] == ["sandbox.created"]
                assert mine[-1]["type"] == "sandbox.started"

                events = session.subscribe(GraphQLRequest(SANDBOX_EVENTS, variable_values={"id": sandbox}))
                replayed = [(await anext(events))["sandboxEvents"] for _ in range(2)]
                assert [(e["type"], e["replayed"], e["sandboxId"]) for e in replayed] == [
                    ("sandbox.created", True, sandbox),
                    ("sandbox.started", True, sandbox),
                ]
                result = await asyncio.to_thread(
                    post, api_client, f"/api/v1/sandboxes/{sandbox}/exec", {"command": "echo hi"}
                )
                execution = result["executionId"]
                live = [(await anext(events))["sandboxEvents"] for _ in range(2)]
                assert [(e["type"], e["replayed"], e["data"]["executionId"]) for e in live] == [
                    ("exec.started", False, execution),
                    ("exec.finished", False, execution),
                ]
                assert live[1]["data"]["exitCode"] == 0
                seen = []
                while not seen or seen[-1]["type"] != "exec.finished":
                    seen.append((await anext(feed))["activity"])
                assert [e["type"] for e in seen] == ["exec.started", "exec.finished"]
                await events.aclose()
                await feed.aclose()

                # another organization's sandbox: its REST 404 code, no data
                with pytest.raises(TransportQueryError) as refused:
                    async for _ in session.subscribe(
                        GraphQLRequest(SANDBOX_EVENTS, variable_values={"id": "sbx_doesnotexist0000"})
                    ):
                        pass
                assert refused.value.errors[0]["extensions"]["code"] == "sandbox_not_found"

        async_to_sync(scenario)()


# ---- through the ASGI app ----


def test_exec_stream_of_a_background_command_and_of_a_finished_one(api_key, api_client, sandbox_id):
    background = post(
        api_client,
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": "echo one; sleep 1; echo two >&2; exit 3", "background": True},
        expect=202,
    )["executionId"]
    finished = post(api_client, f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "echo done"})["executionId"]

    async def scenario():
        sock = Socket(api_key[1])
        await sock.open()
        op = await sock.subscribe(EXEC_STREAM, {"id": background})
        stream = await sock.until(op, lambda m: m["type"] == "exit", "execStream")
        assert {"type": "stdout", "data": "one\n", "droppedBytes": None, "exit": None} in stream
        assert any(m["type"] == "stderr" and m["data"] == "two\n" for m in stream)
        exit_info = stream[-1]["exit"]
        assert (exit_info["status"], exit_info["exitCode"], exit_info["executionId"]) == ("failed", 3, background)
        assert (await sock.receive(op))["type"] == "complete"

        # a finished one (by its global id): its stored output, then its exit
        op = await sock.subscribe(EXEC_STREAM, {"id": global_id("Execution", f"{sandbox_id}/{finished}")})
        stream = await sock.until(op, lambda m: m["type"] == "exit", "execStream")
        assert stream[0]["type"] == "stdout" and stream[0]["data"] == "done\n"
        assert (stream[-1]["exit"]["status"], stream[-1]["exit"]["exitCode"]) == ("completed", 0)
        assert (await sock.receive(op))["type"] == "complete"
        await sock.close()

    async_to_sync(scenario)()


def test_logs_backlog_and_follow(api_key, api_client, sandbox_id):
    async def scenario():
        sock = Socket(api_key[1])
        await sock.open()
        # follow: false answers what is there and completes
        op = await sock.subscribe(LOGS, {"id": sandbox_id, "follow": False})
        lines = []
        while (message := await sock.receive(op))["type"] == "next":
            lines.append(message["payload"]["data"]["logs"])
        assert message["type"] == "complete", message
        assert {"sandbox.created", "sandbox.started"} <= {line["event"] for line in lines if line["type"] == "event"}

        # follow: a command's event comes live as a log line
        op = await sock.subscribe(LOGS, {"id": sandbox_id, "follow": True})
        await sock.until(op, lambda line: line.get("event") == "sandbox.started", "logs")
        await asyncio.to_thread(post, api_client, f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "true"})
        live = await sock.until(op, lambda line: line.get("event") == "exec.finished", "logs")
        assert live[-1]["stream"] == "vibebox" and live[-1]["type"] == "event"
        await sock.complete(op)
        await sock.close()

    async_to_sync(scenario)()


def test_one_subscription_never_blocks_another(api_key, api_client, sandbox_id):
    """A subscription waiting on a silent source (a long background command's stream) while another
    on the same socket gets its events, completes, and a third starts and ends."""
    quiet = post(
        api_client, f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "sleep 300", "background": True}, expect=202
    )["executionId"]

    async def scenario():
        sock = Socket(api_key[1])
        await sock.open()
        waiting = await sock.subscribe(EXEC_STREAM, {"id": quiet})
        events = await sock.subscribe(SANDBOX_EVENTS, {"id": sandbox_id})
        await sock.until(events, lambda e: e["type"] == "sandbox.started", "sandboxEvents")
        await asyncio.to_thread(post, api_client, f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "true"})
        await sock.until(events, lambda e: e["type"] == "exec.finished", "sandboxEvents")
        await sock.complete(events)
        logs = await sock.subscribe(LOGS, {"id": sandbox_id, "follow": False})
        while (message := await sock.receive(logs))["type"] == "next":
            pass
        assert message["type"] == "complete"
        # a query beside them runs as over HTTP (the ORM, dataloaders) and answers once
        query = await sock.subscribe("{ sandboxes(first: 5) { edges { node { id name status } } } }")
        answer = await sock.receive(query)
        assert "errors" not in answer["payload"], answer
        nodes = [edge["node"] for edge in answer["payload"]["data"]["sandboxes"]["edges"]]
        assert [(node["id"], node["status"]) for node in nodes] == [(global_id("Sandbox", sandbox_id), "RUNNING")]
        assert (await sock.receive(query))["type"] == "complete"
        assert sock.pending[waiting] == []  # the silent one said nothing, and is still there
        await sock.complete(waiting)
        await sock.close()

    async_to_sync(scenario)()
    post(api_client, f"/api/v1/sandboxes/{sandbox_id}/processes/{quiet}/kill")


def test_refusals(api_key, owner, outsider, make_key, outsider_client, sandbox_id, create_sandbox):
    theirs = create_sandbox(client=outsider_client)["id"]
    their_exec = post(outsider_client, f"/api/v1/sandboxes/{theirs}/exec", {"command": "true"})["executionId"]
    no_scopes = make_key(owner, ["keys:manage"])[1]
    read_only = make_key(owner, ["sandboxes:read"])[1]

    async def scenario():
        # a bad key is refused at the handshake, as the other WebSockets refuse it
        connected, code = await Communicator(
            application, "/graphql", headers=[(b"authorization", b"Bearer vb_live_nonsense")], subprotocols=[PROTOCOL]
        ).connect()
        assert (connected, code) == (False, 4401)

        # not offering graphql-transport-ws: refused before the socket opens
        refused = await Communicator(
            application, "/graphql", headers=[(b"authorization", f"Bearer {api_key[1]}".encode())]
        ).connect()
        assert refused == (False, 4406)

        # no credentials at all: connection_init must bring them, else 4401
        sock = Socket()
        connected, _ = await sock.comm.connect()
        assert connected
        await sock.send({"type": "connection_init"})
        assert await sock._read() == {"type": "__closed__", "code": 4401, "reason": "not_authenticated"}
        sock = Socket()
        await sock.comm.connect()
        await sock.send({"type": "connection_init", "payload": {"authorization": "Bearer vb_live_nonsense"}})
        closed = await sock._read()
        assert (closed["code"], closed["reason"]) == (4401, "invalid_api_key")

        # no credentials and no connection_init: closed after the anonymous wait (5 s), not the 30 s
        # a connection with credentials gets (4408: graphql-transport-ws's init timeout)
        sock = Socket()
        await sock.comm.connect()
        closed = await sock.comm.receive_output(timeout=20)
        assert (closed["type"], closed.get("code")) == ("websocket.close", 4408), closed

        # the key in connection_init's payload (browsers' graphql-ws clients) works
        sock = Socket()
        await sock.open({"authorization": f"Bearer {api_key[1]}"})
        op = await sock.subscribe(SANDBOX_EVENTS, {"id": sandbox_id})
        assert (await sock.receive(op))["payload"]["data"]["sandboxEvents"]["type"] == "sandbox.created"
        await sock.close()

        # a missing scope: that field's 403, naming it
        sock = Socket(no_scopes)
        await sock.open()
        assert await error_of(sock, SANDBOX_EVENTS, {"id": sandbox_id}) == ["insufficient_scope"]
        assert await error_of(sock, ACTIVITY) == ["insufficient_scope"]
        await sock.close()
        sock = Socket(read_only)
        await sock.open()
        assert await error_of(sock, EXEC_STREAM, {"id": their_exec}) == ["insufficient_scope"]
        await sock.close()

        # another organization's sandbox or execution: REST's 404, never data
        sock = Socket(api_key[1])
        await sock.open()
        assert await error_of(sock, SANDBOX_EVENTS, {"id": theirs}) == ["sandbox_not_found"]
        assert await error_of(sock, SANDBOX_EVENTS, {"id": global_id("Sandbox", theirs)}) == ["sandbox_not_found"]
        assert await error_of(sock, LOGS, {"id": theirs, "follow": True}) == ["sandbox_not_found"]
        assert await error_of(sock, EXEC_STREAM, {"id": their_exec}) == ["execution_not_found"]
        assert await error_of(sock, EXEC_STREAM, {"id": "exec_nosuchthing"}) == ["execution_not_found"]
        # their execution's id under one of my sandboxes is not found either
        mislabelled = global_id("Execution", f"{sandbox_id}/{their_exec}")
        assert await error_of(sock, EXEC_STREAM, {"id": mislabelled}) == ["execution_not_found"]
        claude = "subscription($id: ID!) { claudeEvents(sandboxId: $id) { type } }"
        assert await error_of(sock, claude, {"id": theirs}) == ["sandbox_not_found"]
        # a document that does not validate: REST's code for it
        assert await error_of(sock, "subscription { nosuchfield }") == ["graphql_invalid"]
        await sock.close()

    async_to_sync(scenario)()


def test_a_frame_nested_past_the_parser_closes_the_socket_with_4400(api_key):
    async def scenario():
        sock = Socket(api_key[1])
        await sock.open()
        await sock.comm.send_to(text_data="[" * 100_000 + "]" * 100_000)
        closed = await sock._read()
        assert (closed["type"], closed["code"]) == ("__closed__", 4400), closed

    async_to_sync(scenario)()


def test_document_limits_apply_as_over_http(api_key, settings, sandbox_id):
    settings.VIBEBOX_GRAPHQL_MAX_DEPTH = 2

    async def scenario():
        sock = Socket(api_key[1])
        await sock.open()
        deep = "subscription($id: ID!) { execStream(executionId: $id) { exit { status } } }"
        assert await error_of(sock, deep, {"id": "exec_x"}) == ["graphql_too_deep"]
        await sock.close()

    async_to_sync(scenario)()


def test_session_and_claude_events(owner, sandbox_id):
    """A signed-in browser session (its cookie, as the dashboard's) subscribes; claudeEvents gets what
    the Claude publisher sends to the sandbox's Claude group, filtered to the asked-for session."""
    client = DjangoClient()
    client.force_login(owner)
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    ClaudeSession.objects.create(id="sess_1", sandbox=sandbox, cwd="/workspace")

    def publish(kind: str, session: str, seq: int):
        events.publish(
            sandbox=sandbox,
            type=f"claude.{kind}",
            text=kind,
            data={"askId": "ask_1", "sessionId": session, "seq": seq, "kind": kind, "event": {"n": seq}},
            groups=(claude_group(sandbox_id),),
        )

    async def scenario():
        sock = Socket(headers=[(b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode())])
        await sock.open()
        fields = "{ type sandboxId askId sessionId seq kind data }"
        before = await listeners(claude_group(sandbox_id))
        one = await sock.subscribe(
            f"subscription($id: ID!, $s: String) {{ claudeEvents(sandboxId: $id, sessionId: $s) {fields} }}",
            {"id": sandbox_id, "s": "sess_1"},
        )
        every = await sock.subscribe(
            f"subscription($id: ID!) {{ claudeEvents(sandboxId: $id) {fields} }}", {"id": sandbox_id}
        )
        await until_listening(claude_group(sandbox_id), before, more=2)  # both listen before anything is published
        await asyncio.to_thread(publish, "init", "other", 1)
        await asyncio.to_thread(publish, "assistant", "sess_1", 2)
        got = await sock.until(every, lambda e: e["seq"] == 2, "claudeEvents")
        assert [(e["type"], e["sessionId"]) for e in got] == [("claude.init", "other"), ("claude.assistant", "sess_1")]
        assert got[1]["data"]["event"] == {"n": 2} and got[1]["sandboxId"] == sandbox_id
        assert [e["seq"] for e in await sock.until(one, lambda e: True, "claudeEvents")] == [2]
        # another sandbox's session, or none: not found, as over REST
        assert await error_of(
            sock,
            'subscription($id: ID!) { claudeEvents(sandboxId: $id, sessionId: "nope") { type } }',
            {"id": sandbox_id},
        ) == ["claude_session_not_found"]
        await sock.close()

    async_to_sync(scenario)()


def test_a_revoked_key_ends_the_socket(api_key, settings, sandbox_id):
    settings.VIBEBOX_WS_RECHECK_SECONDS = 0.2

    async def scenario():
        sock = Socket(api_key[1])
        await sock.open()
        op = await sock.subscribe(SANDBOX_EVENTS, {"id": sandbox_id})
        await sock.until(op, lambda e: e["type"] == "sandbox.started", "sandboxEvents")
        await asyncio.to_thread(api_key_revoke, key=api_key[0])
        while (message := await sock.receive(op))["type"] != "__closed__":
            pass
        assert (message["code"], message["reason"]) == (4401, "invalid_api_key")

    async_to_sync(scenario)()


def test_operations_spend_the_keys_rate_budget_shared_with_rest(owner, make_key, sandbox_id):
    """A key allowed 3 requests a minute: one REST request, then two operations on the socket (a
    query, a subscription's start) pass; the third is refused with REST's 429 code, and so is REST."""
    key = make_key(owner, rate_limit="3/min")[1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/sandboxes").status_code == 200

    async def scenario():
        sock = Socket(key)
        await sock.open()
        query = await sock.subscribe("{ viewer { username } }")
        assert (await sock.receive(query))["payload"]["data"] == {"viewer": {"username": "owner"}}
        assert (await sock.receive(query))["type"] == "complete"
        events = await sock.subscribe(SANDBOX_EVENTS, {"id": sandbox_id})
        await sock.until(events, lambda e: e["type"] == "sandbox.started", "sandboxEvents")
        assert await error_of(sock, "{ viewer { username } }") == ["rate_limited"]
        await sock.close()

    async_to_sync(scenario)()
    response = client.get("/api/v1/sandboxes")
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"


def test_a_subscription_ends_when_its_user_may_no_longer_use_the_sandbox(owner, make_key, create_sandbox, settings):
    """As the REST streams (tests/orgs/test_permission_changes.py): an admin follows a developer's
    background command; once demoted to developer, that subscription ends with permission_denied,
    re-checked within VIBEBOX_WS_RECHECK_SECONDS; the socket stays open for what they may still do."""
    settings.VIBEBOX_WS_RECHECK_SECONDS = 0.5
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    admin = get_user_model().objects.create_user(username="admin-user")
    developer = get_user_model().objects.create_user(username="dev-user")
    org_services.member_add(org=org, user_ref="admin-user", role="admin")
    org_services.member_add(org=org, user_ref="dev-user", role="developer")
    dev_client = APIClient()
    dev_client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(developer, ALL_SCOPES, org=org)[1]}")
    sandbox = create_sandbox(client=dev_client)["id"]
    process = post(
        dev_client, f"/api/v1/sandboxes/{sandbox}/exec", {"command": "echo go; sleep 300", "background": True}, 202
    )["executionId"]
    secret = make_key(admin, ALL_SCOPES, org=org)[1]

    @database_sync_to_async
    def demote():
        org_services.member_update(membership=Membership.objects.get(org=org, user=admin), role="developer")

    async def scenario():
        sock = Socket(secret)
        await sock.open()
        op = await sock.subscribe(EXEC_STREAM, {"id": process})
        await sock.until(op, lambda m: m["type"] == "stdout", "execStream")
        await demote()
        message = await sock.receive(op)
        assert codes(message) == ["permission_denied"], message
        assert (await sock.receive(op))["type"] == "complete"
        query = await sock.subscribe("{ viewer { username } }")
        assert (await sock.receive(query))["payload"]["data"] == {"viewer": {"username": "admin-user"}}
        await sock.close()

    async_to_sync(scenario)()
    post(dev_client, f"/api/v1/sandboxes/{sandbox}/processes/{process}/kill")
