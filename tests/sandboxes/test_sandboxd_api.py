"""sandboxd through the API: every command of a sandbox runs under it (any user), with the
results Docker's exec used to give; sandbox code cannot stop it; it refuses callers without the token,
and a cached address that now answers for another sandbox is never sent a command."""

import hashlib
import http.client
import json
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from apps.sandboxes.runtime import get_driver, sandboxd_client
from tests.sandboxes import fakes
from tests.waiting import wait_for

PARENT = "tr '\\0' ' ' < /proc/$PPID/cmdline"


def run(api_client, sandbox_id, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


def wait_for_daemon(api_client, sandbox_id):
    wait_for(
        lambda: "sandboxd" in run(api_client, sandbox_id, command=["sh", "-c", PARENT])["stdout"],
        what="sandboxd to come up",
    )


def test_every_command_runs_under_sandboxd_whoever_it_runs_as(api_client, sandbox_id):
    wait_for_daemon(api_client, sandbox_id)
    as_root = run(api_client, sandbox_id, command=["sh", "-c", f"id -u; {PARENT}"], user="root")
    assert as_root["stdout"].startswith("0\n/opt/vibebox/sandboxd serve") and as_root["exitCode"] == 0
    body = run(api_client, sandbox_id, command="echo out; echo err >&2; exit 3", env={"X": "1"}, stdin="in")
    assert (body["stdout"], body["stderr"], body["exitCode"], body["status"]) == ("out\n", "err\n", 3, "failed")
    assert run(api_client, sandbox_id, command="cat", stdin="piped")["stdout"] == "piped"
    assert run(api_client, sandbox_id, command="echo $VIBEBOX_EXEC_ID")["stdout"].startswith("exec_")
    killed = run(api_client, sandbox_id, command="kill -TERM $$")
    assert killed["exitCode"] == 143  # 128 + SIGTERM, as a shell reports it


def test_a_timeout_kills_everything_the_command_started(api_client, sandbox_id):
    wait_for_daemon(api_client, sandbox_id)
    body = run(api_client, sandbox_id, command="setsid sleep 301 & nohup sleep 302 & sleep 303", timeout=1)
    assert body["status"] == "timeout" and body["exitCode"] is None
    left = run(api_client, sandbox_id, command="ps -eo args | grep -c '^sleep 30[123]' || true")
    assert left["stdout"].strip() == "0"


def test_sandbox_code_cannot_stop_sandboxd(api_client, sandbox_id):
    """sandboxd is root PID 1: the sandbox user's signals are refused, and deadly ones sent from
    inside its namespace, root's included, do not reach it (the exec agent before it ran as the
    sandbox user, so sandbox code could kill it)."""
    wait_for_daemon(api_client, sandbox_id)
    tried = run(api_client, sandbox_id, command="kill -KILL 1; echo $?; kill -TERM 1; echo $?")
    assert tried["stdout"].split() == ["1", "1"], tried
    run(api_client, sandbox_id, command="kill -KILL 1; kill -STOP 1; true", user="root")
    wait_for_daemon(api_client, sandbox_id)
    assert run(api_client, sandbox_id, command="echo still")["stdout"] == "still\n"


def _address(docker_client, sandbox_id: str) -> str:
    networks = docker_client.containers.get(sandbox_id).attrs["NetworkSettings"]["Networks"]
    return next(n["IPAddress"] for n in networks.values() if n["IPAddress"])


def _post(address: str, path: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(f"http://{address}:49983{path}", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10):
            return 200
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sandboxd_refuses_callers_without_the_token(api_client, sandbox_id, docker_client):
    wait_for_daemon(api_client, sandbox_id)
    address = _address(docker_client, sandbox_id)
    body = json.dumps({"argv": ["touch", "/tmp/ran"], "exec_id": "exec_x", "timeout": 5}).encode()
    key = sandboxd_client.token(settings.SECRET_KEY, sandbox_id)
    digest = hashlib.sha256(body).hexdigest()

    # No hello first (no nonce): refused, whatever the signature.
    signature = sandboxd_client._sign(key, "exec", sandbox_id, "", digest)
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
    assert hello["proof"] == sandboxd_client._sign(key, "hello", sandbox_id, "cd" * 16, hello["nonce"])
    headers = {
        "X-VibeBox-Container": sandbox_id,
        "X-VibeBox-Signature": sandboxd_client._sign(key, "exec", sandbox_id, hello["nonce"], digest),
    }
    connection.request("POST", "/exec", body=body, headers=headers)
    answer = connection.getresponse()
    payload = answer.read()
    assert answer.status == 200
    expected = sandboxd_client._sign(
        key, "answer", sandbox_id, "cd" * 16, "exec_x", hashlib.sha256(payload).hexdigest()
    )
    assert answer.getheader("X-VibeBox-Signature") == expected
    connection.request("POST", "/exec", body=body, headers=headers)  # a replay
    assert connection.getresponse().status == 401
    connection.close()
    ran = run(api_client, sandbox_id, command="ls /tmp/ran && rm /tmp/ran")
    assert ran["exitCode"] == 0


def test_a_cached_address_now_holding_another_sandbox_is_refused(api_client, create_sandbox, docker_client):
    """Item 13: the address cached for sandbox A answers as sandbox B (A restarted elsewhere, B took
    its address). A's command is never sent to B: the server looks A's address up again and runs it
    through A's own sandboxd."""
    a, b = (create_sandbox(template="python-3")["id"] for _ in range(2))
    for sandbox_id in (a, b):
        wait_for_daemon(api_client, sandbox_id)
    driver = get_driver()
    b_address = _address(docker_client, b)
    driver._daemons[a] = b_address
    assert run(api_client, a, command="touch /workspace/ran-here; ls /workspace")["stdout"] == "ran-here\n"
    assert driver._daemons.get(a) != b_address  # forgotten; looked up again next time
    assert run(api_client, b, command="ls /workspace")["stdout"] == ""

    # A fake that holds B's token and claims to be A (it cannot prove it: it lacks A's) is refused too.
    fake = f"{b}-fake"
    try:
        driver._daemons[a] = fakes.start(docker_client, like=b, name=fake, container=b, mode="impersonate", target=a)
        assert run(api_client, a, command="ls /workspace")["stdout"] == "ran-here\n"
        log = fakes.in_container(docker_client, fake, "cat /tmp/fake-log")
    finally:
        docker_client.containers.get(fake).remove(force=True)
    assert "GET /hello" in log and "POST" not in log


def test_sandboxd_and_its_token_are_out_of_the_sandbox_users_reach(api_client, sandbox_id):
    """Item 9: sandboxd comes from a read-only volume and its token is root's alone; the sandbox
    user (whose commands sandboxd runs) can change neither, nor read the token."""
    wait_for_daemon(api_client, sandbox_id)
    digest = "sha256sum /opt/vibebox/sandboxd"
    before = run(api_client, sandbox_id, command=digest, user="root")["stdout"]
    attempts = (
        "cat /run/vibebox/token",
        "echo x >> /opt/vibebox/sandboxd",
        "cp /bin/true /opt/vibebox/sandboxd",
        "chmod 777 /opt/vibebox/sandboxd",
        "rm -f /opt/vibebox/sandboxd",
        "mv /opt/vibebox/sandboxd /opt/vibebox/old",
        "touch /opt/vibebox/new",
        "touch /run/vibebox/new",
        "mv /opt/vibebox /opt/elsewhere",
    )
    for attempt in attempts:
        assert run(api_client, sandbox_id, command=attempt)["exitCode"] != 0, attempt
    for attempt in attempts[1:7]:  # root's writes fail too: the volume is read-only
        assert run(api_client, sandbox_id, command=attempt, user="root")["exitCode"] != 0, attempt
    assert run(api_client, sandbox_id, command=digest, user="root")["stdout"] == before


@pytest.mark.parametrize("end", ["kill", "stop"])
def test_a_stream_cut_by_its_container_stopping_is_not_called_hostile(api_client, sandbox_id, docker_client, end):
    """A stop or kill of the container ends sandboxd's stream without an exit frame: that is the
    sandbox stopping (`sandbox_stopped`, logged quietly), not sandboxd answering badly."""
    import threading

    from apps.sandboxes.models import Sandbox
    from apps.sandboxes.runtime.base import ExecRequest
    from vibebox import exceptions as errors

    wait_for_daemon(api_client, sandbox_id)
    name = Sandbox.objects.get(pk=sandbox_id).container_name
    outcome, seen = {}, threading.Event()

    def output(stream, data):
        seen.set()

    def run_it():
        request = ExecRequest(argv=("sh", "-c", "echo up; sleep 60"), exec_id="exe_cut0000", on_output=output)
        try:
            outcome["result"] = get_driver().exec(name, request)
        except errors.ApplicationError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run_it)
    thread.start()
    assert seen.wait(60)
    container = docker_client.containers.get(name)
    container.kill() if end == "kill" else container.stop(timeout=2)
    thread.join(60)
    error = outcome.get("error")
    if error is not None:
        assert error.details.get("reason") in ("sandbox_stopped", "sandboxd_failed"), error.details
    else:  # sandboxd, told to stop, ended the command and said so
        assert outcome["result"].exit_code != 0
