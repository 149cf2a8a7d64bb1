"""`vibebox mcp`: VibeBox's MCP server over stdio, for Claude Desktop, `claude mcp add` and other MCP clients."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import CliError


def mcp(
    sandbox: Annotated[
        str | None,
        typer.Option(
            "--sandbox",
            "-s",
            help="Work on this sandbox (name or id) only: no create, list or destroy tools, no sandbox_id arguments.",
        ),
    ] = None,
) -> None:
    """Serve the server's sandbox tools to an MCP client over stdin/stdout (JSON-RPC; nothing else is printed there).

    Uses the configured server and key (`VIBEBOX_API_URL` / `VIBEBOX_API_KEY`, or `vibebox init`):
    `claude mcp add vibebox -- vibebox mcp`. See docs/mcp.md.
    """
    try:
        import anyio

        from ..mcp import run_stdio
    except ModuleNotFoundError as error:
        raise CliError(f"{error}; install it with: pip install 'vibebox-sdk[mcp]'") from None
    from ..aio import AsyncVibeBox

    client = AsyncVibeBox()  # AuthenticationError (exit 4) when no key is configured

    async def serve() -> None:
        try:
            await run_stdio(client, sandbox_id=sandbox)
        finally:
            await client.close()

    anyio.run(serve)


def register(app: typer.Typer) -> None:
    app.command("mcp", rich_help_panel="Integrations")(mcp)
