"""/mcp on the live server: authentication, scopes, owners, bad input, sessions, origins.

The rule throughout: what the REST API refuses, the tool refuses with the same error code, as a
tool result (`isError`), never as a protocol failure; the HTTP layer itself refuses only requests
without a valid key (401), from foreign browser origins (403) or for foreign hosts (400).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from conftest import INSTANCE
from mcp.shared.exceptions import MCPError
from test_mcp_tools import EVERY_TOOL, call, fail, http_client

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def post(server, body, **headers) -> httpx.Response:
    return httpx.post(f"{server.url}/mcp", json=body, headers={**ACCEPT, **headers}, timeout=30)


def test_anonymous_and_bad_keys_get_401(server):
    for headers, code in [
        ({}, "not_authenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "not_authenticated"),
        ({"Authorization": "Bearer vb_live_notarealkeyatall"}, "invalid_api_key"),
        ({"X-API-Key": "vb_live_notarealkeyatall"}, "invalid_api_key"),
    ]:
        response = post(server, INITIALIZE, **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == code
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert httpx.get(f"{server.url}/mcp", timeout=30).status_code == 401
    assert httpx.get(f"{server.url}/mcp?api_key={server.key}", timeout=30).status_code == 401  # never from the URL


def test_x_api_key_header_works_too(server):
    async def scenario():
        async with http_client(server.url, server.key, header="X-API-Key") as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == EVERY_TOOL

    asyncio.run(scenario())


def test_a_session_serves_only_the_key_that_opened_it(server, outsider_key):
    opened = post(server, INITIALIZE, Authorization=f"Bearer {server.key}")
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    stolen = post(server, initialized, Authorization=f"Bearer {outsider_key}", **headers)
    assert stolen.status_code == 404  # as if there were no such session
    assert post(server, initialized, Authorization=f"Bearer {server.key}", **headers).status_code == 202
    closed = httpx.delete(f"{server.url}/mcp", headers={"Authorization": f"Bearer {server.key}", **headers})
    assert closed.status_code == 200
    assert post(server, initialized, Authorization=f"Bearer {server.key}", **headers).status_code == 404


def test_foreign_browser_origins_and_hosts_are_refused(server):
    key = {"Authorization": f"Bearer {server.key}"}
    refused = post(server, INITIALIZE, Origin="https://evil.example", **key)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
    assert post(server, INITIALIZE, Host="evil.example", **key).status_code == 400
    assert post(server, INITIALIZE, Origin=server.url, **key).status_code == 200


def test_scopes_are_the_rest_apis(server, sandbox):
    """A key without a scope gets the REST API's insufficient_scope as a tool error; nothing happens."""
    read_only = server.create_key(INSTANCE, "sandboxes:read")
    execute_only = server.create_key(INSTANCE, "execute")
    sandbox.files.write("seen.txt", "visible")

    async def scenario():
        async with http_client(server.url, read_only) as client:
            assert (await call(client, "sandbox_info", sandbox_id=sandbox.id))["status"] == "running"
            assert (await call(client, "file_read", sandbox_id=sandbox.id, path="seen.txt"))["content"] == "visible"
            assert (await call(client, "sandbox_metrics", sandbox_id=sandbox.id))["memory"]["usage"] > 0
            for tool, arguments in [
                ("sandbox_exec", {"sandbox_id": sandbox.id, "command": "touch /workspace/made-by-exec"}),
                ("file_write", {"sandbox_id": sandbox.id, "path": "made-by-write", "content": "x"}),
                ("env_set", {"sandbox_id": sandbox.id, "variables": {"A": "1"}}),
                ("sandbox_create", {"template": "python-3"}),
                ("sandbox_destroy", {"sandbox_id": sandbox.id}),
            ]:
                error = await fail(client, tool, **arguments)
                assert (error["code"], error["status"]) == ("insufficient_scope", 403), tool
                assert "sandboxes:write" in error["details"]["missing"] or "execute" in error["details"]["missing"]
        async with http_client(server.url, execute_only) as client:
            ran = await call(client, "sandbox_exec", sandbox_id=sandbox.id, command="echo allowed")
            assert ran["stdout"] == "allowed\n"
            assert (await fail(client, "sandbox_info", sandbox_id=sandbox.id))["code"] == "insufficient_scope"

    asyncio.run(scenario())
    assert sandbox.refresh().status == "running"
    assert not sandbox.files.exists("made-by-exec") and not sandbox.files.exists("made-by-write")
    assert "A" not in sandbox.env.all()


def test_another_owners_sandbox_is_not_found(server, sandbox, outsider_key):
    async def scenario():
        async with http_client(server.url, outsider_key) as client:
            for tool, arguments in [
                ("sandbox_info", {}),
                ("sandbox_exec", {"command": "touch /workspace/outsider-was-here"}),
                ("sandbox_run_code", {"code": "1"}),
                ("file_write", {"path": "outsider.txt", "content": "x"}),
                ("file_read", {"path": "anything"}),
                ("file_list", {}),
                ("file_delete", {"path": "anything"}),
                ("watch_files", {"seconds": 1}),
                ("git_status", {}),
                ("env_get", {}),
                ("env_set", {"variables": {"STOLEN": "1"}}),
                ("sandbox_metrics", {}),
                ("sandbox_destroy", {}),
            ]:
                error = await fail(client, tool, sandbox_id=sandbox.id, **arguments)
                assert (error["code"], error["status"]) == ("sandbox_not_found", 404), tool
            assert (await call(client, "sandbox_list"))["total"] == 0

    asyncio.run(scenario())
    assert sandbox.refresh().status == "running"
    assert not sandbox.files.exists("outsider-was-here") and not sandbox.files.exists("outsider.txt")
    assert "STOLEN" not in sandbox.env.all()


def test_bad_input_is_a_tool_error(server, sandbox):
    async def scenario():
        async with http_client(server.url, server.key) as client:
            for tool, arguments, field in [
                ("sandbox_exec", {"sandbox_id": sandbox.id}, "command"),
                ("sandbox_exec", {"sandbox_id": sandbox.id, "command": "true", "shell": "bash"}, "shell"),
                ("sandbox_exec", {"sandbox_id": sandbox.id, "command": {"not": "a command"}}, "command"),
                ("file_read", {"sandbox_id": sandbox.id, "path": "x", "max_bytes": 0}, "max_bytes"),
                ("file_read", {"sandbox_id": sandbox.id, "path": "x", "encoding": "latin-1"}, "encoding"),
                ("file_write", {"sandbox_id": sandbox.id, "path": "x", "content": "", "mode": "rwx"}, "mode"),
                ("sandbox_list", {"limit": "lots"}, "limit"),
                ("env_set", {"sandbox_id": sandbox.id, "variables": {}}, "variables"),
            ]:
                error = await fail(client, tool, **arguments)
                assert error["code"] == "invalid_arguments", (tool, arguments)
                assert field in {problem["field"].split(".")[0] for problem in error["details"]["fields"]}
            box = sandbox.id

            async def code(tool: str, /, **arguments) -> str:
                return (await fail(client, tool, **arguments))["code"]

            assert await code("file_write", sandbox_id=box, path="x", content="%%%", encoding="base64") == (
                "invalid_base64"
            )
            # Refusals of the API itself keep its codes.
            unknown = await fail(client, "sandbox_create", template="no-such-template")
            assert unknown["code"] == "unknown_template" and "python-3" in unknown["details"]["available"]
            assert await code("sandbox_exec", sandbox_id=box, command="true", timeout="soon") == "invalid_duration"
            assert await code("git_clone", sandbox_id=box, url="file:///etc") == "invalid_git_url"
            assert await code("env_set", sandbox_id=box, variables={"1BAD": "x"}) == "invalid_env"
            assert await code("file_read", sandbox_id=box, path="/workspace") == "is_a_directory"
            await call(client, "file_write", sandbox_id=box, path="latin1.txt", content="6Q==", encoding="base64")
            assert await code("file_read", sandbox_id=box, path="latin1.txt", encoding="utf-8") == "not_utf8"
            # An unknown tool is the one protocol error (the spec's -32602).
            with pytest.raises(MCPError):
                await client.call_tool("sandbox_teleport", {})
            # The session still works after all that.
            assert (await call(client, "sandbox_info", sandbox_id=sandbox.id))["id"] == sandbox.id

    asyncio.run(scenario())
    assert sandbox.env.all() == {}


def test_what_a_tool_changes_is_audited_as_the_mcp_door(server, sandbox):
    """A tool's REST call carries the server's own token: the audit log names the MCP door, the key
    and the command (docs/audit.md)."""
    key = server.create_key(INSTANCE, "execute")

    async def scenario():
        async with http_client(server.url, key) as client:
            await call(client, "sandbox_exec", sandbox_id=sandbox.id, command="echo audited-by-mcp")

    asyncio.run(scenario())
    reader = {"Authorization": f"Bearer {server.create_key(INSTANCE, 'audit:read')}"}
    slug = httpx.get(f"{server.url}/api/v1/orgs", headers=reader, timeout=30).json()[0]["slug"]
    entries = httpx.get(
        f"{server.url}/api/v1/orgs/{slug}/audit-log",
        params={"action": "command.executed", "target": sandbox.id},
        headers=reader,
        timeout=30,
    ).json()["results"]
    mine = [entry for entry in entries if entry["changes"]["command"] == "echo audited-by-mcp"]
    assert len(mine) == 1 and mine[0]["source"] == "mcp" and mine[0]["keyId"].startswith("key_")
