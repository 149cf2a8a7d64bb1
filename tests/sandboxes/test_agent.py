"""The in-sandbox exec agent: simple commands go through it, the rest (and everything when it is
down) through Docker's exec, with the same results; it refuses callers without the token."""

import hashlib
import http.client
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from apps.sandboxes.runtime import docker_agent, get_driver
from tests.waiting import wait_for

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
    wait_for(
        lambda: "agent.py" in run(api_client, sandbox_id, command=["sh", "-c", PARENT])["stdout"],
        what="the agent to come up",
    )


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


def _agent_address(docker_client, sandbox_id: str) -> str:
    networks = docker_client.containers.get(sandbox_id).attrs["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in networks.values() if n["IPAddress"])


def _post(address: str, path: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(f"http://{address}:49983{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_agent_refuses_callers_without_the_token(api_client, sandbox_id, docker_client):
    wait_for_agent(api_client, sandbox_id)
    address = _agent_address(docker_client, sandbox_id)
    body = json.dumps({"argv": ["touch", "/tmp/ran"], "exec_id": "exec_x", "timeout": 5}).encode()
    key = docker_agent.token(settings.SECRET_KEY, sandbox_id)
    digest = hashlib.sha256(body).hexdigest()

    # No hello first (no nonce): refused, whatever the signature.
    signature = docker_agent._sign(key, "exec", sandbox_id, "", digest)
    headers = {"X-VibeBox-Container": sandbox_id, "X-VibeBox-Signature": signature}
    assert _post(address, "/exec", body, headers) == 401
    # The old bearer token is not enough either; another container's name is misdirected.
    assert _post(address, "/exec", body, {"Authorization": f"Bearer {key}", "X-VibeBox-Container": sandbox_id}) == 401
    assert _post(address, "/exec", body, {"X-VibeBox-Container": "sbx_someoneelse"}) == 421

    # A signed request on a hello's connection runs once; the same nonce again is refused.
    connection = http.client.HTTPConnection(address, 49983, timeout=10)
    connection.request("GET", "/hello?nonce=" + "cd" * 16)
    hello = json.loads(connection.getresponse().read())
    assert hello["container"] == sandbox_id
    assert hello["proof"] == docker_agent._sign(key, "hello", sandbox_id, "cd" * 16, hello["nonce"])
    headers = {
        "X-VibeBox-Container": sandbox_id,
        "X-VibeBox-Signature": docker_agent._sign(key, "exec", sandbox_id, hello["nonce"], digest),
    }
    connection.request("POST", "/exec", body=body, headers=headers)
    answer = connection.getresponse()
    payload = answer.read()
    assert answer.status == 200
    expected = docker_agent._sign(key, "answer", sandbox_id, "cd" * 16, "exec_x", hashlib.sha256(payload).hexdigest())
    assert answer.getheader("X-VibeBox-Signature") == expected
    connection.request("POST", "/exec", body=body, headers=headers)  # a replay
    assert connection.getresponse().status == 401
    connection.close()
    ran = run(api_client, sandbox_id, command="ls /tmp/ran && rm /tmp/ran")
    assert ran["exitCode"] == 0


def test_a_cached_address_now_holding_another_sandbox_is_refused(api_client, create_sandbox, docker_client):
    """Item 13: the address cached for sandbox A answers as sandbox B (A restarted elsewhere, B took
    its address). A's command is never sent to B: it runs in A through Docker's exec instead."""
    a, b = (create_sandbox(template="python-3")["id"] for _ in range(2))
    for sandbox_id in (a, b):
        wait_for_agent(api_client, sandbox_id)
    driver = get_driver()
    b_address = _agent_address(docker_client, b)
    driver._agents[a] = (b_address, "sandbox")
    body = run(api_client, a, command="cat /opt/vibebox/container; touch /workspace/ran-here")
    assert body["stdout"] == a
    assert driver._agents.get(a, ("",))[0] != b_address  # forgotten; looked up again next time
    assert run(api_client, b, command="ls /workspace")["stdout"] == ""

    # A fake agent in B that claims to be A (it cannot prove it: it lacks A's token) is refused too.
    fake = (Path(__file__).with_name("fake_agent.py")).read_text()
    container = docker_client.containers.get(b)
    container.exec_run(["sh", "-c", f"echo impersonate > /tmp/fake-mode; echo {a} > /tmp/fake-target"], user="sandbox")
    container.exec_run(["sh", "-c", "pkill -f '^python3 /opt/vibebox/agent.py'"], user="sandbox")
    docker_client.api.exec_start(
        docker_client.api.exec_create(b, ["python3", "-c", fake], user="sandbox")["Id"], detach=True
    )
    wait_for(lambda: container.exec_run(["test", "-f", "/tmp/fake-ready"]).exit_code == 0, what="the fake agent")
    driver._agents[a] = (b_address, "sandbox")
    assert run(api_client, a, command="cat /opt/vibebox/container")["stdout"] == a
    log = container.exec_run(["cat", "/tmp/fake-log"]).output.decode()
    assert "GET /hello" in log and "POST" not in log


def test_vibebox_files_in_the_sandbox_are_read_only_to_it(api_client, sandbox_id):
    """Item 9: the agent and its token belong to root and are read-only to everyone; the sandbox
    user (whose commands the agent runs) can read the token, not change anything."""
    wait_for_agent(api_client, sandbox_id)
    modes = run(api_client, sandbox_id, command="stat -c '%U:%G %a %n' /opt/vibebox /opt/vibebox/*")["stdout"]
    assert modes.splitlines() == [
        "root:root 555 /opt/vibebox",
        "root:root 444 /opt/vibebox/agent.py",
        "root:root 444 /opt/vibebox/container",
        "root:root 444 /opt/vibebox/token",
    ]
    attempts = (
        "echo 'import os' >> /opt/vibebox/agent.py",
        "cp /bin/true /opt/vibebox/agent.py",
        "chmod 666 /opt/vibebox/agent.py",
        "rm -f /opt/vibebox/agent.py",
        "mv /opt/vibebox/agent.py /opt/vibebox/old.py",
        "touch /opt/vibebox/new.py",
        "mv /opt/vibebox /opt/elsewhere",
    )
    for attempt in attempts:
        assert run(api_client, sandbox_id, command=attempt)["exitCode"] != 0, attempt
    assert run(api_client, sandbox_id, command="cat /opt/vibebox/token")["exitCode"] == 0
    before = run(api_client, sandbox_id, command="sha256sum /opt/vibebox/agent.py")["stdout"].split()[0]
    assert before == hashlib.sha256(docker_agent.SOURCE).hexdigest()
