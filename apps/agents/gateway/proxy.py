"""The model gateway: an Anthropic-compatible endpoint for sandboxes.

A sandbox's Claude Code sends its requests here with the sandbox's gateway token as its API
key. The gateway checks the token, swaps in the real key (the caller's own, given at enable
time, or the operator's VIBEBOX_ANTHROPIC_API_KEY), forwards to VIBEBOX_ANTHROPIC_UPSTREAM,
streams the answer back as it comes, and records tokens and cost per request. The real key
never reaches the sandbox. A raw ASGI app: it is small and streams without buffering.
"""

import json
import logging
import ssl
import time
from pathlib import Path

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.sandboxes import envvars
from apps.sandboxes.models import Status

from .. import setup as claude_setup
from .. import usage as claude_usage
from ..models import ClaudeAsk, ClaudeSession
from . import mcp as gateway_mcp

logger = logging.getLogger(__name__)

ROUTES = ("/v1/messages", "/v1/models")
MAX_BODY = 32 * 1024 * 1024
# Not forwarded upstream: credentials (replaced), hop-by-hop headers, VibeBox's own.
DROP_REQUEST = {
    b"host",
    b"content-length",
    b"x-api-key",
    b"authorization",
    b"connection",
    b"accept-encoding",
    b"x-vibebox-ask",
    b"transfer-encoding",
}
DROP_RESPONSE = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}

_client: httpx.AsyncClient | None = None


def client() -> httpx.AsyncClient:
    global _client
    if _client is None:
        verify: ssl.SSLContext | bool = True
        if Path(settings.VIBEBOX_SYSTEM_CA_BUNDLE).exists():  # trusts a corporate proxy's CA too
            verify = ssl.create_default_context(cafile=settings.VIBEBOX_SYSTEM_CA_BUNDLE)
        _client = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=15), verify=verify)
    return _client


async def respond_json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": payload})


def anthropic_error(kind: str, message: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}}


def bearer(headers: dict[bytes, bytes]) -> str:
    token = headers.get(b"x-api-key", b"").decode(errors="replace").strip()
    if not token:
        value = headers.get(b"authorization", b"").decode(errors="replace")
        if value.lower().startswith("bearer "):
            token = value[7:].strip()
    return token


AUTH_CACHE_SECONDS = 5.0  # a rotated token or a stopped sandbox is refused at most this late
_auth_cache: dict[str, tuple[float, object]] = {}


async def authenticate(token: str):
    """(setup, problem): the sandbox's Claude setup for a live sandbox, else why not. Answers for
    valid tokens are kept a few seconds (an agent's turn makes several calls in a row)."""
    if not token:
        return None, "The gateway token is missing or invalid."
    now = time.monotonic()
    cached = _auth_cache.get(token)
    if cached is not None and cached[0] > now:
        return cached[1], ""
    setup, problem = await _authenticate(token)
    if setup is not None:
        if len(_auth_cache) > 10_000:
            _auth_cache.clear()
        _auth_cache[token] = (now + AUTH_CACHE_SECONDS, setup)
    return setup, problem


@sync_to_async(thread_sensitive=False)
def _authenticate(token: str):
    close_old_connections()
    setup = claude_setup.setup_by_token(token)
    if setup is None:
        return None, "The gateway token is missing or invalid."
    if setup.sandbox.status not in (Status.RUNNING, Status.PAUSED):
        return None, "The sandbox of this token is not running."
    return setup, ""


@sync_to_async(thread_sensitive=False)
def _attribution(setup, ask_id: str, session_id: str):
    ask = ClaudeAsk.objects.filter(pk=ask_id, sandbox_id=setup.sandbox_id).first() if ask_id else None
    session = ask.session if ask else None
    if session is None and session_id:
        session = ClaudeSession.objects.filter(pk=session_id, sandbox_id=setup.sandbox_id).first()
    return ask, session


def upstream_key(setup) -> tuple[str, bool]:
    if setup.upstream_key:
        return envvars.decrypt(setup.upstream_key), True
    return settings.VIBEBOX_ANTHROPIC_API_KEY, False


async def read_body(receive) -> bytes | None:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return body


async def proxy(scope, receive, send, setup) -> None:
    path = scope["path"]
    if not any(path == route or path.startswith(route + "/") for route in ROUTES):
        return await respond_json(send, 404, anthropic_error("not_found_error", f"{path} is not served here."))
    key, own = upstream_key(setup)
    if not key:
        return await respond_json(
            send, 503, anthropic_error("api_error", "VibeBox has no Anthropic API key (VIBEBOX_ANTHROPIC_API_KEY).")
        )
    body = await read_body(receive)
    if body is None:
        return await respond_json(send, 413, anthropic_error("request_too_large", "The request body is too large."))
    headers = dict(scope["headers"])
    forward = [(k.decode(), v.decode(errors="replace")) for k, v in scope["headers"] if k not in DROP_REQUEST]
    forward += [("x-api-key", key), ("accept-encoding", "identity")]
    ask, session = await _attribution(
        setup,
        headers.get(b"x-vibebox-ask", b"").decode(errors="replace")[:32],
        headers.get(b"x-claude-code-session-id", b"").decode(errors="replace")[:64],
    )
    url = (
        settings.VIBEBOX_ANTHROPIC_UPSTREAM
        + path
        + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
    )
    request = client().build_request(scope["method"], url, headers=forward, content=body if body else None)
    try:
        response = await client().send(request, stream=True)
    except httpx.HTTPError as exc:
        logger.warning("gateway: upstream unreachable: %s", type(exc).__name__)
        return await respond_json(send, 502, anthropic_error("api_error", "The model API is not reachable."))
    metered = scope["method"] == "POST" and path == "/v1/messages"
    meter = claude_usage.UsageMeter(streamed="text/event-stream" in response.headers.get("content-type", ""))
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (k.encode(), v.encode()) for k, v in response.headers.items() if k.lower() not in DROP_RESPONSE
                ],
            }
        )
        async for chunk in response.aiter_raw():
            if metered:
                meter.feed(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await response.aclose()
        if metered:
            meter.finish()
            model = meter.model or _model_of(body)
            await sync_to_async(_record, thread_sensitive=False)(
                setup, ask, session, path, response.status_code, model, meter.usage, own
            )


def _model_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("model", ""))
    except (ValueError, AttributeError):
        return ""


def _record(setup, ask, session, path, status, model, usage, own) -> None:
    try:
        claude_usage.record(
            setup=setup, ask=ask, session=session, path=path, status=status, model=model, usage=usage, own_key=own
        )
        claude_setup.touch(setup)
    except Exception:  # usage is for billing later; the answer has been given
        logger.exception("gateway: usage not recorded")
    finally:
        close_old_connections()


async def application(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/healthz":
        return await respond_json(send, 200, {"status": "ok"})
    token = bearer(dict(scope["headers"]))
    setup, problem = await authenticate(token)
    if setup is None:
        return await respond_json(send, 401, anthropic_error("authentication_error", problem))
    if scope["path"] == "/mcp" or scope["path"].startswith("/mcp/"):
        return await gateway_mcp.serve(scope, receive, send, setup, token, respond_json)
    return await proxy(scope, receive, send, setup)
