"""A fork bomb ends with its command: at a timeout, a kill and a destroy every process it started
dies, however fast it forks, and the sandbox answers `echo alive` soon after (issue 17, item 15).

The sandbox's pids limit is reached within a second of the bomb starting, so no new process can
start in it: whatever kills the bomb must already be running (sandboxd, PID 1) or must free slots
without starting one (a kill of a whole process group)."""

import time

import pytest

from tests import waiting

pytestmark = pytest.mark.django_db(transaction=True)

BOMB = "bomb() { bomb | bomb & }; bomb"
SETTLE = 90  # generous: the machine is shared and a bomb makes it slow


def wait_for(predicate, timeout: float = SETTLE, interval: float = 0.5):
    return waiting.wait_for(predicate, timeout=timeout, interval=interval)


def process_count(docker_client, sandbox_id: str) -> int:
    """Processes in the sandbox, as the engine sees them (works even when nothing can start inside)."""
    return len(docker_client.api.top(sandbox_id)["Processes"] or [])


def exec_body(api_client, sandbox_id: str, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    return response.status_code, response.json()


def alive(api_client, sandbox_id: str) -> bool:
    status, body = exec_body(api_client, sandbox_id, command="echo alive", timeout=20)
    return status == 200 and body["stdout"] == "alive\n"


@pytest.fixture
def sandbox(api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="python-3")["id"]
    # sandboxd is up (a command through it answers) before the baseline is taken.
    assert wait_for(lambda: alive(api_client, sandbox_id), timeout=30)
    assert wait_for(lambda: "sandboxd" in str(docker_client.api.top(sandbox_id)["Processes"]), timeout=30)
    return sandbox_id, process_count(docker_client, sandbox_id)


def assert_recovers(api_client, docker_client, sandbox_id: str, baseline: int) -> None:
    assert wait_for(lambda: process_count(docker_client, sandbox_id) <= baseline), docker_client.api.top(sandbox_id)
    time.sleep(5)  # part of what is tested: it stays recovered (nothing the bomb left respawns)
    assert alive(api_client, sandbox_id)
    assert process_count(docker_client, sandbox_id) <= baseline


def test_a_fork_bomb_ends_at_its_timeout(api_client, docker_client, sandbox):
    sandbox_id, baseline = sandbox
    status, body = exec_body(api_client, sandbox_id, command=BOMB, timeout=5)
    assert status == 200, body
    assert body["status"] == "timeout" and body["exitCode"] is None, body
    assert_recovers(api_client, docker_client, sandbox_id, baseline)


def test_a_fork_bomb_run_as_root_ends_at_its_timeout(api_client, docker_client, sandbox):
    """Root's bomb cannot take sandboxd's slots or signals either."""
    sandbox_id, baseline = sandbox
    status, body = exec_body(api_client, sandbox_id, command=BOMB, timeout=5, user="root")
    assert status == 200, body
    assert body["status"] == "timeout" and body["exitCode"] is None, body
    assert_recovers(api_client, docker_client, sandbox_id, baseline)


def test_a_fork_bomb_that_leaves_its_session_and_marker_ends_at_its_timeout(api_client, docker_client, sandbox):
    sandbox_id, baseline = sandbox
    escaped = f"env -i setsid bash -c '{BOMB}' & sleep 100"
    status, body = exec_body(api_client, sandbox_id, command=escaped, timeout=5)
    assert status == 200, body
    assert body["status"] == "timeout"
    assert_recovers(api_client, docker_client, sandbox_id, baseline)


def kill_background_bomb(api_client, docker_client, sandbox_id: str, baseline: int) -> None:
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": BOMB, "background": True}, format="json"
    )
    assert response.status_code == 202, response.content
    process_id = response.json()["processId"]
    assert wait_for(lambda: process_count(docker_client, sandbox_id) > baseline + 100, timeout=30)
    killed = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/processes/{process_id}/kill")
    assert killed.status_code == 200, killed.content

    def finished():
        listed = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/processes").json()["processes"]
        return all(p["processId"] != process_id for p in listed)

    assert wait_for(finished)
    assert_recovers(api_client, docker_client, sandbox_id, baseline)


def test_killing_a_background_fork_bomb_ends_it(api_client, docker_client, sandbox):
    kill_background_bomb(api_client, docker_client, *sandbox)


def test_destroying_a_sandbox_with_a_fork_bomb_ends_it(api_client, docker_client, sandbox):
    sandbox_id, baseline = sandbox
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": BOMB, "background": True}, format="json"
    )
    assert response.status_code == 202, response.content
    assert wait_for(lambda: process_count(docker_client, sandbox_id) > baseline + 100, timeout=30)
    deleted = api_client.delete(f"/api/v1/sandboxes/{sandbox_id}")
    assert deleted.status_code in (200, 202, 204), deleted.content

    def gone():
        return not docker_client.containers.list(all=True, filters={"name": sandbox_id})

    assert wait_for(gone)
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()["status"] in ("destroyed", "destroying")
