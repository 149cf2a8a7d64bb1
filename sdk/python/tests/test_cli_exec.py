"""The `vibebox` command, running things: exec, run, exec-once, run-once, shell, claude."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pexpect
import pytest
from conftest import VIBEBOX, cli
from vibebox_sdk import Sandbox, VibeBox


@pytest.fixture(scope="module")
def box(vb: VibeBox) -> Iterator[Sandbox]:
    sandbox = vb.sandbox("python-3", name=f"cli-exec-{uuid.uuid4().hex[:6]}")
    yield sandbox
    sandbox.destroy()


@pytest.fixture(scope="module")
def node_box(vb: VibeBox) -> Iterator[Sandbox]:
    sandbox = vb.sandbox("node-20", name=f"cli-node-{uuid.uuid4().hex[:6]}")
    yield sandbox
    sandbox.destroy()


def test_exec_streams_and_passes_the_exit_code_through(cli_env, box):
    result = cli(cli_env, "exec", box.name, "echo out; echo err >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert cli(cli_env, "exec", box.name, "true").returncode == 0
    assert cli(cli_env, "exec", box.id, "exit 0").returncode == 0


def test_exec_output_arrives_live(cli_env, box):
    process = subprocess.Popen(
        [VIBEBOX, "exec", box.name, "echo first; sleep 15; echo second"],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "first\n"
        assert process.poll() is None  # still running: the line came before the command ended
        assert process.stdout.readline() == "second\n"
        assert process.wait(60) == 0
    finally:
        process.kill()
        process.wait()


def test_exec_options(cli_env, box):
    assert cli(cli_env, "exec", box.name, "pwd", "--cwd", "/tmp").stdout == "/tmp\n"
    env = cli(cli_env, "exec", box.name, "echo $A $B", "--env", "A=1", "-e", "B=x=y")
    assert env.stdout == "1 x=y\n"
    assert cli(cli_env, "exec", box.name, "id -un", "--user", "root").stdout == "root\n"
    assert cli(cli_env, "exec", box.name, "tr a-z A-Z", "--stdin", input="piped\n").stdout == "PIPED\n"
    assert cli(cli_env, "exec", box.name, "echo", "several", "words").stdout == "several words\n"
    timed_out = cli(cli_env, "exec", box.name, "sleep 30", "--timeout", "1s")
    assert timed_out.returncode == 124 and "timed out" in timed_out.stderr
    assert cli(cli_env, "exec", box.name, "true", "--env", "NOEQUALS").returncode == 2
    assert cli(cli_env, "exec", box.name, "true", "--timeout", "soon").returncode == 2
    assert cli(cli_env, "exec", "no-such-sandbox-z", "true").returncode == 3


def test_exec_json(cli_env, box):
    result = cli(cli_env, "exec", box.name, "echo hi; exit 3", "--json")
    assert result.returncode == 3
    data = json.loads(result.stdout)
    assert (data["stdout"], data["exitCode"], data["status"]) == ("hi\n", 3, "failed")
    assert data["executionId"].startswith("exec_")


def test_run_script_files(cli_env, box, node_box, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import sys\nprint('from python', sys.version_info[0])\nsys.exit(4)\n")
    result = cli(cli_env, "run", box.name, str(script))
    assert result.returncode == 4 and result.stdout == "from python 3\n"
    shell = tmp_path / "deploy.sh"
    shell.write_text("echo shell-$((6*7))\nexit 0\n")
    assert cli(cli_env, "run", box.name, str(shell)).stdout == "shell-42\n"
    other = tmp_path / "noextension"
    other.write_text("echo $0 >/dev/null; echo as-shell\n")
    assert cli(cli_env, "run", box.name, str(other)).stdout == "as-shell\n"
    js = tmp_path / "app.js"
    js.write_text("console.log('node', 6 * 7); return {ok: true};\n")
    data = json.loads(cli(cli_env, "run", node_box.name, str(js), "--json").stdout)
    assert data["language"] == "javascript" and data["stdout"] == "node 42\n" and data["returnValue"] == {"ok": True}
    ts = tmp_path / "typed.ts"
    ts.write_text("const n: number = 5;\nconsole.log(`ts ${n}`);\nprocess.exit(2);\n")
    typed = cli(cli_env, "run", node_box.name, str(ts))
    assert typed.returncode == 2 and typed.stdout == "ts 5\n"
    assert cli(cli_env, "run", box.name, str(tmp_path / "missing.py")).returncode == 1
    wrong = cli(cli_env, "run", box.name, str(ts))  # python-3 has no typescript
    assert wrong.returncode == 1 and "(unsupported_language)" in wrong.stderr
    # .go/.rs/.rb/.java run as their languages (in go-1.24, rust-1.85, ruby-3.3, java-21): sent as such
    for extension, language in ((".go", "go"), (".rs", "rust"), (".rb", "ruby"), (".java", "java")):
        source = tmp_path / f"main{extension}"
        source.write_text("x\n")
        refused = cli(cli_env, "run", box.name, str(source))
        assert refused.returncode == 1 and "(unsupported_language)" in refused.stderr
        assert f"not {language}." in refused.stderr


def test_exec_once_and_run_once(cli_env, vb, tmp_path):
    before = {s.id for s in vb.list()}
    hello = cli(cli_env, "exec-once", "node-20", "console.log('Hello!')")
    assert hello.returncode == 0 and hello.stdout == "Hello!\n"
    failing = cli(cli_env, "exec-once", "python-3", "import sys; print('py'); sys.exit(3)")
    assert failing.returncode == 3 and failing.stdout == "py\n"
    script = tmp_path / "test-script.js"
    script.write_text("console.log('script', process.version.startsWith('v20'));\n")
    assert cli(cli_env, "run-once", "node-20", str(script)).stdout == "script true\n"
    py = tmp_path / "calc.py"
    py.write_text("print(sum(range(10)))\n")
    data = json.loads(cli(cli_env, "run-once", "python-3", str(py), "--json").stdout)
    assert data["stdout"] == "45\n" and data["exitCode"] == 0 and data["language"] == "python"
    assert cli(cli_env, "exec-once", "cobol-85", "true").returncode == 1
    assert {s.id for s in vb.list()} <= before  # the throwaway sandboxes are gone


def test_shell_on_a_terminal(cli_env, box):
    child = pexpect.spawn(VIBEBOX, ["shell", box.name], env=cli_env, timeout=60, encoding="utf-8", dimensions=(24, 80))
    try:
        child.expect(r"\$ ")
        child.sendline("echo hi-$((1+2))")
        child.expect("hi-3")
        child.setwinsize(40, 132)
        sizes = []
        deadline = time.monotonic() + 60
        while "40 132" not in sizes and time.monotonic() < deadline:
            # the resize travels asynchronously: ask until the new size shows
            child.sendline("stty size")
            child.expect(r"(\d+ \d+)\r\n", timeout=20)
            sizes.append(child.match.group(1))
        assert "40 132" in sizes, sizes
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 5
    finally:
        child.close(force=True)


def test_sh_alias_with_piped_stdin(cli_env, box):
    result = cli(cli_env, "sh", box.name, input="echo piped-$((2*3))\ncd /tmp && pwd\nexit 6\n")
    assert result.returncode == 6
    assert result.stdout == "piped-6\n/tmp\n"
    assert cli(cli_env, "shell", "no-such-sandbox-w", input="exit\n").returncode == 3


def test_claude_commands_on_a_template_without_it(cli_env, box):
    for args, code in (
        (["enable", box.name], "claude_unavailable"),
        (["ask", box.name, "Add tests"], "claude_not_enabled"),
        (["configure", box.name, "--mode", "human"], "claude_not_enabled"),
    ):
        result = cli(cli_env, "claude", *args)
        assert result.returncode == 1
        assert f"({code})" in result.stderr
    assert cli(cli_env, "claude", "status", "no-such-sandbox-v").returncode == 3


def test_ctrl_c_reaches_the_command(cli_env, box):
    child = pexpect.spawn(
        VIBEBOX, ["exec", box.name, "echo started; sleep 60; echo finished"], env=cli_env, timeout=60, encoding="utf-8"
    )
    try:
        child.expect("started")
        child.sendintr()  # Ctrl-C: the CLI sends INT to the remote command instead of dying
        child.expect(pexpect.EOF)
        child.close()
        assert "finished" not in (child.before or "")
        assert child.exitstatus == 130  # bash's exit code for a command ended by SIGINT
    finally:
        child.close(force=True)
