"""Commands and code: run, exec, retries, timeouts, streams, background processes, logs, terminals."""

from __future__ import annotations

import threading
import time

import pytest
from vibebox_sdk import (
    CommandExitError,
    CommandTimeoutError,
    SandboxNotRunningError,
    TerminalNotFoundError,
    ValidationError,
)

from tests.waiting import wait_for


def test_run_code_and_commands(node_sandbox):
    result = node_sandbox.run(
        "const fs = require('fs');\nfs.writeFileSync('a.txt', 'x');\n"
        "const files = fs.readdirSync('.');\nconsole.log('Files:', files);\nreturn files;"
    )
    assert result.return_value == ["a.txt"]
    assert result.output == "Files: [ 'a.txt' ]\n"
    assert (result.exit_code, result.status, result.language) == (0, "completed", "javascript")
    assert result.duration > 0
    assert result.execution_id.startswith("exec_")
    shell = node_sandbox.run("npm --version", cwd="/tmp")
    assert shell.language == "shell"
    assert shell.stdout.strip()[0].isdigit()
    typed = node_sandbox.run("const n: number = 2; return n * 21", language="typescript")
    assert typed.return_value == 42
    assert (typed.phase, result.phase) == ("run", "run")


def test_a_typescript_syntax_error_fails_in_the_compile_phase(node_sandbox):
    """TypeScript is type-stripped (esbuild) before it runs: a syntax error never reaches node."""
    with pytest.raises(CommandExitError) as info:
        node_sandbox.run("const n: number = ;\nconsole.log('never')", language="typescript")
    failed = info.value.result
    assert failed.phase == "compile"
    assert failed.exit_code != 0
    assert "never" not in failed.stdout
    assert failed.stderr.strip()
    # a runtime error is the run phase's
    thrown = node_sandbox.execute("throw new Error('boom')", language="typescript")
    assert (thrown.phase, thrown.exit_code != 0) == ("run", True)
    assert "boom" in thrown.stderr


def test_run_python_return_value_and_env(sandbox):
    result = sandbox.run("import os\nos.environ['X'] + '!'", env={"X": "hi"})
    assert result.return_value == "hi!"


def test_run_raises_on_failure_with_logs_after_retries(sandbox):
    with pytest.raises(CommandExitError) as info:
        sandbox.run("echo attempt >> /workspace/count; echo failing; exit 3", retries=2, retry_delay=0.1)
    error = info.value
    assert error.exit_code == 3
    assert len(error.attempts) == 3
    assert error.logs.count("failing") == 3
    assert sandbox.exec("wc -l < /workspace/count").stdout.strip() == "3"
    unchecked = sandbox.run("exit 5", check=False)
    assert unchecked.exit_code == 5
    assert not unchecked.ok


def test_retry_succeeds_on_a_later_attempt(sandbox):
    flaky = "n=$(cat /workspace/n 2>/dev/null || echo 0); echo $((n+1)) > /workspace/n; [ $n -ge 1 ]"
    result = sandbox.run(flaky, language="shell", retries=3, retry_delay=0.1)
    assert result.ok
    assert sandbox.files.read_text("n").strip() == "2"


def test_timeout_is_honoured(sandbox):
    started = time.monotonic()
    with pytest.raises(CommandTimeoutError) as info:
        sandbox.run("sleep 30", timeout="1s", language="shell")
    assert time.monotonic() - started < 20
    assert info.value.result.status == "timeout"
    result = sandbox.exec("sleep 30", timeout=1)
    assert (result.status, result.exit_code, result.timed_out) == ("timeout", None, True)


def test_exec_does_not_raise_and_keeps_streams_apart(sandbox):
    result = sandbox.exec("echo out; echo err >&2; exit 3", cwd="/tmp")
    assert (result.stdout, result.stderr, result.exit_code, result.status) == ("out\n", "err\n", 3, "failed")
    argv = sandbox.exec(["python3", "-c", "import sys; print(sys.argv[1])", "a b"], user="root")
    assert argv.stdout == "a b\n"
    assert sandbox.exec("cat", stdin="piped").stdout == "piped"
    with pytest.raises(ValidationError) as info:
        sandbox.exec("true", timeout="2 weeks")
    assert info.value.code == "invalid_duration"


def test_paused_sandbox_needs_auto_resume(sandbox):
    sandbox.pause()
    with pytest.raises(SandboxNotRunningError):
        sandbox.exec("true")
    assert sandbox.exec("echo back", auto_resume=True).stdout == "back\n"
    assert sandbox.refresh().status == "running"


def test_streamed_exec_callbacks_iteration_and_stdin(sandbox):
    chunks, done = [], []
    cmd = sandbox.exec("for i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2", stream=True, cwd="/workspace")
    cmd.on_data(chunks.append)
    cmd.on_complete(done.append)
    result = cmd.wait()
    assert "".join(chunks) == "line1\nline2\nline3\noops\n"
    assert result.stdout == "line1\nline2\nline3\n"
    assert result.stderr == "oops\n"
    assert done == [result]
    assert result.execution_id.startswith("exec_")

    cmd = sandbox.exec("read name; echo hello $name; exit 4", stream=True)
    cmd.send_stdin("agent\n")
    events = list(cmd)
    assert [e.type for e in events] == ["stdout", "exit"]
    assert events[0].data == "hello agent\n"
    assert events[-1].result.exit_code == 4

    cmd = sandbox.exec("trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.1; done", stream=True)
    ready = threading.Event()
    cmd.on_stdout(lambda data: ready.set() if "ready" in data else None)
    assert ready.wait(30)
    cmd.signal("INT")
    result = cmd.wait(30)
    assert "got-int" in result.stdout


def test_background_process(sandbox):
    process = sandbox.exec("echo started; sleep 60", background=True)
    assert process.process_id
    assert any(p["process_id"] == process.process_id for p in sandbox.processes())
    stream = process.attach()
    first = next(iter(stream))
    assert first.data == "started\n"
    process.kill()
    result = stream.wait(30)
    assert result.exit_code != 0
    history = sandbox.executions(limit=5)
    assert history[0].execution_id == process.execution_id
    assert sandbox.execution(process.execution_id).command == "echo started; sleep 60"


def test_logs_and_on_log(sandbox):
    entries = sandbox.logs(tail="all")
    assert any(e.type == "event" and e.event == "sandbox.started" for e in entries)
    seen, arrived = [], threading.Event()

    def collect(entry):
        seen.append(entry)
        if entry.type == "log" and "to-pid-1" in entry.text:
            arrived.set()

    with sandbox.on_log(collect, filter="stdout"):
        # Written again until it arrives: the follow may start after the first line.
        def written_and_arrived() -> bool:
            sandbox.exec("echo to-pid-1 > /run/vibebox/stdout")
            return arrived.wait(1)

        wait_for(written_and_arrived, timeout=60, interval=0, what="the line written to PID 1's stdout")
    assert all(e.stream in ("stdout", "vibebox") for e in seen)
    backlog = list(sandbox.stream_logs(follow=False, tail="all", filter="stdout"))
    assert any("to-pid-1" in e.text for e in backlog)


def test_terminal(sandbox):
    with sandbox.terminal(cols=100, rows=30) as term:
        assert term.session_id.startswith("term_")
        term.resize(132, 43)
        term.send(b"stty size; exit 3\r")
        output = b""
        while (chunk := term.recv(30)) is not None:
            output += chunk
        assert b"43 132" in output
        assert term.exit_code == 3


def test_terminals_outlive_their_clients_until_killed(sandbox):
    with sandbox.terminal() as term:
        term.send(b"echo up-$((6*7))\r")
        output = b""
        while b"up-42" not in output:
            output += term.recv(30) or b""
        session_id = term.session_id
    # left, not ended: listed, then ended by id
    listed = sandbox.terminals()
    assert [(t["session_id"], t["shell"], t["running"]) for t in listed] == [(session_id, "bash", True)]
    sandbox.kill_terminal(session_id)
    assert wait_for(lambda: sandbox.terminals() == [])
    with pytest.raises(TerminalNotFoundError):
        sandbox.kill_terminal(session_id)
    with sandbox.terminal() as term:
        term.kill()
        while term.recv(30) is not None:
            pass
        assert term.exit_code == 137
    assert sandbox.terminals() == []
