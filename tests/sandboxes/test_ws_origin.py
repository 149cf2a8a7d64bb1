"""The WebSocket Origin check: full scheme://host:port origins, compared exactly (a page on
another port of the same host cannot use a signed-in user's session). The real ASGI app, and a
live uvicorn with a real WebSocket client."""

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import live_server
from tests.ws import Communicator
from vibebox.asgi import application
from vibebox.origins import allowed_origins

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def session_cookie(owner) -> str:
    client = Client()
    client.force_login(owner)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def attempt(origin: str | None, *, cookie: str | None = None, secret: str | None = None):
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    if secret:
        headers.append((b"authorization", f"Bearer {secret}".encode()))

    async def scenario():
        comm = Communicator(application, "/ws/activity", headers=headers)
        result = await comm.connect(timeout=10)
        await comm.disconnect()
        return result

    return async_to_sync(scenario)()


def test_session_from_a_foreign_origin_is_refused(session_cookie, settings):
    port = settings.VIBEBOX_PORT
    for own in (f"http://localhost:{port}", f"https://localhost:{port}", f"http://127.0.0.1:{port}"):
        assert attempt(own, cookie=session_cookie)[0] is True, own
    foreign = (
        "http://localhost:3000",  # same host, another port: the reported hole
        f"http://localhost:{port + 1}",
        "http://localhost",
        f"http://evil.localhost:{port}",
        f"http://localhost.evil.example:{port}",
        f"ftp://localhost:{port}",
        "null",  # sandboxed iframes, file: pages
        "",
        f"http://user@localhost:{port}",
    )
    for origin in foreign:
        assert attempt(origin, cookie=session_cookie) == (False, 4403), origin


def test_no_origin_is_an_api_client(session_cookie, api_key):
    assert attempt(None, secret=api_key[1])[0] is True
    assert attempt(None, cookie=session_cookie)[0] is True
    assert attempt(None) == (False, 4401)
    # a key does not make a foreign page's socket acceptable either
    assert attempt("http://localhost:3000", secret=api_key[1]) == (False, 4403)


def test_no_wildcard_even_with_debug(session_cookie, settings):
    settings.DEBUG = True
    assert attempt("http://localhost:3000", cookie=session_cookie) == (False, 4403)
    assert attempt("https://anything.example", cookie=session_cookie) == (False, 4403)


def test_configured_origins_replace_the_defaults(session_cookie, settings):
    settings.VIBEBOX_ALLOWED_ORIGINS = ["https://vibebox.example.com", "http://localhost:3000"]
    assert attempt("https://vibebox.example.com", cookie=session_cookie)[0] is True
    assert attempt("https://vibebox.example.com:443", cookie=session_cookie)[0] is True
    assert attempt("http://localhost:3000", cookie=session_cookie)[0] is True
    assert attempt(f"http://localhost:{settings.VIBEBOX_PORT}", cookie=session_cookie) == (False, 4403)
    assert attempt("http://vibebox.example.com", cookie=session_cookie) == (False, 4403)

    for bad in (["*"], ["https://*.example.com"], ["vibebox.example.com"], ["https://vibebox.example.com/app"]):
        settings.VIBEBOX_ALLOWED_ORIGINS = bad
        with pytest.raises(ImproperlyConfigured):
            allowed_origins()


def test_live_server_refuses_a_foreign_origin(transactional_db, session_cookie):
    with live_server() as (url, _pid):
        base = url.replace("http", "ws")
        port = int(url.rsplit(":", 1)[1])
        cookie = {"Cookie": f"{django_settings.SESSION_COOKIE_NAME}={session_cookie}"}

        async def scenario():
            ws = await connect(f"{base}/ws/activity", origin=f"http://127.0.0.1:{port}", additional_headers=cookie)
            await ws.close()
            for origin in ("http://127.0.0.1:3000", "http://localhost:3000", "null"):
                with pytest.raises(InvalidStatus) as refused:
                    await connect(f"{base}/ws/activity", origin=origin, additional_headers=cookie)
                assert refused.value.response.status_code == 403, origin
                assert b"permission_denied" in refused.value.response.body

        async_to_sync(scenario)()
