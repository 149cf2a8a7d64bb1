"""The relay between a preview's client and the server in the sandbox, at the sandbox's address on
the sandbox network: HTTP streamed both ways (httpx; bodies are never held whole, so SSE and
long downloads flow as they come) and WebSockets (the `websockets` client; text and binary
frames and closes relayed).

What goes to the sandbox: the request without VibeBox's own credentials (its session, CSRF and
preview cookies, a VibeBox API key in Authorization or X-API-Key, the token parameter), with
X-Forwarded-For/-Proto/-Host/-Port (and -Prefix for the path form) set by VibeBox. What comes back
is hostile: hop-by-hop headers are dropped, cookies it sets lose their Domain (and, in the path
form, are kept under the preview's path, never VibeBox's own names), the path form gets the
sandbox CSP and loses headers that would reach the dashboard's origin (HSTS, Clear-Site-Data), and
response headers are capped (h11's own limit, then MAX_HEADERS / MAX_HEADER_BYTES).

A sandbox on a node (`admitted.relay`) is reached the same way through its node's relay
(runtime/relay.py, docs/nodes.md): HTTP through a transport of ours (`_RelayTransport`) over an
httpcore pool whose connections are relay tunnels (`_RelayBackend`, on the event loop), public API
of httpx and httpcore only; WebSockets through the relay as an HTTPS proxy (the `websockets`
client's own CONNECT, with the node's client certificate).
"""

import asyncio
import contextlib
import dataclasses
import logging
import time

import httpcore
import httpx
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect as ws_connect

from .. import idle
from ..runtime import relay as relay_client
from . import pages, tokens

logger = logging.getLogger(__name__)

MAX_HEADERS = 256
MAX_HEADER_BYTES = 64 * 1024
WS_MAX_SIZE = 16 * 1024 * 1024
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by VibeBox from what it knows; a client's own are dropped.
FORWARDING = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
     b"x-forwarded-prefix", b"x-real-ip"}
)  # fmt: skip
WS_HANDSHAKE = frozenset(
    {b"host", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
)
PATH_FORM_DROPPED = frozenset({b"strict-transport-security", b"clear-site-data", b"public-key-pins"})
KEY_PREFIXES = ("vb_live_", "vb_test_")


def _own_cookies() -> set[str]:
    return {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, tokens.COOKIE, "messages"}


def _strip_cookies(value: bytes) -> bytes | None:
    own = _own_cookies()
    kept = []
    for part in value.decode("latin-1").split(";"):
        name = part.split("=", 1)[0].strip()
        if part.strip() and name not in own:
            kept.append(part.strip())
    return "; ".join(kept).encode("latin-1") if kept else None


def _is_vibebox_key(value: bytes) -> bool:
    text = value.decode("latin-1").strip()
    credential = text.split(None, 1)[1].strip() if text.lower().startswith("bearer ") else text
    return credential.startswith(KEY_PREFIXES)


def request_headers(scope, target, *, websocket: bool) -> list[tuple[bytes, bytes]]:
    """What the sandbox gets: the client's headers without hop-by-hop ones and VibeBox's own
    credentials, plus the X-Forwarded-* headers."""
    out = []
    host = b""
    for key, value in scope.get("headers") or ():
        if key == b"host":
            host = value
        if key in HOP_BY_HOP or key in FORWARDING or (websocket and key in WS_HANDSHAKE):
            continue
        if key == b"cookie":
            value = _strip_cookies(value)
            if value is None:
                continue
        elif key in (b"authorization", b"x-api-key") and _is_vibebox_key(value):
            continue
        out.append((key, value))
    client = scope.get("client")
    scheme = scope.get("scheme") or "http"
    scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    if client:
        out.append((b"x-forwarded-for", str(client[0]).encode()))
    out.append((b"x-forwarded-proto", scheme.encode()))
    if host:
        out.append((b"x-forwarded-host", host))
        _, sep, port = host.decode("latin-1").rpartition(":")
        if sep and port.isdigit():
            out.append((b"x-forwarded-port", port.encode()))
        else:
            out.append((b"x-forwarded-port", b"443" if scheme == "https" else b"80"))
    if target.form == "path":
        out.append((b"x-forwarded-prefix", target.prefix.encode("latin-1")))
    return out


def _set_cookie(value: bytes, target) -> bytes | None:
    """A Set-Cookie from the sandbox: its Domain dropped (cookies stay on the preview's own host);
    in the path form, kept under the preview's path; VibeBox's own names refused."""
    text = value.decode("latin-1")
    first, *attributes = text.split(";")
    name = first.split("=", 1)[0].strip()
    if name in _own_cookies() or (target.form == "path" and name.startswith("__Host-")):
        return None
    kept = [first.strip()]
    for attribute in attributes:
        key = attribute.split("=", 1)[0].strip().lower()
        if key == "domain" or (target.form == "path" and key == "path"):
            continue
        kept.append(attribute.strip())
    if target.form == "path":
        kept.append(f"Path={target.prefix}/")
    return "; ".join(kept).encode("latin-1")


def response_headers(raw: list[tuple[bytes, bytes]], target) -> list[tuple[bytes, bytes]] | None:
    """The sandbox's response headers as the client gets them; None when they are past the caps."""
    if len(raw) > MAX_HEADERS or sum(len(k) + len(v) for k, v in raw) > MAX_HEADER_BYTES:
        return None
    out = []
    for key, value in raw:
        key = key.lower()
        if key in HOP_BY_HOP or key in (b"alt-svc", b"date"):  # (the server sends its own Date)
            continue
        if target.form == "path" and key in PATH_FORM_DROPPED:
            continue
        if key == b"content-length" and not value.strip().isdigit():
            continue
        if key == b"set-cookie":
            value = _set_cookie(value, target)
            if value is None:
                continue
        elif key == b"location" and target.form == "path" and value.startswith(b"/") and not value.startswith(b"//"):
            value = target.prefix.encode("latin-1") + value  # a redirect within the app stays in the preview
        out.append((key, value))
    if target.form == "path":
        out.append((b"content-security-policy", pages.SANDBOX_CSP))
    return out


class Activity:
    """A long-lived relay (a WebSocket, an event stream) counts as activity while traffic flows,
    recorded at most every idle.PRECISION (admission recorded its start)."""

    def __init__(self, sandbox_id: str):
        self.sandbox_id = sandbox_id
        self.recorded = time.monotonic()

    def seen(self) -> None:
        now = time.monotonic()
        if now - self.recorded > idle.PRECISION.total_seconds():
            self.recorded = now
            task = asyncio.ensure_future(sync_to_async(idle.touch_id, thread_sensitive=False)(self.sandbox_id))
            task.add_done_callback(_quiet)


def _quiet(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("recording preview activity failed: %s", task.exception())


# ---- HTTP ----

_clients: dict[int, httpx.AsyncClient] = {}


def _client() -> httpx.AsyncClient:
    """One pooled client per event loop (a uvicorn worker has one)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(id(loop))
    if client is None or client.is_closed:
        timeout = httpx.Timeout(connect=settings.VIBEBOX_PREVIEW_CONNECT_TIMEOUT, read=None, write=None, pool=None)
        client = _clients[id(loop)] = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,  # never through an operator's HTTP(S)_PROXY: straight to the sandbox
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=200, keepalive_expiry=30),
        )
    return client


# ---- through a node's relay ----


class _RelayStream(httpcore.AsyncNetworkStream):
    """A relay tunnel (asyncio streams over TLS) as httpcore's connections read and write it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await asyncio.wait_for(self._reader.read(max_bytes), timeout)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            await asyncio.wait_for(self._writer.drain(), timeout)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()  # the TLS shutdown ends in the background: a pool never waits on it

    def get_extra_info(self, info: str):
        if info == "is_readable":  # an idle pooled connection the other side ended is not reused
            return self._reader.at_eof() or self._reader.exception() is not None
        return None


class _RelayBackend(httpcore.AsyncNetworkBackend):
    """httpcore's dialler for one node: every connection a CONNECT through the node's relay to
    the sandbox's address and port. The relay's 502 (nothing accepts there) is a connect error,
    as a refused connection is locally; another refusal is a proxy error."""

    def __init__(self, relay: tuple[str, int], context):
        self.relay, self.context = relay, context

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            reader, writer = await relay_client.open_tunnel(
                self.relay, (host, port), context=self.context, timeout=timeout or 30.0
            )
        except relay_client.RelayRefused as exc:
            if exc.status == 502:
                raise httpcore.ConnectError(exc.message) from None
            logger.warning("the relay %s:%s refused a preview's tunnel to %s:%s: %s", *self.relay, host, port, exc)
            raise httpcore.ProxyError(f"the relay refused the tunnel ({exc.status})") from None
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return _RelayStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# httpcore's errors as the httpx ones relay_http handles (the most specific first: a subclass
# before its base).
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors():
    """httpcore's exceptions raised as httpx's; anything else (the request body's _ClientGone, a
    cancellation) passes unchanged."""
    try:
        yield
    except Exception as exc:
        for theirs, ours in _HTTPX_ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


class _RelayBody(httpx.AsyncByteStream):
    """An httpcore response's body as httpx streams it; closing it (httpx does, once read or
    abandoned) gives the connection back to the pool and ends the request's time in flight."""

    def __init__(self, response: httpcore.Response, done):
        self._response, self._done = response, done

    async def __aiter__(self):
        with _as_httpx_errors():
            async for chunk in self._response.aiter_stream():
                yield chunk

    async def aclose(self) -> None:
        done, self._done = self._done, None
        if done is None:
            return
        try:
            with _as_httpx_errors():
                await self._response.aclose()
        finally:
            done()


class _RelayTransport(httpx.AsyncBaseTransport):
    """httpx's requests over an httpcore connection pool of ours whose connections are relay
    tunnels (httpx takes no network backend; httpcore's pool does): public API of both only. A
    request is in flight from when it is sent until its response's body is closed (or it failed);
    `busy` says whether any is, so the owner knows when closing the pool would cut one."""

    def __init__(self, relay: tuple[str, int], context):
        self.pool = httpcore.AsyncConnectionPool(
            max_connections=None,
            max_keepalive_connections=200,
            keepalive_expiry=30,
            network_backend=_RelayBackend(relay, context),
        )
        self.in_flight = 0

    def busy(self) -> bool:
        """Whether a request is in flight (being sent, its connection being made, or its response
        not yet closed) through this transport."""
        return self.in_flight > 0

    def _done(self) -> None:
        self.in_flight -= 1

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        sent = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,  # streamed as it comes (an async iterable of bytes)
            extensions=request.extensions,  # the client's timeouts, which httpcore applies
        )
        self.in_flight += 1
        try:
            with _as_httpx_errors():
                response = await self.pool.handle_async_request(sent)
        except BaseException:
            self._done()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_RelayBody(response, self._done),
            extensions=response.extensions,  # http_version, reason_phrase
        )

    async def aclose(self) -> None:
        """Closes every connection of the pool (a response still streaming is cut)."""
        await self.pool.aclose()


RELAY_CLIENT_UNUSED = 10 * 60.0  # a node's client not asked for this long (and idle) is closed: a removed node's


@dataclasses.dataclass
class _Held:
    relay: tuple[str, int]
    context: object
    client: httpx.AsyncClient
    transport: _RelayTransport
    used: float


_relay_clients: dict[tuple, _Held] = {}  # (event loop, node) -> its client
_closing: set[asyncio.Task] = set()
RETIRE_AFTER = 2.0  # a client handed out this recently may be about to send (in_flight not raised yet)


def _retire(held: _Held) -> None:
    """Closes a client no longer handed out once nothing is in flight through it and it was not
    just handed out: a rotation reloads the relay, whose open tunnels go on (docs/nodes.md)."""

    async def close_when_idle() -> None:
        while held.transport.busy() or time.monotonic() - held.used < RETIRE_AFTER:
            await asyncio.sleep(0.5)
        await held.client.aclose()

    task = asyncio.get_running_loop().create_task(close_when_idle())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _relay_client(relayed) -> httpx.AsyncClient:
    """One pooled client per event loop and node (`relayed`: a sandboxd_client.Relayed; a node's
    containers may share bridge addresses with another's: pools never mix). A node whose relay or
    credentials changed (another address or TLS context) gets a new one, the one it replaces is
    closed (its relay was replaced too); a node's client not asked for in RELAY_CLIENT_UNUSED and
    idle is closed and forgotten (a removed node's does not stay). A replaced client finishes what
    is in flight through it (a download, server-sent events) and is closed once idle (_retire)."""
    loop = asyncio.get_running_loop()
    now = time.monotonic()
    for key, held in list(_relay_clients.items()):
        if key[0] == id(loop) and now - held.used > RELAY_CLIENT_UNUSED and not held.transport.busy():
            del _relay_clients[key]
            _retire(held)
    key = (id(loop), relayed.node)
    held = _relay_clients.get(key)
    if held is None or held.context is not relayed.context or held.relay != relayed.relay or held.client.is_closed:
        if held is not None and not held.client.is_closed:
            _retire(held)
        timeout = httpx.Timeout(connect=settings.VIBEBOX_PREVIEW_CONNECT_TIMEOUT, read=None, write=None, pool=None)
        transport = _RelayTransport(relayed.relay, relayed.context)
        client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False, transport=transport)
        held = _relay_clients[key] = _Held(relayed.relay, relayed.context, client, transport, now)
    held.used = now
    return held.client


class _ClientGone(Exception):
    pass


async def relay_http(scope, receive, send, *, target, admitted) -> None:
    head = scope.get("method") == "HEAD"
    headers = request_headers(scope, target, websocket=False)
    has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope.get("headers") or ())
    if any(k == b"transfer-encoding" for k, _ in scope.get("headers") or ()):
        headers = [(k, v) for k, v in headers if k != b"content-length"]
    body_done = asyncio.Event()

    async def body():
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone
                chunk = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body"):
                    return
        finally:
            body_done.set()

    if not has_body:
        body_done.set()
    url = httpx.URL(scheme="http", host=admitted.address, port=admitted.port, raw_path=target.path.encode("latin-1"))
    client = _client() if admitted.relay is None else _relay_client(admitted.relay)
    request = client.build_request(scope["method"], url, headers=headers, content=body() if has_body else None)
    if not has_body:
        request.headers.pop("content-length", None)

    async def relay():
        try:
            response = await asyncio.wait_for(
                client.send(request, stream=True), timeout=settings.VIBEBOX_PREVIEW_HEADERS_TIMEOUT
            )
        except _ClientGone:
            return
        except httpx.ConnectTimeout:
            return await pages.send_page(
                send, 504, "preview_connect_timeout", "The sandbox's server did not accept the connection in time.",
                head=head,
            )  # fmt: skip
        except TimeoutError:
            return await pages.send_page(
                send, 504, "preview_timeout", "The sandbox's server did not answer in time.", head=head
            )
        except httpx.ConnectError:
            return await pages.send_page(
                send, 502, "port_not_listening",
                f"Nothing accepts connections on port {admitted.port} in the sandbox.", head=head,
            )  # fmt: skip
        except httpx.ProxyError:  # a node's relay refused the tunnel (logged with its reason)
            return await pages.send_page(
                send, 502, "preview_unreachable", "The sandbox's port cannot be reached now.", head=head
            )
        except httpx.HTTPError as exc:
            return await pages.send_page(
                send, 502, "preview_bad_response", f"The sandbox's server answered badly: {str(exc)[:200]}", head=head
            )
        try:
            out = response_headers(response.headers.raw, target)
            if out is None:
                return await pages.send_page(
                    send, 502, "preview_bad_response", "The sandbox's server sent too many headers.", head=head
                )
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            activity = Activity(admitted.sandbox_id)
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    activity.seen()
            except httpx.HTTPError as exc:
                # Cut short: end the client's connection too, so it knows the body is incomplete.
                logger.info(
                    "preview %s:%s: the sandbox's response broke off: %s", admitted.sandbox_id, admitted.port, exc
                )
                raise _ClientGone from None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def watch():
        """The client leaving ends the relay (an SSE stream would otherwise run on)."""
        await body_done.wait()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    relaying = asyncio.ensure_future(relay())
    watching = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({relaying, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relaying, watching):
            if not task.done():
                task.cancel()
        for task in (relaying, watching):
            with contextlib.suppress(asyncio.CancelledError, _ClientGone):
                await task
    if relaying in done and relaying.exception() is None:
        return
    if relaying in done and isinstance(relaying.exception(), _ClientGone):
        raise RuntimeError("preview relay cut short")  # uvicorn closes the client's connection


# ---- WebSockets ----


def _close_code(code: int | None) -> int:
    if code is None or code in (1005, 1006, 1015) or not (1000 <= code <= 4999):
        return 1011 if code == 1006 else 1000
    return code


async def relay_websocket(scope, receive, send, *, target, admitted) -> None:
    host = f"[{admitted.address}]" if ":" in admitted.address else admitted.address
    uri = f"ws://{host}:{admitted.port}{target.path}"
    subprotocols = list(scope.get("subprotocols") or ()) or None
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request_headers(scope, target, websocket=True)]
    through: dict = {"proxy": None}
    if admitted.relay is not None:  # a node's sandbox: its relay is an HTTPS proxy with mutual TLS
        relay_host, relay_port = admitted.relay.relay
        relay_host = f"[{relay_host}]" if ":" in relay_host else relay_host
        through = {"proxy": f"https://{relay_host}:{relay_port}", "proxy_ssl": admitted.relay.context}
    try:
        upstream = await ws_connect(
            uri,
            additional_headers=headers,
            subprotocols=subprotocols,
            open_timeout=settings.VIBEBOX_PREVIEW_CONNECT_TIMEOUT,
            max_size=WS_MAX_SIZE,
            compression=None,
            user_agent_header=None,
            **through,
        )
    except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
        logger.info("preview %s:%s: websocket not opened: %s", admitted.sandbox_id, admitted.port, exc)
        return await send({"type": "websocket.close", "code": 4502, "reason": "upstream refused"})
    accept = {"type": "websocket.accept", "subprotocol": upstream.subprotocol}
    await send(accept)
    activity = Activity(admitted.sandbox_id)

    async def client_to_upstream():
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(_close_code(message.get("code")))
                return
            if message["type"] != "websocket.receive":
                continue
            activity.seen()
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    async def upstream_to_client():
        try:
            async for frame in upstream:
                activity.seen()
                if isinstance(frame, bytes):
                    await send({"type": "websocket.send", "bytes": frame})
                else:
                    await send({"type": "websocket.send", "text": frame})
        except websockets.exceptions.ConnectionClosed:
            pass
        code = _close_code(upstream.close_code)
        reason = (upstream.close_reason or "")[:120]
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": reason})

    tasks = [asyncio.ensure_future(client_to_upstream()), asyncio.ensure_future(upstream_to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await upstream.close()
