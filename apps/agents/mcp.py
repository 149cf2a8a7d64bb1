"""VibeBox's MCP servers (Streamable HTTP, the tools of vibebox_sdk.mcp), two doors to one SDK app:

- `endpoint`, at the server's `/mcp` (vibebox/asgi.py): every request needs an API key
  (`Authorization: Bearer <key>` or `X-API-Key`), else 401 in the API's error envelope. A session
  serves only the key that opened it (another key gets 404 for it). The tools call the REST API
  with the caller's key over loopback, so scopes, owners, quotas and rate limits are the REST
  API's own: a key without a scope gets a tool error with code `insufficient_scope`. The loopback
  URL is the address the request came in on (the ASGI scope's `server`), sent with the request's
  own Host header, or `VIBEBOX_MCP_API_URL` when that setting is set (say, for a server on a Unix
  socket).
- `serve_sandbox`, at the gateway's `/mcp`, for Claude inside a sandbox (enabled by
  `claude/enable` with `mcp: true`). The caller is the sandbox (its gateway token); the tools,
  fixed on that one sandbox (no create, list or destroy), call the REST API with the VibeBox key
  made for the purpose, which never enters the sandbox.

The MCP session managers start with the first request (the servers run with `--lifespan off`).
The SDK and the `mcp` package are imported on first use: most processes never serve MCP.
"""

import asyncio
import json
from collections import OrderedDict
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from apps.audit.context import VIA_HEADER, via_token
from apps.keys.selectors import api_key_authenticate
from vibebox import crypto, logs
from vibebox.asgiheaders import header

PATH = "/mcp"
MAX_KEPT = 256  # API clients (one per key and address) and sandbox apps, most recent kept


class _Kept:
    """Up to MAX_KEPT values by key, least recently used dropped (and closed, off the request's path)."""

    def __init__(self, close):
        self._values: OrderedDict = OrderedDict()
        self._close = close  # async close(value)

    def get(self, key):
        value = self._values.get(key)
        if value is not None:
            self._values.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        old = self._values.pop(key, None)
        if old is not None:
            self._close_later(old)
        self._values[key] = value
        while len(self._values) > MAX_KEPT:
            _, dropped = self._values.popitem(last=False)
            self._close_later(dropped)

    def _close_later(self, value) -> None:
        task = asyncio.get_running_loop().create_task(self._close(value))
        task.add_done_callback(lambda done: done.exception() if not done.cancelled() else None)


def _authenticated(token: str, client_id, scopes: list[str]) -> dict:
    """The ASGI scope entries the SDK app's bearer auth expects."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from starlette.authentication import AuthCredentials

    user = AuthenticatedUser(AccessToken(token=token, client_id=client_id, scopes=scopes))
    return {"user": user, "auth": AuthCredentials(scopes)}


def is_mcp_path(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


def key_from_scope(scope) -> str:
    """The key from `Authorization: Bearer` or `X-API-Key` (never from the query string)."""
    authorization = header(scope, b"authorization")
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        return secret.strip() if scheme.lower() == "bearer" else ""
    return header(scope, b"x-api-key").strip()


@database_sync_to_async
def _authenticate(secret: str):
    return api_key_authenticate(secret=secret)


async def _refuse(send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = json.dumps(
        {
            "error": {"code": code, "message": message, "details": {}},
            "requestId": logs.current_request_id() or logs.new_request_id(),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _allowed_host(scope) -> bool:
    host = header(scope, b"host")
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _allowed_origin(scope) -> bool:
    """Browsers send Origin: it must be one of our hosts. MCP clients that are not browsers send none."""
    origin = header(scope, b"origin")
    if not origin or settings.DEBUG:
        return True
    host = urlsplit(origin).hostname or ""
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


async def _close_client(client) -> None:
    await client.close()


class McpEndpoint:
    """The ASGI app for /mcp: checks the key, then hands over to the SDK's Streamable HTTP app."""

    def __init__(self):
        self._app = None
        self._clients = _Kept(_close_client)

    @property
    def app(self):
        if self._app is None:
            from vibebox_sdk.mcp import http_app

            self._app = http_app(self._client_for)
        return self._app

    async def __call__(self, scope, receive, send):
        if not _allowed_host(scope):
            await _refuse(send, 400, "bad_request", "The Host header is not one of this server's hosts.")
            return
        if not _allowed_origin(scope):
            await _refuse(send, 403, "permission_denied", "Cross-origin requests are not allowed.")
            return
        secret = key_from_scope(scope)
        challenge = [(b"www-authenticate", b'Bearer realm="vibebox"')]
        if not secret:
            await _refuse(send, 401, "not_authenticated", "An API key is needed (Authorization: Bearer).", challenge)
            return
        key = await _authenticate(secret)
        if key is None:
            await _refuse(send, 401, "invalid_api_key", "The API key is invalid, expired or revoked.", challenge)
            return
        await self.app({**scope, **_authenticated(secret, key.pk, list(key.scopes))}, receive, send)

    def _client_for(self, request):
        """The API client of a tool call: the caller's key, to this server over loopback."""
        from vibebox_sdk import AsyncVibeBox

        secret = request.scope["user"].access_token.token
        url, host = _loopback(request.scope)
        cache_key = (secret, url, host)
        client = self._clients.get(cache_key)
        if client is None:
            headers = {VIA_HEADER: via_token("mcp"), **({"Host": host} if host else {})}
            client = AsyncVibeBox(api_key=secret, base_url=url, headers=headers)
            self._clients.put(cache_key, client)
        return client


def _loopback(scope) -> tuple[str, str]:
    """(base URL, Host header to send) for the tools' calls to this server's REST API: the
    address a request came in on (`scope`), else the configured host and port."""
    configured = getattr(settings, "VIBEBOX_MCP_API_URL", "")
    if configured:
        return configured.rstrip("/"), ""
    server = scope.get("server") if scope else None
    if not server or server[1] is None:
        host = settings.VIBEBOX_HOST if settings.VIBEBOX_HOST not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
        return f"http://{host}:{settings.VIBEBOX_PORT}", header(scope, b"host") if scope else ""
    address, port = server
    if ":" in address:
        address = f"[{address}]"
    return f"http://{address}:{port}", header(scope, b"host")


endpoint = McpEndpoint()


async def _close_sandbox_app(kept) -> None:
    """Stops an app's session manager and closes its API client."""
    _, app, client = kept
    await app.aclose()
    await client.close()


_sandbox_apps = _Kept(_close_sandbox_app)  # sandbox id -> (its MCP key, app, client)


def _sandbox_app(setup, secret: str):
    from vibebox_sdk import AsyncVibeBox
    from vibebox_sdk.mcp import http_app

    found = _sandbox_apps.get(setup.sandbox_id)
    if found is not None and found[0] == secret:
        return found[1]
    # New, or the key changed (enabled again): put() closes the old app.
    client = AsyncVibeBox(api_key=secret, base_url=_loopback(None)[0], headers={VIA_HEADER: via_token("mcp")})
    app = http_app(lambda request: client, sandbox_id=setup.sandbox_id)
    _sandbox_apps.put(setup.sandbox_id, (secret, app, client))
    return app


async def serve_sandbox(scope, receive, send, setup, token: str, respond_json) -> None:
    """The gateway's /mcp for the sandbox of `setup` (its gateway token already checked)."""
    if not setup.mcp or not setup.mcp_key:
        await respond_json(send, 404, {"error": "MCP is not enabled for this sandbox (claude/enable with mcp: true)."})
        return
    secret = crypto.decrypt(setup.mcp_key)
    # Sessions are bound to the token that opened them (a rotated token cannot reuse them).
    user = _authenticated(token, setup.sandbox_id, [])["user"]
    await _sandbox_app(setup, secret)({**scope, "user": user}, receive, send)
