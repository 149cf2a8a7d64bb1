"""The in-sandbox exec agent: simple commands go through it, the rest (and everything when it is
down) through Docker's exec, with the same results; it refuses callers without the token."""

import json
import time
import urllib.error
import urllib.request

import pytest

PARENT = "tr '\\0' ' ' < /proc/$PPID/cmdline"


def run(api_client, sandbox_id, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def sandbox_id(create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    return sandbox_id


def wait_for_agent(api_client, sandbox_id):
    deadline = time.monotonic() + 30
    while "agent.py" not in run(api_client, sandbox_id, command=["sh", "-c", PARENT])["stdout"]:
        assert time.monotonic() < deadline, "the agent did not come up"
        time.sleep(0.2)


def test_simple_commands_go_through_the_agent_others_through_docker(api_client, sandbox_id):
    wait_for_agent(api_client, sandbox_id)
    as_root = run(api_client, sandbox_id, command=["sh", "-c", PARENT], user="root")
    assert "agent.py" not in as_root["stdout"] and as_root["exitCode"] == 0
    body = run(api_client, sandbox_id, command="echo out; echo err >&2; exit 3", env={"X": "1"}, stdin="in")
    assert (body["stdout"], body["stderr"], body["exitCode"], body["status"]) == ("out\n", "err\n", 3, "failed")
    assert run(api_client, sandbox_id, command="cat", stdin="piped")["stdout"] == "piped"
    assert run(api_client, sandbox_id, command="echo $VIBEBOX_EXEC_ID")["stdout"].startswith("exec_")
    killed = run(api_client, sandbox_id, command="kill -TERM $$")
    assert killed["exitCode"] == 143  # 128 + SIGTERM, as a shell reports it


def test_a_timeout_kills_everything_the_command_started(api_client, sandbox_id):
    wait_for_agent(api_client, sandbox_id)
    body = run(api_client, sandbox_id, command="setsid sleep 301 & nohup sleep 302 & sleep 303", timeout=1)
    assert body["status"] == "timeout" and body["exitCode"] is None
    left = run(api_client, sandbox_id, command="ps -eo args | grep -c '^sleep 30[123]' || true")
    assert left["stdout"].strip() == "0"


def test_falls_back_to_docker_exec_when_the_agent_is_down(api_client, sandbox_id):
    wait_for_agent(api_client, sandbox_id)
    # The agent runs as the sandbox user, so its own commands can stop it (and only theirs).
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": ["pkill", "-f", "^python3 /opt/vibebox/agent.py"]},
        format="json",
    )
    assert response.status_code == 502  # the agent died under its own command: an error, not a second run
    body = run(api_client, sandbox_id, command=["sh", "-c", PARENT])
    assert body["exitCode"] == 0 and "agent.py" not in body["stdout"]
    assert run(api_client, sandbox_id, command="echo still")["stdout"] == "still\n"


def test_the_agent_refuses_callers_without_the_token(api_client, sandbox_id, docker_client):
    wait_for_agent(api_client, sandbox_id)
    networks = docker_client.containers.get(sandbox_id).attrs["NetworkSettings"]["Networks"]
    address = next(n["IPAddress"] for n in networks.values() if n["IPAddress"])
    request = urllib.request.Request(
        f"http://{address}:49983/exec",
        data=json.dumps({"argv": ["true"], "exec_id": "x", "timeout": 5}).encode(),
        headers={"Authorization": "Bearer wrong"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
