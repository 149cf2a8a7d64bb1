"""Package installs through the SDK (sync and async), the CLI and the MCP tool, against the live
server and the real registries (PyPI and npm through the machine's proxy)."""

from __future__ import annotations

import asyncio
import json

import pytest
import test_mcp_tools as mcp_helpers
from conftest import cli
from vibebox_sdk import (
    AsyncVibeBox,
    CommandExitError,
    InvalidPackageSpecError,
    Package,
    UnsupportedPackageManagerError,
    VibeBox,
)


def test_sync_install_list_and_refusals(sandbox):
    chunks: list[str] = []
    result = sandbox.packages.install(["six==1.16.0"], manager="pip", on_output=chunks.append)
    assert result.exit_code == 0 and result.execution_id
    assert "Successfully installed six-1.16.0" in "".join(chunks)
    assert sandbox.exec("python -c 'import six; print(six.__version__)'").stdout == "1.16.0\n"
    assert Package(name="six", version="1.16.0") in [
        Package(p.name, p.version) for p in sandbox.packages.list(manager="pip")
    ]
    assert sandbox.execution(result.execution_id).command == "pip install six==1.16.0"

    with pytest.raises(InvalidPackageSpecError) as refused:
        sandbox.packages.install(["--index-url=https://evil.example/simple"], manager="pip")
    assert refused.value.status == 400 and refused.value.details["index"] == 0
    with pytest.raises(UnsupportedPackageManagerError) as unsupported:
        sandbox.packages.install("left-pad", manager="npm")
    assert unsupported.value.supported == ["pip", "uv"]
    with pytest.raises(CommandExitError) as failed:  # no such version on PyPI
        sandbox.packages.install("six==0.0.0.0.1", manager="pip")
    assert failed.value.exit_code != 0 and "six==0.0.0.0.1" in failed.value.result.output
    process = sandbox.packages.install("six==1.16.0", manager="pip", wait=False)
    assert process.wait().exit_code == 0


def test_async_install_with_the_org_mirror(server, vb: VibeBox):
    org = vb.orgs.list()[0]

    async def scenario():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as avb, avb.with_sandbox("node-20") as box:
            result = await box.packages.install(["is-odd@3.0.1"], manager="npm")
            listed = await box.packages.list(manager="npm")
            required = await box.exec("node -e \"console.log(require('is-odd')(3))\"")
            return result, listed, required

    # the public registry's own address as the mirror: installs go through it
    updated = vb.orgs.update(org, registry_mirrors={"npm": "https://registry.npmjs.org/"})
    try:
        assert updated.registry_mirrors == {"npm": "https://registry.npmjs.org/"}
        result, listed, required = asyncio.run(scenario())
    finally:
        assert vb.orgs.update(org, registry_mirrors={"npm": None}).registry_mirrors == {}
    assert result.exit_code == 0, result.output
    assert [(p.name, p.version) for p in listed] == [("is-odd", "3.0.1")]
    assert required.stdout == "true\n"


def test_cli_install_and_packages(cli_env, sandbox):
    done = cli(cli_env, "install", sandbox.id, "six==1.16.0", "--pip")
    assert done.returncode == 0, done.stderr
    assert "six" in done.stdout + done.stderr
    listed = cli(cli_env, "packages", sandbox.id, "--pip", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"name": "six", "version": "1.16.0"} in [
        {"name": p["name"], "version": p["version"]} for p in json.loads(listed.stdout)
    ]
    table = cli(cli_env, "packages", sandbox.id, "--pip")
    assert any(line.split()[:2] == ["six", "1.16.0"] for line in table.stdout.splitlines())
    failed = cli(cli_env, "install", sandbox.id, "six==0.0.0.0.1", "--pip")
    assert failed.returncode not in (0, 2)  # the install's own exit code
    refused = cli(cli_env, "install", sandbox.id, "six", "--npm")
    assert refused.returncode == 1 and "unsupported_package_manager" in refused.stderr
    assert cli(cli_env, "install", sandbox.id, "six").returncode == 2  # no manager named
    assert cli(cli_env, "install", sandbox.id, "six", "--pip", "--npm").returncode == 2


def test_mcp_packages_install(server, sandbox):
    async def scenario():
        async with mcp_helpers.stdio_client(server.url, server.key) as client:
            installed = await mcp_helpers.call(
                client, "packages_install", sandbox_id=sandbox.id, manager="pip", packages=["six==1.16.0"]
            )
            listed = await mcp_helpers.call(client, "packages_list", sandbox_id=sandbox.id, manager="pip")
            error = await mcp_helpers.fail(
                client, "packages_install", sandbox_id=sandbox.id, manager="pip", packages=["-rrequirements.txt"]
            )
            return installed, listed, error

    installed, listed, error = asyncio.run(scenario())
    assert installed["exit_code"] == 0 and installed["manager"] == "pip" and installed["packages"] == ["six==1.16.0"]
    assert {"name": "six", "version": "1.16.0"} in listed["packages"]
    assert error["code"] == "invalid_package_spec"
