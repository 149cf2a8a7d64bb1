"""The MCP tool `run_code` over Streamable HTTP and stdio: a persistent interpreter (a code
context) per sandbox and language, rich results, images as MCP image content, errors as results."""

from __future__ import annotations

import asyncio
import base64
import json

from test_mcp_tools import call, fail, http_client, stdio_client
from test_sdk_contexts import RICH
from vibebox_sdk import Sandbox


async def exercise_run_code(client, sandbox: Sandbox) -> None:
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    schema = listed["run_code"].input_schema
    assert set(schema["properties"]["language"]["enum"]) == {"python", "javascript"}

    first = await call(client, "run_code", sandbox_id=sandbox.id, code="x = 41\nprint('set')")
    context = first["context"]
    assert context.startswith("ctx_") and first["stdout"] == "set\n" and first["error"] is None
    # The same context by default: the state is kept between calls.
    again = await call(client, "run_code", sandbox_id=sandbox.name, code="x + 1")
    assert again["context"] == context
    assert [(r["text"], r["is_main_result"]) for r in again["results"]] == [("42", True)]
    assert (await call(client, "run_code", sandbox_id=sandbox.id, code="x", context=context))["results"][0][
        "text"
    ] == "41"

    # An image: in the structured result by its type, and as an image content block.
    result = await client.call_tool("run_code", {"sandbox_id": sandbox.id, "code": RICH + "\nPicture()"})
    assert not result.is_error
    assert json.loads(result.content[0].text) == result.structured_content
    assert result.structured_content["results"][0]["image"] == "image/png"
    images = [block for block in result.content if block.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG")
    table = await call(client, "run_code", sandbox_id=sandbox.id, code="Table()")
    assert table["results"][0]["html"].startswith("<table>") and table["results"][0]["image"] is None

    # An exception in the code is a result with the error, not a tool failure.
    failed = await call(client, "run_code", sandbox_id=sandbox.id, code="1 / 0")
    assert failed["error"]["name"] == "ZeroDivisionError" and "ZeroDivisionError" in failed["error"]["traceback"]

    missing = await fail(client, "run_code", sandbox_id=sandbox.id, code="1", context="ctx_nosuchcontext")
    assert missing["code"].endswith("not_found")
    assert (await fail(client, "run_code", sandbox_id="no-such-sandbox-x", code="1"))["code"] == "sandbox_not_found"


def test_run_code_over_streamable_http(server, sandbox):
    async def scenario():
        async with http_client(server.url, server.key) as client:
            await exercise_run_code(client, sandbox)

    asyncio.run(scenario())


def test_run_code_over_stdio(server, sandbox):
    async def scenario():
        async with stdio_client(server.url, server.key) as client:
            first = await call(client, "run_code", sandbox_id=sandbox.id, code="import sys\nsys.version_info[0]")
            assert first["results"][0]["text"] == "3"
            result = await client.call_tool("run_code", {"sandbox_id": sandbox.id, "code": RICH + "\nDrawing()"})
            assert result.structured_content["results"][0]["svg"].startswith("<svg")

    asyncio.run(scenario())
