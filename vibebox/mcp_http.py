"""VibeBox's MCP server at `/mcp` (Streamable HTTP, stateful sessions), in front of Django.

Every request needs an API key (`Authorization: Bearer <key>` or `X-API-Key`), else 401 in the
API's error envelope. A session serves only the key that opened it (another key gets 404 for it).
The tools (`vibebox_sdk.mcp`) call the REST API with the caller's key over loopback, so scopes,
owners, quotas and rate limits are the REST API's own: a key without a scope gets a tool error
with code `insufficient_scope`.

The loopback URL is the address the request came in on (the ASGI scope's `server`), sent with the
request's own Host header, or `VIBEBOX_MCP_API_URL` when that setting is set (say, for a server
on a Unix socket). The MCP session manager starts with the first request (the server runs with
`--lifespan off`).
"""

import asyncio
import json
import secrets
from collections import OrderedDict
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from apps.keys.selectors import api_key_authenticate

PATH = "/mcp"
MAX_CLIENTS = 256  # API clients kept, one per (key, address)


def is_mcp_path(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def key_from_scope(scope) -> str:
    """The key from `Authorization: Bearer` or `X-API-Key` (never from the query string)."""
    header = _header(scope, b"authorization")
    if header:
        scheme, _, secret = header.partition(" ")
        return secret.strip() if scheme.lower() == "bearer" else ""
    return _header(scope, b"x-api-key").strip()


@database_sync_to_async
def _authenticate(secret: str):
    return api_key_authenticate(secret=secret)


async def _refuse(send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = json.dumps(
        {"error": {"code": code, "message": message, "details": {}}, "requestId": "req_" + secrets.token_hex(8)}
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
    host = _header(scope, b"host")
    domain, _ = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def _allowed_origin(scope) -> bool:
    """Browsers send Origin: it must be one of our hosts. MCP clients that are not browsers send none."""
    origin = _header(scope, b"origin")
    if not origin or settings.DEBUG:
        return True
    host = urlsplit(origin).hostname or ""
    return bool(host) and validate_host(host, settings.ALLOWED_HOSTS)


class McpEndpoint:
    """The ASGI app for /mcp: checks the key, then hands over to the SDK's Streamable HTTP app."""

    def __init__(self):
        self._app = None
        self._clients: OrderedDict = OrderedDict()

    @property
    def app(self):
        if self._app is None:
            from vibebox_sdk.mcp import http_app

            self._app = http_app(self._client_for)
        return self._app

    async def __call__(self, scope, receive, send):
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken
        from starlette.authentication import AuthCredentials

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
        token = AccessToken(token=secret, client_id=key.pk, scopes=list(key.scopes))
        scope = {**scope, "user": AuthenticatedUser(token), "auth": AuthCredentials(list(key.scopes))}
        await self.app(scope, receive, send)

    def _client_for(self, request):
        """The API client of a tool call: the caller's key, to this server over loopback."""
        from vibebox_sdk import AsyncVibeBox

        secret = request.scope["user"].access_token.token
        url, host = self._api_url(request.scope)
        cache_key = (secret, url, host)
        client = self._clients.get(cache_key)
        if client is not None:
            self._clients.move_to_end(cache_key)
            return client
        client = AsyncVibeBox(api_key=secret, base_url=url, headers={"Host": host} if host else None)
        self._clients[cache_key] = client
        while len(self._clients) > MAX_CLIENTS:
            _, old = self._clients.popitem(last=False)
            self._close_later(old)
        return client

    @staticmethod
    def _close_later(client) -> None:
        task = asyncio.get_running_loop().create_task(client.close())
        task.add_done_callback(lambda done: done.exception() if not done.cancelled() else None)

    @staticmethod
    def _api_url(scope) -> tuple[str, str]:
        """(base URL, Host header to send) for the loopback calls."""
        configured = getattr(settings, "VIBEBOX_MCP_API_URL", "")
        if configured:
            return configured.rstrip("/"), ""
        server = scope.get("server")
        if not server or server[1] is None:
            return f"http://127.0.0.1:{settings.VIBEBOX_PORT}", _header(scope, b"host")
        address, port = server
        if ":" in address:
            address = f"[{address}]"
        return f"http://{address}:{port}", _header(scope, b"host")


endpoint = McpEndpoint()
