"""Redis down (issue 18): limits that cannot be counted fail closed for what changes things.

- API writes (POST, PUT, PATCH, DELETE) answer 503 `rate_limiter_unavailable` with Retry-After
  and change nothing; reads pass uncounted.
- New WebSocket streams (every one holds a counted slot) are refused the same way (4503 / 503);
  open ones are closed with 4503 (they listen on the channel layer, which is Redis too).
- The sign-in forms answer 503 "try again later" without checking the password.
- /readyz reports Redis as down; everything works again once Redis is back.

Each test starts its own redis-server on a free loopback port and kills it: the shared Redis is
never touched.
"""

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
import requests
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from vibebox_sdk import ServiceUnavailableError, VibeBox
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apps.agents.models import AgentRun
from apps.keys.models import ApiKey
from apps.sandboxes import limits
from apps.sandboxes.models import Sandbox
from bench.common import free_port
from tests.conftest import INSTANCE_LABEL, live_server
from tests.ws import Communicator
from vibebox.asgi import application

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class OwnRedis:
    """A throw-away redis-server on loopback (no persistence), that a test can kill and restart."""

    def __init__(self, directory):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self):
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            assert self.process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def assert_unavailable(response):
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "rate_limiter_unavailable"
    assert response.json()["error"]["details"] == {"dependency": "redis"}
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.django_db(transaction=True)
def test_a_server_with_redis_down_refuses_writes_and_streams_and_serves_reads(
    own_redis, api_key, templates, docker_client
):
    key, secret = api_key
    headers = {"Authorization": f"Bearer {secret}"}
    with live_server(REDIS_URL=own_redis.url) as (url, _pid):
        api = f"{url}/api/v1"

        def create_key():
            return requests.post(f"{api}/keys", json={"name": "while-down"}, headers=headers, timeout=60)

        assert create_key().status_code == 201
        run = requests.post(f"{api}/agent-runs", json={"name": "before"}, headers=headers, timeout=60)
        assert run.status_code == 201, run.content
        run_id, run_status = run.json()["id"], run.json()["status"]
        assert requests.get(f"{url}/readyz", timeout=60).json()["checks"]["redis"] == {"ok": True}
        keys_before = ApiKey.objects.count()
        ws = url.replace("http", "ws")

        async def open_then_lose_redis():
            held = await connect(f"{ws}/ws/activity", additional_headers=headers)
            own_redis.kill()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(held.recv(), timeout=60)
            return closed.value.rcvd

        # a stream open when Redis goes away is closed with a code, not dropped by a crash
        closed = async_to_sync(open_then_lose_redis)()
        assert (closed.code, closed.reason) == (4503, "rate_limiter_unavailable")

        # reads pass, uncounted
        listed = requests.get(f"{api}/sandboxes", headers=headers, timeout=60)
        assert listed.status_code == 200, listed.content
        assert requests.get(f"{api}/keys/{key.pk}", headers=headers, timeout=60).status_code == 200
        # writes are refused, and leave nothing behind
        assert_unavailable(create_key())
        assert_unavailable(
            requests.post(f"{api}/sandboxes", json={"template": "python-3"}, headers=headers, timeout=60)
        )
        assert_unavailable(
            requests.patch(f"{api}/agent-runs/{run_id}", json={"status": "cancelled"}, headers=headers, timeout=60)
        )
        assert_unavailable(requests.delete(f"{api}/keys/{key.pk}", headers=headers, timeout=60))
        with VibeBox(api_key=secret, base_url=url, max_retries=0) as sdk:  # the SDK's class for it
            with pytest.raises(ServiceUnavailableError) as raised:
                sdk.keys.create("through-the-sdk")
            assert raised.value.code == "rate_limiter_unavailable"
        assert ApiKey.objects.count() == keys_before
        key.refresh_from_db()
        assert key.name == "test key" and key.revoked_at is None
        assert AgentRun.objects.get(pk=run_id).status == run_status
        assert not Sandbox.objects.exists()
        assert not docker_client.containers.list(all=True, filters={"label": INSTANCE_LABEL})

        # a new stream cannot be counted: refused before the upgrade
        async def open_stream():
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"{ws}/ws/activity", additional_headers=headers)
            return refused.value.response

        refused = async_to_sync(open_stream)()
        assert refused.status_code == 503
        assert b'"rate_limiter_unavailable"' in refused.body

        # readiness says why
        ready = requests.get(f"{url}/readyz", timeout=60)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False

        # Redis back (empty): writes work again, without restarting the server
        own_redis.start()
        assert wait_for(lambda: create_key().status_code == 201)
        assert requests.get(f"{url}/readyz", timeout=60).json()["checks"]["redis"] == {"ok": True}


def _point_at(settings, redis_url):
    """This process's cache, limits and channel layer use `redis_url` (as REDIS_URL does for a server)."""
    settings.REDIS_URL = redis_url
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": redis_url}}
    layer = settings.CHANNEL_LAYERS["default"]
    hosts = [{**layer["CONFIG"]["hosts"][0], "address": redis_url}]
    settings.CHANNEL_LAYERS = {"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": hosts}}}


@pytest.mark.django_db(transaction=True)
def test_websocket_streams_are_refused_with_4503(own_redis, api_key, settings):
    _point_at(settings, own_redis.url)
    own_redis.kill()

    async def scenario():
        comm = Communicator(
            application,
            "/ws/activity",
            headers=[(b"host", b"testserver"), (b"authorization", f"Bearer {api_key[1]}".encode())],
        )
        result = await comm.connect(timeout=30)
        await comm.disconnect()
        return result

    assert async_to_sync(scenario)() == (False, 4503)


@pytest.fixture
def person(db):
    name = f"redis-{uuid.uuid4().hex[:10]}"
    get_user_model().objects.create_user(username=name, password="right-password-1", is_staff=True)
    return name


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_sign_in_says_try_later_when_the_lockout_cannot_be_counted(own_redis, person, settings, path):
    _point_at(settings, own_redis.url)
    own_redis.kill()
    for password in ("right-password-1", "wrong"):  # the password is not even checked
        client = Client()
        response = client.post(path, {"username": person, "password": password}, REMOTE_ADDR="203.0.113.7")
        assert response.status_code == 503, response.status_code
        assert b"try again" in response.content.lower() and b'id="id_password"' in response.content
        assert int(response["Retry-After"]) >= 1
        assert "_auth_user_id" not in client.session

    own_redis.start()
    client = Client()
    response = client.post(path, {"username": person, "password": "right-password-1"}, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_the_shared_redis_is_not_the_one_killed(own_redis):
    assert own_redis.url != django_settings.REDIS_URL


@pytest.fixture
def hung_redis():
    """A loopback port that accepts connections and never answers, as a wedged Redis does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join(timeout=10)
    for connection in held:
        connection.close()
    listener.close()


@pytest.mark.timeout(120)
def test_a_hung_redis_fails_the_same_way_instead_of_hanging(hung_redis, person, api_client, settings):
    _point_at(settings, hung_redis)
    client = Client()
    response = client.post("/login/", {"username": person, "password": "right-password-1"}, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 503 and "_auth_user_id" not in client.session
    assert api_client.get("/api/v1/sandboxes").status_code == 200
    refused = api_client.post("/api/v1/keys", {"name": "while-hung"}, format="json")
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "rate_limiter_unavailable"


def test_held_slots_are_counted_again_after_redis_restarts_empty(own_redis, settings):
    """A Redis restarted without its data (or an outage longer than the lease) forgets the slots of
    streams and processes still open; the renewer puts them back, and never a released one."""
    _point_at(settings, own_redis.url)
    owner_id = f"restart-{uuid.uuid4().hex[:8]}"
    kept = limits.acquire(limits.PROCESSES, owner_id)
    released = limits.acquire(limits.PROCESSES, owner_id)
    assert limits.current(limits.PROCESSES, owner_id) == 2
    own_redis.kill()
    own_redis.start()  # empty: no persistence
    # Forgotten, unless this process's renewer (every LEASE_SECONDS / 3, started by an earlier
    # test) ticked since the restart: then both, still held, are back.
    assert limits.current(limits.PROCESSES, owner_id) in (0, 2)
    released.release()
    # within one renewal period (LEASE_SECONDS / 3) the held one is counted again, alone
    assert wait_for(lambda: limits.current(limits.PROCESSES, owner_id) == 1, timeout=limits.LEASE_SECONDS)
    kept.release()
    assert limits.current(limits.PROCESSES, owner_id) == 0
