"""Preview URLs end to end (issue 25): servers in a real sandbox (`python3 -m http.server` and the
stdlib WebSocket/SSE server of preview_server.py) reached through the real ASGI app served by
uvicorn on loopback, in both forms (the host form by its Host header), with tokens, cookies, the
dashboard session, public ports, a paused sandbox's resume, and the refusals."""

import base64
import datetime as dt
import socket
import time
from pathlib import Path

import httpx
import pytest
from django.test import Client
from django.utils import timezone
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from apps.audit.models import AuditEntry
from apps.sandboxes.models import Sandbox
from apps.sandboxes.preview import tokens
from tests.conftest import live_server, sandbox_row
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

SERVER = base64.b64encode((Path(__file__).parent / "preview_server.py").read_bytes()).decode()
HTTP_PORT, APP_PORT = 3000, 8765
SITE = "hello from the http.server of a sandbox"


def _start(api_client, sandbox_id: str, command: str) -> None:
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, "background": True}, format="json"
    )
    assert response.status_code == 202, response.content


def _listening(api_client, sandbox_id: str) -> set[int]:
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/ports")
    assert response.status_code == 200, response.content
    return {entry["port"] for entry in response.json()["ports"] if entry["listening"]}


def _serve(api_client, sandbox_id: str) -> None:
    """http.server on 3000 (serving SITE) and preview_server.py on 8765, listening."""
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": f"mkdir -p /workspace/site && printf %s '{SITE}' > /workspace/site/index.html"},
        format="json",
    )
    assert response.json()["exitCode"] == 0, response.content
    _start(api_client, sandbox_id, f"cd /workspace/site && exec python3 -m http.server {HTTP_PORT}")
    _start(api_client, sandbox_id, f"echo {SERVER} | base64 -d > /tmp/ps.py && exec python3 /tmp/ps.py {APP_PORT}")
    wait_for(lambda: {HTTP_PORT, APP_PORT} <= _listening(api_client, sandbox_id), what="both servers listening")


def _token(api_client, sandbox_id: str, port: int, form: str = "host") -> dict:
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/ports/{port}/url", {"form": form})
    assert response.status_code == 200, response.content
    return response.json()


def _host(sandbox_id: str, port: int, live: str) -> str:
    # Browsers lowercase hosts: so does this client, and the proxy finds the sandbox all the same.
    return f"{port}-{sandbox_id}.preview.localhost:{live.rsplit(':', 1)[1]}".lower()


def _get(live: str, path: str, *, host: str | None = None, cookie: str | None = None, **kwargs) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if host:
        headers["Host"] = host
    if cookie:
        headers["Cookie"] = cookie
    return httpx.request(kwargs.pop("method", "GET"), live + path, headers=headers, timeout=60, **kwargs)


def _cookie_of(response: httpx.Response) -> str:
    set_cookie = response.headers["set-cookie"]
    return set_cookie.split(";", 1)[0]


def _path_of(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_servers_in_a_sandbox_through_both_forms(api_client, api_key, create_sandbox, templates, owner):
    sandbox_id = create_sandbox(template="python-3")["id"]
    _serve(api_client, sandbox_id)
    with live_server() as (live, _):
        host = _host(sandbox_id, HTTP_PORT, live)

        # Host form: the token sets a host-only cookie and is taken out of the URL.
        issued = _token(api_client, sandbox_id, HTTP_PORT)
        assert issued["url"].startswith(f"http://{HTTP_PORT}-{sandbox_id}.preview.localhost:")
        first = _get(live, _path_of(issued["url"]), host=host)
        assert first.status_code == 302 and first.headers["location"] == "/"
        set_cookie = first.headers["set-cookie"]
        assert set_cookie.startswith(f"{tokens.COOKIE}={issued['token']};") and "Path=/;" in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Domain" not in set_cookie
        max_age = int(set_cookie.split("Max-Age=", 1)[1].split(";", 1)[0])
        assert 3000 < max_age <= 3600  # as long as the token lasts
        cookie = _cookie_of(first)
        page = _get(live, "/", host=host, cookie=cookie)
        assert page.status_code == 200 and page.text == SITE
        assert "content-security-policy" not in page.headers

        # Path form: the cookie is kept under the preview's path; the answer carries the sandbox CSP.
        issued = _token(api_client, sandbox_id, HTTP_PORT, form="path")
        path = f"/preview/{sandbox_id}/{HTTP_PORT}/"
        assert _path_of(issued["url"]) == f"{path}?vibebox_token={issued['token']}"
        first = _get(live, _path_of(issued["url"]))
        assert first.status_code == 302 and first.headers["location"] == path
        assert f"Path={path};" in first.headers["set-cookie"]
        page = _get(live, path + "index.html", cookie=_cookie_of(first))
        assert page.status_code == 200 and page.text == SITE
        assert page.headers["content-security-policy"].startswith("sandbox allow-scripts")
        assert _get(live, path.rstrip("/")).headers["location"] == path  # the slash added

        # Nothing lets an anonymous client in.
        refused = _get(live, "/", host=host)
        assert refused.status_code == 401 and refused.headers["x-vibebox-preview-error"] == "preview_auth_required"
        assert "text/html" in refused.headers["content-type"] and "private" in refused.text
        assert _get(live, path).status_code == 401

        # What reaches the sandbox: no VibeBox credentials, VibeBox's own forwarding headers.
        app_cookie = _cookie_of(_get(live, _path_of(_token(api_client, sandbox_id, APP_PORT)["url"]),
                                     host=_host(sandbox_id, APP_PORT, live)))  # fmt: skip
        seen = _get(
            live,
            "/headers?x=1&vibebox_token=whatever",
            host=_host(sandbox_id, APP_PORT, live),
            cookie=f"{app_cookie}; sessionid=abc; csrftoken=def; mine=1",
            headers={"Authorization": f"Bearer {api_key[1]}", "X-API-Key": api_key[1], "X-Forwarded-Prefix": "/evil"},
        )
        # A token that does not verify is refused even beside a good cookie.
        assert seen.status_code == 403 and seen.headers["x-vibebox-preview-error"] == "preview_token_invalid"
        seen = _get(
            live,
            "/headers?x=1",
            host=_host(sandbox_id, APP_PORT, live),
            cookie=f"{app_cookie}; sessionid=abc; csrftoken=def; mine=1",
            headers={"Authorization": f"Bearer {api_key[1]}", "X-API-Key": api_key[1], "X-Forwarded-Prefix": "/evil"},
        )
        assert seen.status_code == 200, seen.text
        request = seen.json()
        headers = {name.lower(): value for name, value in request["headers"]}
        assert request["target"] == "/headers?x=1"
        assert headers["cookie"] == "mine=1"
        assert "authorization" not in headers and "x-api-key" not in headers
        assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-proto"] == "http"
        assert "x-forwarded-prefix" not in headers  # the client's own are dropped
        assert headers["x-forwarded-host"] == _host(sandbox_id, APP_PORT, live)
        # Cookies the sandbox sets stay on its host, and never take VibeBox's names.
        assert seen.headers.get_list("set-cookie") == ["app=1; Path=/"]

        path_app = f"/preview/{sandbox_id}/{APP_PORT}"
        path_cookie = _cookie_of(_get(live, _path_of(_token(api_client, sandbox_id, APP_PORT, form="path")["url"])))
        seen = _get(live, f"{path_app}/headers", cookie=path_cookie)
        headers = {name.lower(): value for name, value in seen.json()["headers"]}
        assert seen.json()["target"] == "/headers" and headers["x-forwarded-prefix"] == path_app
        assert seen.headers.get_list("set-cookie") == [f"app=1; Path={path_app}/"]

        # Headers that would reach the dashboard's origin are dropped; a redirect stays in the preview.
        hostile = _get(live, f"{path_app}/hostile", cookie=path_cookie)
        assert hostile.status_code == 302 and hostile.headers["location"] == f"{path_app}/elsewhere"
        assert "clear-site-data" not in hostile.headers and "strict-transport-security" not in hostile.headers
        hostile = _get(live, "/hostile", host=_host(sandbox_id, APP_PORT, live), cookie=app_cookie)
        assert hostile.headers["location"] == "/elsewhere" and "clear-site-data" in hostile.headers  # its own origin
        many = _get(live, f"{path_app}/many-headers", cookie=path_cookie)
        assert many.status_code == 502 and many.headers["x-vibebox-preview-error"] == "preview_bad_response"

        # Bodies stream both ways.
        body = bytes(range(256)) * 4096  # 1 MiB
        echoed = _get(live, f"{path_app}/echo", cookie=path_cookie, method="POST", content=body)
        assert echoed.status_code == 200 and echoed.content == body
        # A page of another origin (a sibling preview is the same site; a sandboxed page is "null")
        # may not send an unsafe request with the visitor's cookie; the app's own pages may, reads pass.
        app_host = _host(sandbox_id, APP_PORT, live)
        for foreign in (f"http://{_host('sbxsibling', APP_PORT, live)}", "null"):
            crossed = _get(
                live,
                "/echo",
                host=app_host,
                cookie=app_cookie,
                method="POST",
                content=b"x",
                headers={"Origin": foreign},
            )
            assert crossed.status_code == 403 and crossed.headers["x-vibebox-preview-error"] == "preview_cross_origin"
        own = _get(
            live,
            "/echo",
            host=app_host,
            cookie=app_cookie,
            method="POST",
            content=b"x",
            headers={"Origin": f"http://{app_host}"},
        )
        assert own.status_code == 200 and own.content == b"x"
        assert _get(live, "/headers", host=app_host, cookie=app_cookie, headers={"Origin": "null"}).status_code == 200
        with httpx.stream(
            "GET", live + "/sse", headers={"Host": _host(sandbox_id, APP_PORT, live), "Cookie": app_cookie}, timeout=60
        ) as events:
            assert events.headers["content-type"] == "text/event-stream"
            lines = events.iter_lines()
            got = [line for line in (next(lines) for _ in range(6)) if line]
            assert got == ["data: 0", "data: 1", "data: 2"]  # while the stream goes on

        # WebSockets: text, binary, the subprotocol, in both forms; the token works in the query.
        port = int(live.rsplit(":", 1)[1])
        with connect(
            f"ws://{_host(sandbox_id, APP_PORT, live)}/ws",
            sock=socket.create_connection(("127.0.0.1", port)),
            additional_headers={"Cookie": app_cookie},
            subprotocols=["chat", "other"],
            open_timeout=30,
        ) as ws:
            assert ws.subprotocol == "chat"
            ws.send("hello")
            assert ws.recv(timeout=30) == "hello"
            ws.send(b"\x00\x01\xff")
            assert ws.recv(timeout=30) == b"\x00\x01\xff"
            ws.send("close:4321")  # the app's close reaches the client with its code and reason
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4321, "by the app")
        with pytest.raises(InvalidStatus) as crossed_ws:
            connect(
                f"ws://{app_host}/ws",
                sock=socket.create_connection(("127.0.0.1", port)),
                additional_headers={"Cookie": app_cookie},
                origin="http://elsewhere.preview.localhost",
                open_timeout=30,
            )
        assert crossed_ws.value.response.headers["X-VibeBox-Preview-Error"] == "preview_cross_origin"
        token = _token(api_client, sandbox_id, APP_PORT, form="path")["token"]
        with connect(f"ws://127.0.0.1:{port}{path_app}/ws?vibebox_token={token}", open_timeout=30) as ws:
            ws.send("through the path form")
            assert ws.recv(timeout=30) == "through the path form"
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}{path_app}/ws", open_timeout=30)
        assert refused.value.response.status_code == 401
        assert refused.value.response.headers["X-VibeBox-Preview-Error"] == "preview_auth_required"

        # Refusals: an expired token, another sandbox's, another port's; nothing listening; bad ports.
        expired = tokens.token_make(sandbox_id=sandbox_id, port=HTTP_PORT, expires_at=int(time.time()) - 5)
        answer = _get(live, f"/?vibebox_token={expired}", host=host)
        assert answer.status_code == 403 and answer.headers["x-vibebox-preview-error"] == "preview_token_expired"
        other = sandbox_row(owner, templates["python-3"], name="other", status="stopped")
        for token in (
            _token(api_client, other.pk, HTTP_PORT)["token"],
            _token(api_client, sandbox_id, APP_PORT)["token"],
        ):
            answer = _get(live, f"/?vibebox_token={token}", host=host)
            assert answer.status_code == 403 and answer.headers["x-vibebox-preview-error"] == "preview_token_invalid"
            assert _get(live, "/", host=host, cookie=f"{tokens.COOKIE}={token}").status_code == 401
        silent = _token(api_client, sandbox_id, 3999)
        first = _get(live, _path_of(silent["url"]), host=_host(sandbox_id, 3999, live))
        answer = _get(live, "/", host=_host(sandbox_id, 3999, live), cookie=_cookie_of(first))
        assert answer.status_code == 502 and answer.headers["x-vibebox-preview-error"] == "port_not_listening"
        assert "Nothing listens on port 3999" in answer.text and "text/html" in answer.headers["content-type"]
        for bad in (f"/preview/{sandbox_id}/0/", f"/preview/{sandbox_id}/49983/", f"/preview/{sandbox_id}/70000/",
                    f"/preview/{sandbox_id}/³/", "/preview/sbx_nosuchsandbox0000000/3000/"):  # fmt: skip
            assert _get(live, bad).status_code == 404, bad
        assert _get(live, "/", host=f"49983-{sandbox_id}.preview.localhost".lower()).status_code == 404


def test_public_ports_sessions_and_paused_sandboxes(api_client, create_sandbox, owner, outsider):
    sandbox_id = create_sandbox(template="python-3", autoResume=True)["id"]
    _serve(api_client, sandbox_id)
    with live_server() as (live, _):
        host = _host(sandbox_id, HTTP_PORT, live)
        path = f"/preview/{sandbox_id}/{HTTP_PORT}/"

        # The owner's dashboard session opens the path form (never the host form); an outsider's does not.
        mine, theirs = Client(), Client()
        mine.force_login(owner)
        theirs.force_login(outsider)
        session = f"sessionid={mine.cookies['sessionid'].value}"
        page = _get(live, path, cookie=session)
        assert page.status_code == 200 and page.text == SITE
        assert _get(live, path, cookie=f"sessionid={theirs.cookies['sessionid'].value}").status_code == 401
        assert _get(live, "/", host=host, cookie=session).status_code == 401

        # A public port needs nothing; the change is audited.
        response = api_client.patch(
            f"/api/v1/sandboxes/{sandbox_id}/ports/{HTTP_PORT}", {"public": True}, format="json"
        )
        assert response.status_code == 200, response.content
        assert response.json()["public"] is True and response.json()["listening"] is True
        entry = AuditEntry.objects.get(action="sandbox.port_updated")
        assert entry.target_id == sandbox_id and entry.changes == {"port": HTTP_PORT, "public": [False, True]}
        assert _get(live, "/", host=host).text == SITE
        expired = tokens.token_make(sandbox_id=sandbox_id, port=HTTP_PORT, expires_at=int(time.time()) - 5)
        assert _get(live, f"/?vibebox_token={expired}", host=host).text == SITE  # an old link still opens it
        long_ago = timezone.now() - dt.timedelta(hours=1)
        Sandbox.objects.filter(pk=sandbox_id).update(last_activity_at=long_ago)
        assert _get(live, "/", host=host).status_code == 200
        assert Sandbox.objects.get(pk=sandbox_id).last_activity_at > long_ago  # preview traffic is activity

        # A server bound to loopback only is listed with its address, and answered with a page saying so.
        _start(api_client, sandbox_id, "exec python3 -m http.server 3001 --bind 127.0.0.1")
        listed = wait_for(
            lambda: [
                p for p in api_client.get(f"/api/v1/sandboxes/{sandbox_id}/ports").json()["ports"] if p["port"] == 3001
            ],
            what="the loopback server listed",
        )
        assert listed[0]["address"] == "127.0.0.1" and listed[0]["listening"] is True
        loopback = _host(sandbox_id, 3001, live)
        cookie = _cookie_of(_get(live, _path_of(_token(api_client, sandbox_id, 3001)["url"]), host=loopback))
        answer = _get(live, "/", host=loopback, cookie=cookie)
        assert answer.status_code == 502 and answer.headers["x-vibebox-preview-error"] == "port_loopback_only"
        assert "Bind it to 0.0.0.0" in answer.text

        # Paused with autoResume: the first request resumes it.
        assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause").status_code == 200
        page = _get(live, "/", host=host)
        assert page.status_code == 200 and page.text == SITE
        sandbox = Sandbox.objects.get(pk=sandbox_id)
        assert sandbox.status == "running" and sandbox.last_activity_at is not None

        # Paused without: a 409 page, and it stays paused.
        assert (
            api_client.patch(f"/api/v1/sandboxes/{sandbox_id}", {"autoResume": False}, format="json").status_code == 200
        )
        assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause").status_code == 200
        answer = _get(live, "/", host=host)
        assert answer.status_code == 409 and answer.headers["x-vibebox-preview-error"] == "sandbox_paused"
        assert Sandbox.objects.get(pk=sandbox_id).status == "paused"
