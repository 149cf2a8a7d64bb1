"""The model gateway: an Anthropic-compatible endpoint for sandboxes.

A sandbox's Claude Code sends its requests here with the sandbox's gateway token as its API
key. The gateway checks the token, swaps in the real key (the caller's own, given at enable
time, or the operator's VIBEBOX_ANTHROPIC_API_KEY), forwards to VIBEBOX_ANTHROPIC_UPSTREAM,
streams the answer back as it comes, and records tokens and cost per request. The real key
never reaches the sandbox. A raw ASGI app: it is small and streams without buffering.
"""

import json
import logging
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.sandboxes import quotas as sandbox_quotas
from apps.sandboxes.models import Status
from vibebox import crypto, metrics, safejson
from vibebox import exceptions as errors

from .. import mcp
from .. import setup as claude_setup
from .. import usage as claude_usage
from ..models import ClaudeAsk, ClaudeSession

logger = logging.getLogger(__name__)

# The one list of what reaches Anthropic: (method, path) pairs, matched exactly on the raw request
# path. Whatever the sandbox sends, the upstream URL is built from these constants (and a model id
# of a strict charset), never from the request's path, so `..`, encoded dots or slashes and the like
# cannot make the operator's key reach any other endpoint (HTTP clients collapse dot segments).
ROUTES = {
    "/v1/messages": "POST",
    "/v1/messages/count_tokens": "POST",
    "/v1/models": "GET",
}
MODEL_PATH = re.compile(r"/v1/models/([A-Za-z0-9][A-Za-z0-9._-]{0,99})")
# What a path may look like at all: plain segments, no percent-encoding, backslash, `;`, `//`.
PATH_SYNTAX = re.compile(r"(/[A-Za-z0-9._-]+)+")
MAX_PATH = 256
# The query parameters Anthropic's API takes on those routes (Claude Code sends `?beta=true`),
# each with the values it accepts. Anything else is refused, never passed through.
ID_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
LIMIT_VALUE = re.compile(r"[1-9][0-9]{0,3}")
BETA = {"beta": re.compile(r"true|false")}
QUERY = {
    "/v1/messages": BETA,
    "/v1/messages/count_tokens": BETA,
    "/v1/models": {**BETA, "limit": LIMIT_VALUE, "after_id": ID_VALUE, "before_id": ID_VALUE},
    "/v1/models/{id}": BETA,
}
MAX_BODY = 32 * 1024 * 1024
MCP_PATHS = (b"/mcp", b"/mcp/")  # exactly: the MCP app itself serves whatever path it is given
# Not forwarded upstream: credentials (replaced), hop-by-hop headers, VibeBox's own.
DROP_REQUEST = {
    b"host",
    b"content-length",
    b"x-api-key",
    b"authorization",
    b"proxy-authorization",
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"expect",
    b"accept-encoding",
    b"x-vibebox-ask",
    b"transfer-encoding",
}
DROP_RESPONSE = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}
# VibeBox's own stable codes for what the gateway itself refuses or cannot do, carried as
# `error.code` beside Anthropic's `error.type` (Anthropic clients ignore the extra field).
# 401: missing, unknown, or of a destroyed sandbox
INVALID_TOKEN = "invalid_gateway_token"  # noqa: S105  (a code, not a secret)
NOT_RUNNING = "sandbox_not_running"  # 401: the sandbox is stopped, paused, in error...
NO_UPSTREAM_KEY = "upstream_key_missing"  # 503: no operator key and no key of the caller's own
UPSTREAM_UNREACHABLE = "upstream_unreachable"  # 502: the model API could not be reached


class Refused(Exception):
    """A request the gateway does not forward: answered with this status and Anthropic-style error."""

    def __init__(self, status: int, kind: str, message: str, headers: list | None = None, code: str = ""):
        super().__init__(message)
        self.status, self.kind, self.message, self.headers = status, kind, message, headers or []
        self.code = code


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the upstream path, from the constants above
    query: str  # the validated query string, rebuilt ("" when none)
    metered: bool  # a Messages call: tokens are read from the answer
    model: str = ""  # the model a /v1/models/{id} call names


def route(method: str, raw_path: bytes, raw_query: bytes) -> Route:
    """The allow-listed route of a request, from its RAW path and query (before any decoding);
    raises Refused for anything else."""
    try:
        path = raw_path.decode("ascii")
        query = raw_query.decode("ascii")
    except UnicodeDecodeError:
        raise Refused(400, "invalid_request_error", "The request path is not plain ASCII.") from None
    segments = path.split("/")
    if len(path) > MAX_PATH or not PATH_SYNTAX.fullmatch(path) or any(segment in (".", "..") for segment in segments):
        raise Refused(
            400,
            "invalid_request_error",
            "The request path is not accepted by the gateway (no dot segments, encodings, `//`, `\\` or `;`).",
        )
    model = ""
    if path in ROUTES:
        key = next(known for known in ROUTES if known == path)  # the constant, not the request string
        allowed, path = ROUTES[key], key
    elif match := MODEL_PATH.fullmatch(path):
        allowed, key, model = "GET", "/v1/models/{id}", match.group(1)
        path = "/v1/models/" + model
    else:
        raise Refused(404, "not_found_error", f"{path} is not served by the {settings.VIBEBOX_BRAND_NAME} gateway.")
    if method != allowed:
        raise Refused(
            405,
            "invalid_request_error",
            f"{method} {path} is not served here; use {allowed}.",
            [(b"allow", allowed.encode())],
        )
    return Route(allowed, path, _query(key, query), metered=key == "/v1/messages", model=model)


def _query(route_key: str, query: str) -> str:
    if not query:
        return ""
    accepted = QUERY[route_key]
    seen: dict[str, str] = {}
    for pair in query.split("&"):
        name, sep, value = pair.partition("=")
        pattern = accepted.get(name)
        if not sep or pattern is None or name in seen or not pattern.fullmatch(value):
            names = ", ".join(sorted(accepted))
            message = f"Query parameter {pair[:40]!r} is not accepted on {route_key} (accepted: {names})."
            raise Refused(400, "invalid_request_error", message)
        seen[name] = value
    return "&".join(f"{name}={value}" for name, value in seen.items())


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


def anthropic_error(kind: str, message: str, code: str = "") -> dict:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"type": "error", "error": error}


def bearer(headers: dict[bytes, bytes]) -> str:
    token = headers.get(b"x-api-key", b"").decode(errors="replace").strip()
    if not token:
        value = headers.get(b"authorization", b"").decode(errors="replace")
        if value.lower().startswith("bearer "):
            token = value[7:].strip()
    return token


AUTH_CACHE_SECONDS = 5.0  # a rotated token or a stopped sandbox is refused at most this late
_auth_cache: dict[str, tuple[float, object]] = {}
INVALID = Refused(401, "authentication_error", "The gateway token is missing or invalid.", code=INVALID_TOKEN)


async def authenticate(token: str):
    """(setup, None) for the token of a running sandbox, else (None, the Refused to answer).
    Answers for valid tokens are kept a few seconds (an agent's turn makes several calls in a row)."""
    if not token:
        return None, INVALID
    now = time.monotonic()
    cached = _auth_cache.get(token)
    if cached is not None and cached[0] > now:
        return cached[1], None
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
    status = setup.sandbox.status if setup is not None else None
    if setup is None or status in (Status.DESTROYING, Status.DESTROYED):  # a token that is gone for good
        return None, INVALID
    # Only a running sandbox: a paused one runs nothing (its processes are frozen), so a call with
    # its token does not come from it; it works again once the sandbox is started or resumed.
    if status != Status.RUNNING:
        message = f"The sandbox of this token is {status}, not running; start or resume it first."
        return None, Refused(401, "authentication_error", message, code=NOT_RUNNING)
    return setup, None


@sync_to_async(thread_sensitive=False)
def _attribution(setup, ask_id: str, session_id: str):
    ask = ClaudeAsk.objects.filter(pk=ask_id, sandbox_id=setup.sandbox_id).first() if ask_id else None
    session = ask.session if ask else None
    if session is None and session_id:
        session = ClaudeSession.objects.filter(pk=session_id, sandbox_id=setup.sandbox_id).first()
    return ask, session


def upstream_key(setup) -> tuple[str, bool]:
    if setup.upstream_key:
        return crypto.decrypt(setup.upstream_key), True
    return settings.VIBEBOX_ANTHROPIC_API_KEY, False


async def read_body(receive) -> bytes | None:
    """The whole request body; None when the client went away. Refused past MAX_BODY."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, "request_too_large", "The request body is too large.")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def proxy(scope, receive, send, setup) -> None:
    try:
        target = route(scope["method"], _raw_path(scope), scope.get("query_string") or b"")
        key, own = upstream_key(setup)
        if not key:
            message = "The server has no Anthropic API key (VIBEBOX_ANTHROPIC_API_KEY), nor one given at enable."
            raise Refused(503, "api_error", message, code=NO_UPSTREAM_KEY)
        if target.metered and not own:
            await sync_to_async(_ask_quota, thread_sensitive=False)(setup)
        body = await read_body(receive)
    except Refused as refused:
        return await refuse(send, refused)
    if body is None:
        return
    headers = dict(scope["headers"])
    forward = [(k.decode(), v.decode(errors="replace")) for k, v in scope["headers"] if k not in DROP_REQUEST]
    forward += [("x-api-key", key), ("accept-encoding", "identity")]
    ask, session = await _attribution(
        setup,
        headers.get(b"x-vibebox-ask", b"").decode(errors="replace")[:32],
        headers.get(b"x-claude-code-session-id", b"").decode(errors="replace")[:64],
    )
    # From constants and validated parts only: never the request's own path.
    url = settings.VIBEBOX_ANTHROPIC_UPSTREAM + target.path + (f"?{target.query}" if target.query else "")
    content = body if body and target.method == "POST" else None
    request = client().build_request(target.method, url, headers=forward, content=content)
    try:
        response = await client().send(request, stream=True)
    except httpx.HTTPError as exc:
        # Nothing reached the model: nothing is metered (the upstream's own errors are, below).
        logger.warning("gateway: upstream unreachable: %s", type(exc).__name__)
        message = "The model API is not reachable."
        return await refuse(send, Refused(502, "api_error", message, code=UPSTREAM_UNREACHABLE))
    # Every answered call is recorded (a model listing too); tokens come from Messages answers.
    status, meter = response.status_code, None
    try:
        if target.metered:
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
                if meter is not None:
                    meter.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()
    finally:
        usage: dict = {}
        model = target.model
        if meter is not None:
            meter.finish()
            model, usage = meter.model, meter.usage
        if not model and content:
            model = _model_of(content)
        _count(status, usage)
        await sync_to_async(_record, thread_sensitive=False)(
            setup, ask, session, target.path, status, model, usage, own
        )


def _ask_quota(setup) -> None:
    """A model request on the operator's key is work of the sandbox's organization: its model spend
    and budget are asked first (billing's quotas, through sandboxes' work_requested), as a Claude ask
    is, so `claude -p` run by a command cannot spend past them. 402 billing_error when refused."""
    try:
        sandbox = setup.sandbox
        sandbox_quotas.request_work(org_id=sandbox.org_id, action="model", sandbox=sandbox, user=sandbox.owner)
    except errors.QuotaExceeded as exc:
        raise Refused(402, "billing_error", exc.message, code="quota_exceeded") from None
    finally:
        close_old_connections()


# vibebox_gateway_tokens_total's kinds, from the Messages API's usage fields.
TOKEN_KINDS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation_input_tokens": "cache_write",
}


def _count(status: int, usage: dict) -> None:
    metrics.GATEWAY_REQUESTS.labels(str(status)).inc()
    for field, kind in TOKEN_KINDS.items():
        if usage.get(field):
            metrics.GATEWAY_TOKENS.labels(kind).inc(int(usage[field]))


async def refuse(send, refused: Refused) -> None:
    _count(refused.status, {})
    body = anthropic_error(refused.kind, refused.message, refused.code)
    await respond_json(send, refused.status, body, refused.headers)


def _raw_path(scope) -> bytes:
    """The path as it came on the request line (before percent-decoding)."""
    raw = scope.get("raw_path")
    if raw is None:  # servers that do not give it: the decoded path (dot segments are still refused)
        raw = scope["path"].encode("utf-8", errors="replace")
    return raw


def _model_of(body: bytes) -> str:
    try:
        value = safejson.loads(body)
    except ValueError:
        return ""
    return str(value.get("model", ""))[:100] if isinstance(value, dict) else ""


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
    raw_path = _raw_path(scope)
    if raw_path == b"/healthz":
        return await respond_json(send, 200, {"status": "ok"})
    token = bearer(dict(scope["headers"]))
    setup, problem = await authenticate(token)
    if setup is None:
        return await refuse(send, problem)
    if raw_path in MCP_PATHS:
        return await mcp.serve_sandbox(scope, receive, send, setup, token, respond_json)
    return await proxy(scope, receive, send, setup)
