"""VibeBox's MCP server: one set of tools, served over Streamable HTTP or stdio.

Needs the `mcp` extra (`pip install 'vibebox-sdk[mcp]'`). The tools (sandbox_create, sandbox_list,
sandbox_info, sandbox_destroy, sandbox_exec, sandbox_run_code (a one-shot snippet in a fresh
interpreter), run_code (a stateful code context: variables stay between calls, images come back as
image content), file_read, file_write, file_list, file_delete, watch_files, git_clone, git_status,
git_diff, git_commit, git_push, env_get, env_set, sandbox_metrics, and the others in tools.TOOLS)
call VibeBox's REST API through an `AsyncVibeBox`, so the server's scopes and owner checks apply
to every call; API errors come back as tool errors (`isError`, with the text
`{"error": {"code", "message", "details", ...}}`), never as protocol errors.

Served by VibeBox itself at `/mcp` (API key in `Authorization: Bearer` or `X-API-Key`), and by
`vibebox mcp` over stdio. To serve it yourself:

    from vibebox_sdk import AsyncVibeBox
    from vibebox_sdk.mcp import build_server, http_app, run_stdio

    # stdio, with one client:
    await run_stdio(AsyncVibeBox(api_key=..., base_url=...), sandbox_id=None)

    # Streamable HTTP: an ASGI app, mountable at any path; the factory picks the client per call.
    client = AsyncVibeBox(api_key=key, base_url="http://127.0.0.1:8000")
    app = http_app(lambda request: client, sandbox_id="sbx_...")   # one sandbox only

`build_server(client_factory, *, sandbox_id=None)` gives the MCP `Server` itself (the SDK's
low-level `mcp.server.lowlevel.Server`): run it on any transport (`server.run(read, write,
server.create_initialization_options())`), or wrap it in `StreamableHTTPApp(server, stateless=...,
json_response=..., session_idle_timeout=...)`. `client_factory(request)` is called for each tool call
with the Starlette `Request` it came in (None over stdio) and returns an `AsyncVibeBox` (or an
awaitable of one); the server never closes it.

With `sandbox_id` (an id or a name), the server is fixed on that sandbox: sandbox_create,
sandbox_list and sandbox_destroy are not offered, the other tools take no `sandbox_id` (a value a
client sends anyway is ignored), so the client's calls can reach that sandbox only (and only as
far as the API key behind `client_factory` allows).

`StreamableHTTPApp` starts its session manager on the first request (or at ASGI lifespan
startup); it authenticates nobody: put authentication in front, and set `scope["user"]` to an
`mcp.server.auth.middleware.bearer_auth.AuthenticatedUser` so a session only serves the
credential that opened it.
"""

try:
    from .server import ClientFactory, StreamableHTTPApp, build_server, http_app, run_stdio
except ModuleNotFoundError as error:  # pragma: no cover - depends on the installation
    if error.name and error.name.split(".")[0] in ("mcp", "mcp_types", "starlette"):
        raise ModuleNotFoundError(
            "VibeBox's MCP server needs the mcp package: pip install 'vibebox-sdk[mcp]'", name=error.name
        ) from error
    raise

from .tools import TOOLS, ToolDef

__all__ = ["TOOLS", "ClientFactory", "StreamableHTTPApp", "ToolDef", "build_server", "http_app", "run_stdio"]
