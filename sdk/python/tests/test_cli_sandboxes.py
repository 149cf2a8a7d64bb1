"""The `vibebox` command, sandbox side: new, ls, info, lifecycle, logs, rm/destroy, cleanup."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import pexpect
import pytest
from conftest import VIBEBOX, cli
from vibebox_sdk import NotFoundError, Sandbox, VibeBox


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def destroy(vb: VibeBox, *refs: str) -> None:
    for ref in refs:
        with contextlib.suppress(NotFoundError):
            vb.get(ref).destroy()


@pytest.fixture(scope="module")
def box(vb: VibeBox) -> Iterator[Sandbox]:
    """A python-3 sandbox shared by the read-only tests of this module."""
    sandbox = vb.sandbox("python-3", name=unique("cli-box"))
    yield sandbox
    sandbox.destroy()


def test_new_without_shell_prints_the_sandbox(cli_env, vb):
    name = unique("cli-new")
    try:
        result = cli(
            cli_env, "new", "python-3", name, "--no-shell", "--json", "--timeout", "2h", "--env", "GREETING=hi"
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["name"], data["template"], data["status"]) == (name, "python-3.13", "running")
        assert data["id"].startswith("sbx_") and 7100 < data["timeout"] <= 7200
        assert vb.get(name).run("echo $GREETING").stdout == "hi\n"
    finally:
        destroy(vb, name)


def test_new_without_a_terminal_does_not_open_a_shell(cli_env, vb):
    name = unique("cli-new-pipe")
    try:
        result = cli(cli_env, "new", "python-3", name)  # stdin is /dev/null
        assert result.returncode == 0, result.stderr
        assert name in result.stdout and "running" in result.stdout
    finally:
        destroy(vb, name)


def test_new_uses_the_configured_template_and_timeout(cli_env, vb):
    assert cli(cli_env, "new", "--no-shell").returncode == 2  # no template anywhere
    cli(cli_env, "config", "set", "template", "python-3")
    cli(cli_env, "config", "set", "timeout", "1h")
    result = cli(cli_env, "new", "--no-shell", "--json", "--ephemeral")
    data = json.loads(result.stdout)
    try:
        assert data["template"] == "python-3.13" and data["ephemeral"] is True
        assert 3500 < data["timeout"] <= 3600
    finally:
        destroy(vb, data["id"])


def test_create_is_new(cli_env, vb):
    name = unique("cli-create")
    try:
        result = cli(cli_env, "create", "python-3", name, "--no-shell", "--json", "--ephemeral")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["name"], data["template"], data["ephemeral"]) == (name, "python-3.13", True)
        assert "same as `new`" in cli(cli_env, "--help").stdout
    finally:
        destroy(vb, name)


def test_new_refuses_bad_options(cli_env):
    assert cli(cli_env, "new", "python-3", "--branch", "main", "--no-shell").returncode == 2
    assert cli(cli_env, "new", "python-3", "--timeout", "forever", "--no-shell").returncode == 2
    assert cli(cli_env, "new", "cobol-85", "--no-shell").returncode == 1  # 400 unknown_template
    refused = cli(cli_env, "new", "python-3", "--git", "file:///etc", "--no-shell")
    assert refused.returncode == 1 and "(invalid_git_url)" in refused.stderr


@pytest.mark.parametrize("command", ["new", "create"])  # `create`: the product spec's name of `new`
def test_new_opens_a_shell_on_a_terminal(cli_env, vb, command):
    name = unique(f"cli-{command}-tty")
    child = pexpect.spawn(VIBEBOX, [command, "python-3", name], env=cli_env, timeout=120, encoding="utf-8")
    try:
        child.expect(r"\$ ")
        child.sendline("echo in-$((20+3))")
        child.expect("in-23")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 3
        assert vb.get(name).status == "running"  # the sandbox outlives the shell
    finally:
        child.close(force=True)
        destroy(vb, name)


def test_ls_and_filters(cli_env, box):
    listed = json.loads(cli(cli_env, "ls", "--json").stdout)
    assert box.id in {s["id"] for s in listed}
    mine = json.loads(cli(cli_env, "ls", "--json", "--status", "running,paused", "--template", "python-3").stdout)
    assert box.id in {s["id"] for s in mine}
    assert box.id not in {s["id"] for s in json.loads(cli(cli_env, "ls", "--json", "--template", "node-20").stdout)}
    assert box.id not in {s["id"] for s in json.loads(cli(cli_env, "ls", "--json", "--status", "stopped").stdout)}
    table = cli(cli_env, "ls").stdout
    assert table.splitlines()[0].split() == ["NAME", "ID", "TEMPLATE", "STATUS", "CREATED", "EXPIRES"]
    assert box.name in table
    assert box.name in cli(cli_env, "ls", "-q").stdout.split()


def test_info(cli_env, box):
    data = json.loads(cli(cli_env, "info", box.name, "--json").stdout)
    assert data["id"] == box.id and data["resources"]["memory"]
    assert "createdAt" in data  # the server's own camelCase object
    assert json.loads(cli(cli_env, "info", box.id, "--json").stdout)["name"] == box.name
    human = cli(cli_env, "info", box.name).stdout
    assert box.id in human and "python-3" in human


def test_lifecycle(cli_env, vb):
    sandbox = vb.sandbox("python-3", name=unique("cli-life"))
    try:
        for action, status in [
            ("stop", "stopped"),
            ("start", "running"),
            ("restart", "running"),
            ("pause", "paused"),
        ]:
            result = cli(cli_env, action, sandbox.name, "--json")
            assert result.returncode == 0, (action, result.stderr)
            assert json.loads(result.stdout)["status"] == status
        refused = cli(cli_env, "shell", sandbox.name, input="exit\n")
        assert refused.returncode == 1 and f"vibebox resume {sandbox.name}" in refused.stderr
        conflict = cli(cli_env, "restart", sandbox.name)
        assert conflict.returncode == 1 and "(sandbox_state_conflict)" in conflict.stderr
        resumed = cli(cli_env, "resume", sandbox.name)
        assert resumed.returncode == 0 and resumed.stdout.strip() == f"{sandbox.name}: running"
        assert cli(cli_env, "stop", "no-such-sandbox-x").returncode == 3
    finally:
        sandbox.destroy()


def test_logs(cli_env, box):
    box.exec("true")
    result = cli(cli_env, "logs", box.name, "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert any(e.get("event") == "sandbox.started" for e in entries)
    assert len(json.loads(cli(cli_env, "logs", box.name, "--json", "--tail", "1").stdout)) <= 1
    human = cli(cli_env, "logs", box.name, "--since", "1h", "--tail", "100", "-t")
    assert human.returncode == 0 and "sandbox started" in human.stdout
    assert cli(cli_env, "logs", box.name, "--tail", "many").returncode == 2
    assert cli(cli_env, "logs", box.name, "--since", "yesterday").returncode == 2


def test_logs_follow(cli_env, box):
    process = subprocess.Popen(
        [VIBEBOX, "logs", box.name, "-f", "--tail", "0"],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any("follow-marker" in line for line in lines):
            box.exec("echo follow-marker")
            time.sleep(2)
        assert any("follow-marker" in line for line in lines), lines
    finally:
        process.terminate()
        process.wait(30)


def test_rm_several_names_and_destroy_alias(cli_env, vb):
    names = [unique("cli-rm") for _ in range(3)]
    created = vb.create_many([{"template": "python-3", "name": n} for n in names])
    try:
        refused = cli(cli_env, "rm", *names)  # no terminal, no --yes
        assert refused.returncode == 2 and "--yes" in refused.stderr
        assert all(vb.get(s.id).status == "running" for s in created)
        result = cli(cli_env, "rm", names[0], names[1], "-y", "--json")
        assert result.returncode == 0, result.stderr
        assert {d["name"] for d in json.loads(result.stdout)} == set(names[:2])
        partial = cli(cli_env, "destroy", names[2], "no-such-sandbox-y", "--yes")
        assert partial.returncode == 3
        assert f"destroyed {names[2]}" in partial.stdout and "no-such-sandbox-y" in partial.stderr
        assert all(vb.get(s.id).status == "destroyed" for s in created)
        assert cli(cli_env, "rm", "-y").returncode == 2  # nothing named
    finally:
        vb.destroy_all(created)


def test_rm_asks_on_a_terminal(cli_env, vb):
    sandbox = vb.sandbox("python-3", name=unique("cli-rm-ask"))
    try:
        child = pexpect.spawn(VIBEBOX, ["rm", sandbox.name], env=cli_env, timeout=60, encoding="utf-8")
        child.expect(r"Destroy .*\?")
        child.sendline("n")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 1 and vb.get(sandbox.id).status == "running"
        child = pexpect.spawn(VIBEBOX, ["rm", sandbox.name], env=cli_env, timeout=120, encoding="utf-8")
        child.expect(r"Destroy .*\?")
        child.sendline("y")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0 and vb.get(sandbox.id).status == "destroyed"
    finally:
        sandbox.destroy()


def test_rm_all_with_its_own_user(cli_env, server):
    env = {**cli_env, "VIBEBOX_API_KEY": server.create_key("cli-rm-all")}
    ids = []
    try:
        for _ in range(2):
            result = cli(env, "new", "python-3", "--no-shell", "--json")
            assert result.returncode == 0, result.stderr
            ids.append(json.loads(result.stdout)["id"])
        assert cli(env, "rm", "--all").returncode == 2  # no terminal, no --yes
        assert cli(env, "rm", "--all", "some-name", "--yes").returncode == 2
        result = cli(env, "rm", "--all", "--yes", "--json")
        assert result.returncode == 0, result.stderr
        assert sorted(d["id"] for d in json.loads(result.stdout)) == sorted(ids)
        assert json.loads(cli(env, "ls", "--json").stdout) == []
        assert json.loads(cli(env, "rm", "--all", "--yes", "--json").stdout) == []
    finally:
        with VibeBox(api_key=env["VIBEBOX_API_KEY"], base_url=server.url) as other:
            other.destroy_all()


def test_cleanup_destroys_only_ephemeral_sandboxes(cli_env, server):
    env = {**cli_env, "VIBEBOX_API_KEY": server.create_key("cli-cleanup")}
    with VibeBox(api_key=env["VIBEBOX_API_KEY"], base_url=server.url) as other:
        keep = other.sandbox("python-3", name="keep")
        try:
            temporary = json.loads(cli(env, "new", "python-3", "tmp", "--ephemeral", "--no-shell", "--json").stdout)
            assert temporary["ephemeral"] is True
            result = cli(env, "cleanup", "--json")
            assert result.returncode == 0, result.stderr
            assert [d["id"] for d in json.loads(result.stdout)] == [temporary["id"]]
            assert other.get(keep.id).status == "running"
            assert other.get(temporary["id"]).status == "destroyed"
            again = cli(env, "cleanup")
            assert again.returncode == 0 and "no ephemeral sandboxes" in again.stderr
        finally:
            other.destroy_all()
