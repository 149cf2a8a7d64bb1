"""The MCP server around `tools.TOOLS`: `build_server`, `http_app` (Streamable HTTP) and `run_stdio`.

See the package docstring (`vibebox_sdk.mcp`) for how to use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import DEFAULT_SESSION_IDLE_TIMEOUT, StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError
from starlette.requests import Request

from .. import errors
from ..aio import AsyncVibeBox
from ..version import VERSION
from .tools import BY_NAME, IMAGES, SANDBOX_ID, TOOLS, ToolDef, ToolFailure, input_schema, output_schema

logger = logging.getLogger(__name__)

ClientFactory = Callable[[Request | None], AsyncVibeBox | Awaitable[AsyncVibeBox]]
"""Gives the client a tool call uses: called with the HTTP request the call came in (None over stdio)."""

INSTRUCTIONS = (
    "VibeBox runs isolated Linux sandboxes. Create one with sandbox_create (or list yours with sandbox_list), "
    "then work in it with the sandbox_id it returns: sandbox_exec runs commands, sandbox_run_code runs "
    "one-shot snippets, run_code runs code in a stateful context (variables persist between calls; charts "
    "come back as images), file_* move files, watch_files reports changes, git_* work on repositories, "
    "env_* hold environment variables. Files live under /workspace (relative paths start there). "
    "Destroy sandboxes you no longer need with sandbox_destroy. "
    "Errors come back as tool results with a stable code, e.g. sandbox_not_found or insufficient_scope."
)
SCOPED_INSTRUCTIONS = (
    "These tools work in one VibeBox sandbox (a Linux container; your files live under /workspace, relative "
    "paths start there): sandbox_exec runs commands, sandbox_run_code runs one-shot snippets, run_code runs "
    "code in a stateful context (variables persist; charts come back as images), file_* move files, git_* "
    "work on repositories, env_* hold environment variables, sandbox_info and sandbox_metrics describe it. "
    "Errors come back as tool results with a stable code."
)


def _annotations(tool: ToolDef) -> types.ToolAnnotations:
    return types.ToolAnnotations(
        title=tool.title,
        read_only_hint=tool.read_only,
        destructive_hint=tool.destructive if not tool.read_only else False,
        idempotent_hint=tool.idempotent or tool.read_only,
        open_world_hint=tool.open_world,
    )


def _failure(code: str, message: str, details: Any = None, **extra: Any) -> types.CallToolResult:
    """A tool error: `isError` with the error as JSON text (no structured content, which would have
    to match the tool's output schema)."""
    body = {"code": code, "message": message, "details": details or {}, **{k: v for k, v in extra.items() if v}}
    return types.CallToolResult(
        content=[types.TextContent(text=json.dumps({"error": body}, ensure_ascii=False))], is_error=True
    )


def _invalid(error: ValidationError) -> types.CallToolResult:
    problems = [
        {"field": ".".join(str(part) for part in item["loc"]) or "(arguments)", "problem": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return _failure("invalid_arguments", f"Invalid arguments: {summary}", {"fields": problems})


def build_server(client_factory: ClientFactory, *, sandbox_id: str | None = None, name: str = "vibebox") -> Server:
    """An MCP server (the SDK's low-level `Server`) offering VibeBox's tools.

    `client_factory(request)` gives the `AsyncVibeBox` each tool call uses (`request`: the Starlette
    request of a Streamable HTTP call, None over stdio); it may be async. The server never closes
    those clients: the factory owns them.

    With `sandbox_id` (an id or a name), the server works on that one sandbox: sandbox_create,
    sandbox_list and sandbox_destroy are not offered, and the other tools have no `sandbox_id`
    argument (one a client sends anyway is ignored).
    """
    offered = [tool for tool in TOOLS if sandbox_id is None or tool.per_sandbox]
    drop = (SANDBOX_ID,) if sandbox_id is not None else ()
    listing = [
        types.Tool(
            name=tool.name,
            title=tool.title,
            description=tool.description,
            input_schema=input_schema(tool.input, drop=drop),
            output_schema=output_schema(tool.output),
            annotations=_annotations(tool),
        )
        for tool in offered
    ]
    names = {tool.name for tool in offered}

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name not in names:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        tool = BY_NAME[params.name]
        arguments = dict(params.arguments or {})
        if sandbox_id is not None and SANDBOX_ID in tool.input.model_fields:
            arguments[SANDBOX_ID] = sandbox_id
        try:
            args = tool.input.model_validate(arguments)
        except ValidationError as error:
            return _invalid(error)
        try:
            client = client_factory(getattr(ctx, "request", None))
            if inspect.isawaitable(client):
                client = await client
            answer = await tool.handler(client, args)
            images = answer.pop(IMAGES, None) or []
            structured = tool.output.model_validate(answer).model_dump(mode="json")
        except errors.VibeBoxError as error:
            return _failure(error.code, error.message, error.details, status=error.status, requestId=error.request_id)
        except ToolFailure as failure:
            return _failure(failure.code, failure.message, failure.details)
        except Exception:
            logger.exception("MCP tool %s failed", tool.name)
            return _failure("internal_error", f"{tool.name} failed unexpectedly; see the server's log.")
        text = json.dumps(structured, ensure_ascii=False)
        content: list[Any] = [types.TextContent(text=text)]
        content += [types.ImageContent(data=image["data"], mime_type=image["mimeType"]) for image in images]
        return types.CallToolResult(content=content, structured_content=structured)

    return Server(
        name,
        version=VERSION,
        title="VibeBox" if sandbox_id is None else f"VibeBox sandbox {sandbox_id}",
        instructions=INSTRUCTIONS if sandbox_id is None else SCOPED_INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


class StreamableHTTPApp:
    """An ASGI app serving an MCP server over Streamable HTTP, at whatever path it is mounted.

    The session manager starts with the first request (in a task of its own), so the app works
    under servers that send no ASGI lifespan events (uvicorn `--lifespan off`); with lifespan
    events, it starts at startup and stops at shutdown. `aclose()` stops it too. asyncio only.

    It does no authentication: put that in front (set `scope["user"]` to an
    `mcp.server.auth.middleware.bearer_auth.AuthenticatedUser` to bind each session to the
    credential that opened it: another credential then gets 404 for that session).
    """

    def __init__(
        self,
        server: Server,
        *,
        stateless: bool = False,
        json_response: bool = False,
        session_idle_timeout: float | None = DEFAULT_SESSION_IDLE_TIMEOUT,
        max_request_body_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.server = server
        self.session_manager = StreamableHTTPSessionManager(
            app=server,
            stateless=stateless,
            json_response=json_response,
            session_idle_timeout=session_idle_timeout,
            max_request_body_size=max_request_body_size,
        )
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Future | None = None

    async def start(self) -> None:
        """Starts the session manager (once); returns when it accepts requests."""
        if self._ready is None:
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            # A fresh context: the sessions' tasks must not inherit the first request's context variables.
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        await asyncio.shield(self._ready)

    async def _run(self) -> None:
        assert self._ready is not None
        try:
            async with self.session_manager.run():
                self._ready.set_result(None)
                await asyncio.Event().wait()  # until aclose() cancels it
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(RuntimeError(f"the MCP session manager failed to start: {error!r}"))
            raise

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.start()
        await self.session_manager.handle_request(scope, receive, send)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def http_app(client_factory: ClientFactory, *, sandbox_id: str | None = None, **options: Any) -> StreamableHTTPApp:
    """`StreamableHTTPApp(build_server(client_factory, sandbox_id=sandbox_id), **options)`."""
    return StreamableHTTPApp(build_server(client_factory, sandbox_id=sandbox_id), **options)


async def run_stdio(client: AsyncVibeBox, *, sandbox_id: str | None = None) -> None:
    """Serves the tools over this process's stdin and stdout with `client`, until stdin closes."""
    server = build_server(lambda request: client, sandbox_id=sandbox_id)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
