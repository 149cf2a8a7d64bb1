"""The `vibebox` command, setup and account side: help, exit codes, init, config, templates, status,
usage and keys. Every test runs the real console script against the live test server."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path

import pexpect
import pytest
from conftest import VIBEBOX, cli


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def bare_env(cli_env: dict[str, str]) -> dict[str, str]:
    """cli_env without the server's URL and key in the environment: only the config file counts."""
    return {k: v for k, v in cli_env.items() if k not in ("VIBEBOX_API_URL", "VIBEBOX_API_KEY")}


def config_file(env: dict[str, str]) -> Path:
    return Path(env["XDG_CONFIG_HOME"]) / "vibebox" / "config.toml"


def test_help_version_and_usage_errors(cli_env):
    result = cli(cli_env, "--help")
    assert result.returncode == 0
    for command in ("new", "ls", "push", "pull", "sync", "exec", "shell", "git", "keys", "exec-once", "cleanup"):
        assert command in result.stdout
    assert cli(cli_env).returncode in (0, 2)  # no command: the help
    version = cli(cli_env, "--version")
    assert version.returncode == 0 and version.stdout.startswith("vibebox ")
    bad = cli(cli_env, "ls", "--bogus")
    assert bad.returncode == 2
    assert "--bogus" in bad.stderr and bad.stdout == ""
    assert cli(cli_env, "no-such-command").returncode == 2
    assert cli(cli_env, "exec").returncode == 2  # missing arguments


def test_exit_codes_not_found_and_auth(cli_env, server):
    missing = cli(cli_env, "info", "no-such-sandbox-anywhere")
    assert missing.returncode == 3
    assert missing.stderr.startswith("error: ") and "(sandbox_not_found)" in missing.stderr
    assert missing.stdout == ""
    bad_key = cli({**cli_env, "VIBEBOX_API_KEY": "vb_live_" + "x" * 39}, "ls")
    assert bad_key.returncode == 4
    assert "(invalid_api_key)" in bad_key.stderr
    no_key = {k: v for k, v in cli_env.items() if k != "VIBEBOX_API_KEY"}
    assert cli(no_key, "ls").returncode == 4
    read_only = server.create_key("cli-read-only", "sandboxes:read")
    denied = cli({**cli_env, "VIBEBOX_API_KEY": read_only}, "new", "python-3", "--no-shell")
    assert denied.returncode == 4
    assert "(insufficient_scope)" in denied.stderr
    unreachable = cli({**cli_env, "VIBEBOX_API_URL": "http://127.0.0.1:9"}, "ls", timeout=120)
    assert unreachable.returncode == 1
    assert "error:" in unreachable.stderr


def test_init_with_flags_writes_a_private_config(bare_env, server):
    result = cli(bare_env, "init", "--url", server.url, "--key", server.key, "--template", "python-3")
    assert result.returncode == 0, result.stderr
    path = config_file(bare_env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert f'api_url = "{server.url}"' in text and f'api_key = "{server.key}"' in text
    assert 'template = "python-3"' in text
    listed = cli(bare_env, "ls", "--json")  # the config file alone is enough now
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)


def test_init_refuses_a_bad_key_and_a_bad_url(bare_env, server):
    result = cli(bare_env, "init", "--url", server.url, "--key", "vb_live_" + "y" * 39)
    assert result.returncode == 4
    assert not config_file(bare_env).exists()
    assert cli(bare_env, "init", "--url", "ftp://nowhere", "--key", server.key).returncode == 2
    no_verify = cli(bare_env, "init", "--url", server.url, "--key", "vb_live_unchecked", "--no-verify")
    assert no_verify.returncode == 0
    assert "vb_live_unchecked" in config_file(bare_env).read_text()


def test_init_prompts_from_a_pipe(bare_env, server):
    result = cli(bare_env, "init", input=f"{server.url}\n{server.key}\n")
    assert result.returncode == 0, result.stderr
    assert server.key in config_file(bare_env).read_text()
    assert server.key not in result.stdout + result.stderr


def test_init_interactive(bare_env, server):
    child = pexpect.spawn(VIBEBOX, ["init"], env=bare_env, timeout=60, encoding="utf-8")
    try:
        child.expect("server URL")
        child.sendline(server.url)
        child.expect("API key")
        child.sendline(server.key)
        child.expect("template")
        child.sendline("node-20")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert server.key not in (child.before or "")  # the key is not echoed
    path = config_file(bare_env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert 'template = "node-20"' in path.read_text()
    assert cli(bare_env, "config", "get", "api_url").stdout.strip() == server.url


def test_config_set_get_list_unset(cli_env, tmp_path):
    assert cli(cli_env, "config", "set", "template", "node-20").returncode == 0
    assert cli(cli_env, "config", "set", "timeout", "2h").returncode == 0
    assert cli(cli_env, "config", "get", "template").stdout == "node-20\n"
    got = json.loads(cli(cli_env, "config", "get", "timeout", "--json").stdout)
    assert got == {"name": "timeout", "value": "2h", "source": "file"}
    listed = json.loads(cli(cli_env, "config", "list", "--json").stdout)
    settings = {row["name"]: row for row in listed["settings"]}
    assert settings["api_key"]["source"] == "env VIBEBOX_API_KEY"
    assert settings["api_key"]["value"].endswith("****")
    assert cli_env["VIBEBOX_API_KEY"] not in cli(cli_env, "config", "list").stdout  # masked for people too
    assert settings["template"] == {"name": "template", "value": "node-20", "source": "file"}
    assert listed["path"] == str(config_file(cli_env))
    assert stat.S_IMODE(config_file(cli_env).stat().st_mode) == 0o600
    assert cli(cli_env, "config", "set", "colour", "blue").returncode == 2
    assert cli(cli_env, "config", "set", "timeout", "soon").returncode == 2
    assert cli(cli_env, "config", "unset", "template").returncode == 0
    assert cli(cli_env, "config", "get", "template").returncode == 1
    # $VIBEBOX_CONFIG wins over $XDG_CONFIG_HOME
    other = {**cli_env, "VIBEBOX_CONFIG": str(tmp_path / "elsewhere.toml")}
    assert cli(other, "config", "set", "template", "python-3").returncode == 0
    assert cli(other, "config", "path").stdout.strip() == str(tmp_path / "elsewhere.toml")
    assert 'template = "python-3"' in (tmp_path / "elsewhere.toml").read_text()


def test_templates(cli_env):
    result = cli(cli_env, "templates", "--json")
    assert result.returncode == 0
    names = {t["name"] for t in json.loads(result.stdout)}
    assert {"node-20", "python-3.13"} <= names
    table = cli(cli_env, "templates")
    assert table.stdout.startswith("NAME") and "node-20" in table.stdout
    assert "\x1b[" not in table.stdout  # no colour off a terminal
    header, *rows = table.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "LANGUAGES", "STATE", "SIZE", "DESCRIPTION"]
    node = next(row.split() for row in rows if row.startswith("node-20 "))
    built = next(t for t in json.loads(result.stdout) if t["name"] == "node-20")
    assert built["buildState"] == "ready" and "ready" in node
    size = node[node.index("ready") + 1 : node.index("ready") + 3]
    if built["imageSize"] is None:  # a server that seeded its templates without building them
        assert size[0] == "-"
    else:
        assert size[1] in ("MB", "GB") and float(size[0]) > 0, size  # e.g. "312 MB"
    states = {t["buildState"] for t in json.loads(result.stdout)}
    assert states <= {"ready", "queued", "building", "failed"}
    info = json.loads(cli(cli_env, "template", "info", "node-20", "--json").stdout)
    assert info["name"] == "node-20" and "javascript" in info["languages"]
    human = cli(cli_env, "template", "info", "python-3").stdout
    assert "workdir" in human
    lines = {line.split(None, 1)[0]: line for line in human.splitlines() if line.strip()}
    assert "pip" in next(line for line in human.splitlines() if line.startswith("package managers"))
    assert lines["smoke"].split(None, 1)[1].strip()  # the smoke command
    assert "ready" in lines["state"]
    assert cli(cli_env, "template", "info", "cobol-85").returncode == 3


def test_status(cli_env, vb):
    sandbox = vb.sandbox("python-3", name=unique("cli-status"))
    try:
        result = cli(cli_env, "status", "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["health"]["status"] == "ok"
        assert data["server"] == cli_env["VIBEBOX_API_URL"]
        assert data["sandboxes"].get("running", 0) >= 1
        assert data["total"] == sum(data["sandboxes"].values())
        human = cli(cli_env, "status")
        assert "ok" in human.stdout and "running" in human.stdout
    finally:
        sandbox.destroy()


def test_keys_create_list_revoke_and_usage(cli_env):
    options = ["--scopes", "sandboxes:read", "--expires-in", "30d", "--json"]
    created = cli(cli_env, "keys", "create", "cli test key", *options)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("vb_live_") and key["scopes"] == ["sandboxes:read"] and key["expiresAt"]
    new_env = {**cli_env, "VIBEBOX_API_KEY": key["key"]}
    assert cli(new_env, "ls").returncode == 0
    listed = json.loads(cli(cli_env, "keys", "list", "--json").stdout)
    assert key["id"] in {k["id"] for k in listed}
    assert all("key" not in k or not k["key"] for k in listed)
    table = cli(cli_env, "keys", "list")
    assert "cli test key" in table.stdout and key["key"] not in table.stdout

    usage = cli(cli_env, "keys", "usage", "--json")
    assert usage.returncode == 0, usage.stderr
    rows = {row["key_id"]: row for row in json.loads(usage.stdout)}
    assert rows[key["id"]]["total_requests"] >= 1
    assert rows[key["id"]]["name"] == "cli test key"
    assert "REQUESTS" in cli(cli_env, "keys", "usage").stdout

    plain = cli(cli_env, "keys", "create", "cli plain key", "--scopes", "sandboxes:read")
    assert plain.returncode == 0 and plain.stdout.strip().startswith("vb_live_")
    assert "not shown again" in plain.stderr

    revoked = cli(cli_env, "keys", "revoke", key["id"])
    assert revoked.returncode == 0 and key["id"] in revoked.stdout
    assert cli(new_env, "ls").returncode == 4
    assert cli(cli_env, "keys", "revoke", "key_doesnotexist").returncode == 3
    for row in json.loads(cli(cli_env, "keys", "list", "--json").stdout):
        if row["name"] == "cli plain key":
            assert cli(cli_env, "keys", "revoke", row["id"]).returncode == 0
    assert cli(cli_env, "keys", "create", "x", "--expires-in", "never").returncode == 2


def test_no_colour_and_data_on_stdout_only(cli_env):
    result = cli({**cli_env, "TERM": "xterm-256color"}, "config", "list")
    assert "\x1b[" not in result.stdout + result.stderr
    assert "config file:" in result.stderr and "config file:" not in result.stdout
