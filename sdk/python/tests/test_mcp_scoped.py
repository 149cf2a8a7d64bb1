"""A server fixed on one sandbox (`build_server(..., sandbox_id=...)`), over its three ways in:
stdio (`vibebox mcp --sandbox`), in process, and `http_app` served by uvicorn without lifespan
events (as a gateway would). And `vibebox mcp` without a key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading

import httpx2
import pytest
import uvicorn
from common import free_port
from conftest import VIBEBOX
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from test_mcp_tools import EVERY_TOOL, call, stdio_client
from vibebox_sdk import AsyncVibeBox
from vibebox_sdk.mcp import build_server, http_app

from tests.waiting import wait_for

SCOPED_TOOLS = EVERY_TOOL - {"sandbox_create", "sandbox_list", "sandbox_destroy"}


async def check_fixed_on(client, sandbox, other) -> None:
    """The tools act on `sandbox` only, whatever sandbox_id a client sends."""
    tools = (await client.list_tools()).tools
    assert {tool.name for tool in tools} == SCOPED_TOOLS
    assert all("sandbox_id" not in tool.input_schema["properties"] for tool in tools)
    assert all("sandbox_id" not in tool.input_schema.get("required", []) for tool in tools)
    assert (await call(client, "sandbox_info"))["id"] == sandbox.id
    await call(client, "file_write", path="scoped.txt", content="mine")
    forced = await call(client, "sandbox_exec", sandbox_id=other.id, command="cat scoped.txt; hostname")
    assert forced["stdout"].startswith("mine")  # ran in `sandbox`, not in `other`
    assert not other.files.exists("scoped.txt")
    for tool in ("sandbox_destroy", "sandbox_create", "sandbox_list"):
        with pytest.raises(MCPError):
            await client.call_tool(tool, {"sandbox_id": sandbox.id, "template": "python-3"})
    assert sandbox.refresh().status == "running" and other.refresh().status == "running"


def test_stdio_fixed_on_one_sandbox(server, sandbox, node_sandbox):
    async def scenario():
        async with stdio_client(server.url, server.key, "--sandbox", sandbox.name) as client:
            await check_fixed_on(client, sandbox, node_sandbox)

    asyncio.run(scenario())


def test_build_server_in_process(server, sandbox, node_sandbox):
    """What a gateway does: its own client factory, the server fixed on the sandbox."""

    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            requests = []

            async def factory(request):  # may be async; None: not over HTTP
                requests.append(request)
                return vb

            async with Client(build_server(factory, sandbox_id=sandbox.id), mode="legacy") as client:
                await check_fixed_on(client, sandbox, node_sandbox)
            assert requests and set(requests) == {None}

    asyncio.run(scenario())


@contextlib.contextmanager
def serve(app, port: int):
    """uvicorn on loopback in a thread, with --lifespan off like VibeBox's own server."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    wait_for(lambda: runner.started or not thread.is_alive(), timeout=60, interval=0.05, what="uvicorn to start")
    assert runner.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        runner.should_exit = True
        thread.join(timeout=10)


def test_http_app_fixed_on_one_sandbox(server, sandbox, node_sandbox):
    seen, clients = [], []

    def factory(request):
        seen.append(request.headers.get("x-gateway-token"))
        if not clients:  # made in the server's event loop, then kept
            clients.append(AsyncVibeBox(api_key=server.key, base_url=server.url))
        return clients[0]

    app = http_app(factory, sandbox_id=sandbox.id)
    with serve(app, free_port()) as url:

        async def scenario():
            http = httpx2.AsyncClient(headers={"X-Gateway-Token": "t0k"}, timeout=httpx2.Timeout(30, read=300))
            async with http, Client(streamable_http_client(f"{url}/anything", http_client=http)) as client:
                await check_fixed_on(client, sandbox, node_sandbox)

        asyncio.run(scenario())
    assert seen and set(seen) == {"t0k"}  # the factory sees the HTTP request of each call


def test_vibebox_mcp_without_a_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("VIBEBOX_API_KEY", "VIBEBOX_CONFIG")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    done = subprocess.run([VIBEBOX, "mcp"], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.PIPE)
    assert done.returncode == 4
    assert done.stdout == ""  # stdout is the protocol's alone
    assert "no API key" in done.stderr
