"""Commands in a sandbox through the API, against the real engine."""

import pytest

from apps.sandboxes.models import Execution


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


def run(api_client, sandbox_id, expect=200, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def test_exit_codes_and_separate_streams(api_client, sandbox_id):
    body = run(api_client, sandbox_id, command="echo out; echo err >&2; exit 3")
    assert body["stdout"] == "out\n" and body["stderr"] == "err\n"
    assert body["exitCode"] == 3 and body["status"] == "failed"
    assert body["truncated"] is False and body["oomKilled"] is False
    assert body["executionId"].startswith("exec_") and body["duration"] >= 0
    ok = run(api_client, sandbox_id, command="pwd; whoami")
    assert ok["stdout"] == "/workspace\nsandbox\n" and ok["status"] == "completed" and ok["exitCode"] == 0


def test_argv_cwd_user_stdin_and_env(api_client, sandbox_id):
    body = run(api_client, sandbox_id, command=["python3", "-c", "import sys; print(sys.argv[1:])", "a b", "$HOME"])
    assert body["stdout"] == "['a b', '$HOME']\n"
    assert run(api_client, sandbox_id, command="pwd", cwd="/tmp")["stdout"] == "/tmp\n"
    assert run(api_client, sandbox_id, command="mkdir -p sub && cd sub && pwd")["stdout"] == "/workspace/sub\n"
    assert run(api_client, sandbox_id, command="pwd", cwd="sub")["stdout"] == "/workspace/sub\n"
    assert run(api_client, sandbox_id, command="id -u", user="root")["stdout"] == "0\n"
    assert run(api_client, sandbox_id, command="tr a-z A-Z", stdin="hello")["stdout"] == "HELLO"
    assert run(api_client, sandbox_id, command="echo $GREETING", env={"GREETING": "hi"})["stdout"] == "hi\n"
    # login shell: the image's PATH (the Python virtualenv first) survives /etc/profile
    assert run(api_client, sandbox_id, command="command -v pip")["stdout"] == "/opt/venv/bin/pip\n"


def test_timeout_kills_the_whole_process_tree(api_client, sandbox_id):
    body = run(
        api_client,
        sandbox_id,
        command="echo started; (sleep 300 &); setsid sleep 301 & nohup sleep 302 >/dev/null 2>&1 & sleep 303",
        timeout="2s",
    )
    assert body["status"] == "timeout" and body["exitCode"] is None
    assert body["stdout"] == "started\n"
    assert 2000 <= body["duration"] < 10000
    left = run(api_client, sandbox_id, command="ps -eo args | grep -c '^sleep 30[0-3]' || true")
    assert left["stdout"].strip() == "0"
    assert Execution.objects.get(pk=body["executionId"]).status == "timeout"


def test_output_is_capped_and_memory_bounded(api_client, sandbox_id, settings):
    settings.VIBEBOX_EXEC_OUTPUT_LIMIT = 1024 * 1024
    body = run(api_client, sandbox_id, command="head -c 104857600 /dev/zero | tr '\\0' x; echo done >&2")
    assert body["truncated"] is True
    assert len(body["stdout"]) == 1024 * 1024 and body["stderr"] == "done\n"
    execution = Execution.objects.get(pk=body["executionId"])
    assert execution.stdout_bytes == 100 * 1024 * 1024
    assert len(execution.stdout) == settings.VIBEBOX_EXEC_STORED_OUTPUT


def test_oom_is_reported(api_client, create_sandbox):
    sandbox_id = create_sandbox(template="python-3", resources={"memory": "128m"})["id"]
    body = run(api_client, sandbox_id, command="python3 -c 'x = bytearray(512 * 1024 * 1024)'")
    assert body["exitCode"] == 137 and body["oomKilled"] is True and body["status"] == "failed"


def test_stopped_and_paused_sandboxes(api_client, sandbox_id):
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause")
    body = run(api_client, sandbox_id, expect=409, command="true")
    assert body["error"]["code"] == "sandbox_paused"
    body = run(api_client, sandbox_id, command="echo back", autoResume=True)
    assert body["stdout"] == "back\n"
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()["status"] == "running"
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop")
    assert run(api_client, sandbox_id, expect=409, command="true")["error"]["code"] == "sandbox_not_running"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"command": ""}, "validation_error"),
        ({"command": []}, "validation_error"),
        ({"command": "true", "timeout": "2d"}, "invalid_duration"),
        ({"command": "true", "env": {"BAD=NAME": "x"}}, "invalid_env"),
        ({"command": "true", "shell": "zsh"}, "unknown_field"),
    ],
)
def test_bad_exec_input(api_client, sandbox_id, body, code):
    assert run(api_client, sandbox_id, expect=400, **body)["error"]["code"] == code
    assert Execution.objects.count() == 0


def test_executions_are_recorded(api_client, sandbox_id, api_key):
    first = run(api_client, sandbox_id, command="echo one")
    run(api_client, sandbox_id, command="exit 1")
    listing = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/executions").json()
    assert listing["count"] == 2
    assert [item["status"] for item in listing["results"]] == ["failed", "completed"]
    detail = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/executions/{first['executionId']}").json()
    assert detail["stdout"] == "one\n" and detail["command"] == "echo one" and detail["kind"] == "exec"
    assert Execution.objects.get(pk=first["executionId"]).api_key_id == api_key[0].id
    missing = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/executions/exec_nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "execution_not_found"


def test_a_command_that_cannot_start_exits_127_with_the_reason(api_client, sandbox_id):
    """sandboxd refuses what it cannot start (nothing runs): the answer is a shell's, 127 and why."""
    missing = run(api_client, sandbox_id, command=["no-such-program-here"])
    assert missing["exitCode"] == 127 and missing["status"] == "failed"
    assert "no-such-program-here" in missing["stderr"]
    nowhere = run(api_client, sandbox_id, command="touch /workspace/ran", cwd="/no/such/dir")
    assert nowhere["exitCode"] == 127 and nowhere["stderr"]
    assert run(api_client, sandbox_id, command="ls /workspace")["stdout"] == ""
