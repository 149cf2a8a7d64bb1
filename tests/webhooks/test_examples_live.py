"""examples/webhooks end to end: each receiver (Python, Node) run as it is, fed by VibeBox itself.

The real server (the Procfile's uvicorn, tests/conftest.live_server) and a real Celery worker (the
Procfile's, consuming every queue, beat embedded: tests/webhooks/conftest.celery_worker) on a Redis
of the module's own; each receiver a subprocess on a loopback port (tests/webhooks/example_receivers);
webhooks made and events caused through the HTTP API only. What the receivers stored (their SQLite
table, their JSON file) and what the server recorded (deliveries, attempts) are read back. The
README's three commands per receiver are run as written, too.

sdk/python/tests/test_webhook_examples.py covers the receivers' refusals one by one (bad signature,
changed body, old timestamp, too large) with deliveries signed by the reference library.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from apps.webhooks.signing import new_secret
from tests.conftest import ROOT, free_port, live_server
from tests.test_make_run import redis_server
from tests.waiting import WaitTimeout, async_wait_for
from tests.webhooks.conftest import QUIET_PASSES, celery_worker, worker_env
from tests.webhooks.example_receivers import (
    EXAMPLES,
    ExampleReceiver,
    build_node_app,
    run_shell,
    spawn_receiver,
    start_receiver,
    stop_receiver,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(600)]

RETRY_SCHEDULE = "4s"  # one retry, 3.2 to 4.8 s after the first attempt (±20 %), then failed
DEADLINE = 120.0  # an event's way through the server, Redis, the worker and a receiver, on 2 busy cores


@pytest.fixture
def anyio_backend():
    return "asyncio"  # the receivers are asyncio subprocesses


@dataclass
class Stack:
    url: str
    worker_log: Path

    def tail(self) -> str:
        lines = self.worker_log.read_text(errors="replace").splitlines()
        trouble = [line for line in lines if any(word in line for word in ("WARNING", "ERROR", "Traceback"))]
        return "\n".join(["-- worker warnings and errors:", *trouble[-30:], "-- its last lines:", *lines[-20:]])


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    """Redis, the live server (it queues an endpoint's sender when its event commits) and a worker
    (senders; beat's pass every second for retries), on the session's test database."""
    folder = tmp_path_factory.mktemp("stack")
    log = folder / "worker.log"
    with redis_server(folder) as redis_url:
        env = worker_env(
            redis_url, VIBEBOX_WEBHOOK_INTERVAL="1s", VIBEBOX_WEBHOOK_RETRY_SCHEDULE=RETRY_SCHEDULE, **QUIET_PASSES
        )
        with (
            celery_worker(env, log, beat_schedule=folder / "beat-schedule"),
            live_server(REDIS_URL=redis_url, VIBEBOX_WEBHOOK_DISPATCH="true") as (url, _pid),
        ):
            yield Stack(url, log)


@pytest.fixture(scope="session")
def node_app(tmp_path_factory):
    return build_node_app(tmp_path_factory.mktemp("node-app"))


class Receivers:
    """Starts example receivers (each with a store in a folder of its own, or `name`'s again: a
    restart) and stops every one it started."""

    def __init__(self, root: Path, node_app: Path):
        self.root, self.node_app = root, node_app
        self.started: list[ExampleReceiver] = []

    async def start(self, kind: str, secret: str, *, port: int, name: str) -> ExampleReceiver:
        receiver = await start_receiver(kind, secret, port=port, folder=self.root / name, node_app=self.node_app)
        self.started.append(receiver)
        return receiver

    async def stop_all(self) -> None:
        for receiver in self.started:
            await stop_receiver(receiver)


@pytest.fixture
async def receivers(tmp_path, node_app):
    running = Receivers(tmp_path, node_app)
    try:
        yield running
    finally:
        await running.stop_all()


@pytest.fixture
async def api(transactional_db, stack, api_key):
    """The owner's key against the live server (the test's rows are committed: the server sees them)."""
    headers = {"Authorization": f"Bearer {api_key[1]}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture(params=["python", "node"])
def kind(request) -> str:
    return request.param


async def call(api: httpx.AsyncClient, method: str, path: str, expect: int, **kwargs):
    response = await api.request(method, path, **kwargs)
    assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


async def create_hook(api: httpx.AsyncClient, port: int, events=("*",)) -> dict:
    body = {"url": f"http://127.0.0.1:{port}/", "events": list(events), "description": "examples/webhooks"}
    return await call(api, "POST", "/api/v1/webhooks", 201, json=body)


async def settled(api, stack: Stack, hook: dict, delivery: dict, status: str = "succeeded") -> dict:
    """The delivery's detail once it is `status` (fails at once if it finished otherwise)."""
    path = f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}"

    async def done():
        detail = await call(api, "GET", path, 200)
        finished = detail["status"] in ("succeeded", "failed")
        assert detail["status"] == status or not finished, detail
        return detail if detail["status"] == status else None

    try:
        return await async_wait_for(done, timeout=DEADLINE, interval=0.25, what=f"{delivery['id']} {status}")
    except WaitTimeout as exc:
        pytest.fail(f"{exc}\n{stack.tail()}")


async def one_delivery(api, hook: dict, event: str) -> dict:
    """The webhook's only delivery of `event` (the list endpoint's ?event= filter)."""

    async def listed():
        page = await call(api, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries", 200, params={"event": event})
        return page["results"]

    [delivery] = await async_wait_for(listed, timeout=DEADLINE, what=f"a delivery of {event}")
    return delivery


async def stored_and_processed(receiver: ExampleReceiver, event_ids: list[str], stack: Stack) -> dict:
    """The receiver's store once it holds exactly `event_ids` (in that order), each processed."""

    def complete():
        stored = receiver.stored()
        return stored if list(stored) == event_ids and all(e["processed"] for e in stored.values()) else None

    try:
        return await async_wait_for(complete, timeout=DEADLINE, interval=0.1, what=f"{event_ids} stored")
    except WaitTimeout as exc:
        pytest.fail(f"{exc}\n{receiver.describe()}\n{stack.tail()}")


def answered(detail: dict) -> list[tuple[int | None, dict]]:
    """Each attempt's status code and JSON answer, as the server recorded them."""
    return [(a["statusCode"], json.loads(a["responseBody"] or "null")) for a in detail["attemptLog"]]


async def test_an_example_stores_each_real_event_once_through_redeliveries_and_a_rotation(kind, stack, api, receivers):
    port = free_port()
    hook = await create_hook(api, port)
    old = hook["secret"]
    receiver = await receivers.start(kind, old, port=port, name="receiver")

    # A test event, then a key created and revoked through the API: three events, each once.
    test = await call(api, "POST", f"/api/v1/webhooks/{hook['id']}/test", 202)
    assert (await settled(api, stack, hook, test))["attemptLog"][0]["statusCode"] == 202
    key = await call(api, "POST", "/api/v1/keys", 201, json={"name": "made for the webhook"})
    await call(api, "DELETE", f"/api/v1/keys/{key['id']}", 204)
    created = await one_delivery(api, hook, "key.created")
    revoked = await one_delivery(api, hook, "key.revoked")
    for delivery in (created, revoked):
        detail = await settled(api, stack, hook, delivery)
        assert answered(detail) == [(202, {"accepted": True})]
    ids = [test["eventId"], created["eventId"], revoked["eventId"]]
    stored = await stored_and_processed(receiver, ids, stack)
    assert [e["type"] for e in stored.values()] == ["webhook.test", "key.created", "key.revoked"]
    assert stored[test["eventId"]]["event"]["data"]["webhookId"] == hook["id"]
    assert stored[created["eventId"]]["event"]["data"]["id"] == key["id"]
    assert stored[revoked["eventId"]]["event"]["data"]["revokedAt"]
    assert "secret" not in stored[created["eventId"]]["event"]["data"]
    assert [e["deliveries"] for e in stored.values()] == [1, 1, 1]

    # A redelivery carries the same webhook-id: recorded as a duplicate, answered 200, not processed again.
    again = await call(api, "POST", f"/api/v1/webhooks/{hook['id']}/deliveries/{test['id']}/redeliver", 202)
    assert again["eventId"] == test["eventId"] and again["redeliveryOf"] == test["id"] and again["id"] != test["id"]
    assert answered(await settled(api, stack, hook, again)) == [(200, {"duplicate": True})]
    assert receiver.stored()[test["eventId"]]["deliveries"] == 2

    # A rotation: two signatures for 24 h; the receiver still holding only the old secret verifies.
    rotated = await call(api, "POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", 200)
    new = rotated["secret"]
    assert new != old and rotated["previousSecretExpiresAt"]
    during = await call(api, "POST", f"/api/v1/webhooks/{hook['id']}/test", 202)
    detail = await settled(api, stack, hook, during)
    assert answered(detail) == [(202, {"accepted": True})]
    assert len(detail["attemptLog"][0]["requestHeaders"]["webhook-signature"].split()) == 2
    ids.append(during["eventId"])
    await stored_and_processed(receiver, ids, stack)

    # Restarted with only the new secret, on its store and port: it verifies; a redelivery of an
    # event stored before the restart is still a duplicate.
    await stop_receiver(receiver)
    receiver = await receivers.start(kind, new, port=port, name="receiver")
    after = await call(api, "POST", f"/api/v1/webhooks/{hook['id']}/test", 202)
    assert answered(await settled(api, stack, hook, after)) == [(202, {"accepted": True})]
    ids.append(after["eventId"])
    await stored_and_processed(receiver, ids, stack)
    replay = await call(api, "POST", f"/api/v1/webhooks/{hook['id']}/deliveries/{during['id']}/redeliver", 202)
    assert answered(await settled(api, stack, hook, replay)) == [(200, {"duplicate": True})]

    stored = receiver.stored()
    assert list(stored) == ids
    assert [e["deliveries"] for e in stored.values()] == [2, 1, 1, 2, 1]
    assert all(e["processed"] for e in stored.values())
    # Each event processed exactly once over both runs of the receiver.
    for event_id in ids:
        assert sum(r.processed(event_id) for r in receivers.started) == 1, event_id
    page = await call(api, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries", 200)
    assert page["count"] == 7 and {d["status"] for d in page["results"]} == {"succeeded"}


async def test_an_example_with_the_wrong_secret_refuses_and_the_delivery_fails(kind, stack, api, receivers):
    port = free_port()
    hook = await create_hook(api, port)
    receiver = await receivers.start(kind, new_secret(), port=port, name="wrong")
    test = await call(api, "POST", f"/api/v1/webhooks/{hook['id']}/test", 202)
    path = f"/api/v1/webhooks/{hook['id']}/deliveries/{test['id']}"
    seen: list[str] = []

    async def finished():
        detail = await call(api, "GET", path, 200)
        if not seen or seen[-1] != detail["status"]:
            seen.append(detail["status"])
        return detail if detail["status"] == "failed" else None

    try:
        detail = await async_wait_for(finished, timeout=DEADLINE, interval=0.25, what="the delivery to fail")
    except WaitTimeout as exc:
        pytest.fail(f"{exc} (seen: {seen})\n{receiver.describe()}\n{stack.tail()}")
    assert "retrying" in seen and seen[-1] == "failed", seen
    assert detail["attempts"] == 2 and detail["responseStatus"] == 400
    assert answered(detail) == [(400, {"error": "webhook_signature_invalid"})] * 2
    assert receiver.stored() == {}
    assert not any(line.startswith("processed ") for line in receiver.output)
    failed = await call(api, "GET", f"/api/v1/webhooks/{hook['id']}/deliveries", 200, params={"status": "failed"})
    assert [d["id"] for d in failed["results"]] == [test["id"]]


async def test_a_real_sandbox_s_events_reach_both_examples_once_each_in_order(
    stack, api, receivers, templates, cleanup_sandbox_ids
):
    """One sandbox created and destroyed through the API; two endpoints, one per receiver: each
    stores the same three events (one webhook-id per event, whatever the endpoint), in order."""
    kinds = ("sandbox.created", "sandbox.started", "sandbox.destroyed")
    running = {}
    for kind in ("python", "node"):
        port = free_port()
        hook = await create_hook(api, port, events=kinds)
        running[kind] = (hook, await receivers.start(kind, hook["secret"], port=port, name=kind))
    sandbox = await call(api, "POST", "/api/v1/sandboxes", 201, json={"template": "python-3", "name": "hooked"})
    cleanup_sandbox_ids.append(sandbox["id"])
    await call(api, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}", 204)

    ids = None
    for hook, receiver in running.values():
        deliveries = [await one_delivery(api, hook, event) for event in kinds]
        for delivery in deliveries:
            await settled(api, stack, hook, delivery)
        hook_ids = [d["eventId"] for d in deliveries]
        assert ids is None or hook_ids == ids  # the same event ids to both endpoints
        ids = hook_ids
        stored = await stored_and_processed(receiver, ids, stack)
        assert [e["type"] for e in stored.values()] == list(kinds)
        assert {e["event"]["data"]["id"] for e in stored.values()} == {sandbox["id"]}
        assert stored[ids[-1]]["event"]["data"]["status"] == "destroyed"
        assert [receiver.processed(event_id) for event_id in ids] == [1, 1, 1]


def readme_commands(kind: str) -> list[str]:
    """The three commands of examples/webhooks/README.md's block for `kind` (its export line and
    comments left out: the test gives the server's URL and a key)."""
    section = (EXAMPLES / "README.md").read_text().split("## Against a VibeBox server", 1)[1].split("\n## ", 1)[0]
    script = {"python": "receiver.py", "node": "receiver.mjs"}[kind]
    [block] = [b for b in re.findall(r"```bash\n(.*?)```", section, re.S) if script in b]
    lines = block.replace("\\\n", " ").splitlines()
    commands = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith(("#", "export "))]
    assert len(commands) == 3, commands
    return commands


async def test_the_readme_s_three_commands_against_the_live_server(kind, stack, api, api_key, receivers, tmp_path):
    """The README's commands as written (port 8001 aside): an endpoint made with curl, the receiver
    started with the secret from its answer, a test event that the receiver processes."""
    port = free_port()
    create, receive, test = (command.replace("8001", str(port)) for command in readme_commands(kind))
    folder = tmp_path / "readme"
    folder.mkdir()
    env = {
        **os.environ,
        "VIBEBOX_API_URL": stack.url,
        "VIBEBOX_API_KEY": api_key[1],
        "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",  # python3: the virtualenv's
        "PYTHONPATH": str(ROOT / "sdk" / "python" / "src"),  # as `pip install ./sdk/python` would
        "PYTHONUNBUFFERED": "1",
    }
    if kind == "python":  # run from a VibeBox checkout
        (folder / "examples").symlink_to(ROOT / "examples")
        store = folder / "webhooks.sqlite3"
    else:  # in a folder where @vibebox/sdk is installed, the receiver copied there
        (folder / "node_modules").symlink_to(receivers.node_app / "node_modules")
        (folder / "receiver.mjs").write_bytes((EXAMPLES / "node" / "receiver.mjs").read_bytes())
        store = folder / "webhooks.json"

    assert await run_shell(create, cwd=folder, env=env) == ""
    hook = json.loads((folder / "hook.json").read_text())
    assert hook["url"] == f"http://127.0.0.1:{port}/" and hook["secret"].startswith("whsec_")
    assert receive.endswith(" &")
    receiver = await spawn_receiver(
        kind, ["bash", "-c", receive.removesuffix(" &")], cwd=folder, env=env, port=port, store=store
    )
    receivers.started.append(receiver)  # stopped at teardown
    queued = json.loads(await run_shell(test, cwd=folder, env=env))
    assert queued["event"] == "webhook.test" and queued["webhookId"] == hook["id"]
    await settled(api, stack, hook, queued)
    stored = await stored_and_processed(receiver, [queued["eventId"]], stack)
    assert stored[queued["eventId"]]["type"] == "webhook.test"
    assert f"processed {queued['eventId']} webhook.test" in receiver.output
