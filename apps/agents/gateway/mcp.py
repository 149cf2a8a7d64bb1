"""VibeBox's MCP server for Claude inside a sandbox, at the gateway's `/mcp`.

Enabled by `claude/enable` with `mcp: true`. The caller is the sandbox (its gateway token); the
tools (vibebox_sdk.mcp, fixed on that one sandbox: no create, list or destroy) call the REST API
on this machine with the VibeBox key made for the purpose, which never enters the sandbox.
"""

import asyncio
from collections import OrderedDict

from django.conf import settings

from vibebox import crypto

MAX_APPS = 256  # one Streamable HTTP app (with its sessions) per sandbox, most recent kept

_apps: OrderedDict = OrderedDict()


def api_url() -> str:
    configured = getattr(settings, "VIBEBOX_MCP_API_URL", "")
    if configured:
        return configured.rstrip("/")
    host = settings.VIBEBOX_HOST if settings.VIBEBOX_HOST not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    return f"http://{host}:{settings.VIBEBOX_PORT}"


def _app_for(setup, secret: str):
    from vibebox_sdk import AsyncVibeBox
    from vibebox_sdk.mcp import http_app

    found = _apps.get(setup.sandbox_id)
    if found is not None and found[0] == secret:
        _apps.move_to_end(setup.sandbox_id)
        return found[1]
    if found is not None:  # the key changed (enabled again): the old app goes
        _close_later(*found[1:])
    client = AsyncVibeBox(api_key=secret, base_url=api_url())
    app = http_app(lambda request: client, sandbox_id=setup.sandbox_id)
    _apps[setup.sandbox_id] = (secret, app, client)
    while len(_apps) > MAX_APPS:
        _, (_, old_app, old_client) = _apps.popitem(last=False)
        _close_later(old_app, old_client)
    return app


def _close_later(app, client) -> None:
    """Stops an app's session manager and closes its API client, off the request's path."""

    async def close():
        await app.aclose()
        await client.close()

    task = asyncio.get_running_loop().create_task(close())
    task.add_done_callback(lambda done: done.exception() if not done.cancelled() else None)


async def serve(scope, receive, send, setup, token: str, respond_json) -> None:
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    if not setup.mcp or not setup.mcp_key:
        await respond_json(send, 404, {"error": "MCP is not enabled for this sandbox (claude/enable with mcp: true)."})
        return
    secret = crypto.decrypt(setup.mcp_key)
    # Sessions are bound to the token that opened them (a rotated token cannot reuse them).
    user = AuthenticatedUser(AccessToken(token=token, client_id=setup.sandbox_id, scopes=[]))
    await _app_for(setup, secret)({**scope, "user": user}, receive, send)
