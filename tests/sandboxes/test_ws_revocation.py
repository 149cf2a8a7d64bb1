"""Open streams end when their credentials do: a revoked or expired key, a logged-out session or a
deactivated user closes the stream with 4401, a scope taken away with 4403, within
VIBEBOX_WS_RECHECK_SECONDS. Every stream type, through the real ASGI app and real containers."""

import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from apps.keys.models import ApiKey
from apps.keys.services import api_key_revoke
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

KINDS = ["logs", "exec", "process", "terminal", "activity", "claude", "watch"]


def path_for(kind: str, sandbox_id: str, process_id: str) -> str:
    return {
        "logs": f"/ws/sandboxes/{sandbox_id}/logs?tail=0",
        "exec": f"/ws/sandboxes/{sandbox_id}/exec",
        "process": f"/ws/sandboxes/{sandbox_id}/processes/{process_id}",
        "terminal": f"/ws/sandboxes/{sandbox_id}/terminal",
        "activity": "/ws/activity",
        "claude": f"/ws/sandboxes/{sandbox_id}/claude",
        "watch": f"/ws/sandboxes/{sandbox_id}/files/watch",
    }[kind]


async def open_stream(kind: str, path: str, *, secret: str | None = None, cookie: str | None = None):
    headers = [(b"host", b"testserver")]
    if secret:
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    if cookie:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    comm = Communicator(application, path, headers=headers)
    connected, code = await comm.connect(timeout=30)
    assert connected, (kind, code)
    if kind == "exec":
        await comm.send_json_to({"command": "sleep 300", "timeout": 600})
    return comm


async def closed_with(comm, timeout: float = 30.0) -> int | None:
    """Reads (and skips) output until the server closes; the close code."""
    deadline = time.monotonic() + timeout
    while True:
        output = await comm.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            await comm.disconnect()
            return output.get("code")


def session_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


@pytest.fixture
def process_id(api_client, sandbox_id):
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "sleep 300", "background": True}, format="json"
    )
    assert response.status_code == 202, response.content
    return response.json()["processId"]


@pytest.mark.parametrize("kind", KINDS)
def test_streams_close_when_credentials_end(kind, owner, make_key, sandbox_id, process_id, settings):
    settings.VIBEBOX_WS_RECHECK_SECONDS = 1
    path = path_for(kind, sandbox_id, process_id)
    revoked, expiring, narrowed, deactivated = (make_key(owner, name=n) for n in ("r", "e", "n", "d"))
    logged_out, kept_session = session_for(owner), session_for(owner)
    cookie = lambda client: client.cookies[django_settings.SESSION_COOKIE_NAME].value  # noqa: E731

    async def scenario():
        streams = {
            "revoked": await open_stream(kind, path, secret=revoked[1]),
            "expiring": await open_stream(kind, path, secret=expiring[1]),
            "narrowed": await open_stream(kind, path, secret=narrowed[1]),
            "deactivated": await open_stream(kind, path, secret=deactivated[1]),
            "logged_out": await open_stream(kind, path, cookie=cookie(logged_out)),
            "kept_session": await open_stream(kind, path, cookie=cookie(kept_session)),
        }

        await sync_to_async(api_key_revoke)(key=revoked[0])
        assert await closed_with(streams["revoked"]) == 4401

        await sync_to_async(ApiKey.objects.filter(pk=expiring[0].pk).update)(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert await closed_with(streams["expiring"]) == 4401

        await sync_to_async(ApiKey.objects.filter(pk=narrowed[0].pk).update)(scopes=["keys:manage"])
        assert await closed_with(streams["narrowed"]) == 4403

        response = await sync_to_async(logged_out.post)("/logout/")  # the dashboard's sign-out
        assert response.status_code in (200, 302)
        assert await closed_with(streams["logged_out"]) == 4401

        await sync_to_async(get_user_model().objects.filter(pk=owner.pk).update)(is_active=False)
        assert await closed_with(streams["deactivated"]) == 4401
        assert await closed_with(streams["kept_session"]) == 4401

    async_to_sync(scenario)()


def test_a_change_closes_only_the_streams_it_concerns(owner, make_key, settings):
    settings.VIBEBOX_WS_RECHECK_SECONDS = 1
    revoked, kept = make_key(owner, name="revoked"), make_key(owner, name="kept")

    async def scenario():
        gone = await open_stream("activity", "/ws/activity", secret=revoked[1])
        stays = await open_stream("activity", "/ws/activity", secret=kept[1])
        await sync_to_async(api_key_revoke)(key=revoked[0])
        assert await closed_with(gone) == 4401
        # a few more re-checks pass without closing the other one
        assert await stays.receive_nothing(timeout=3)
        await stays.disconnect()

    async_to_sync(scenario)()


def test_the_close_reason_names_the_error(owner, make_key, settings):
    settings.VIBEBOX_WS_RECHECK_SECONDS = 1
    key, secret = make_key(owner)

    async def scenario():
        comm = await open_stream("activity", "/ws/activity", secret=secret)
        await sync_to_async(api_key_revoke)(key=key)
        output = await comm.receive_output(timeout=30)
        await comm.disconnect()
        return output

    output = async_to_sync(scenario)()
    assert output == {"type": "websocket.close", "code": 4401, "reason": "invalid_api_key"}


def test_default_recheck_is_at_most_five_seconds():
    assert 0 < django_settings.VIBEBOX_WS_RECHECK_SECONDS <= 5
