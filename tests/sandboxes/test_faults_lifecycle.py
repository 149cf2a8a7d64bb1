"""Stop, restart, pause/resume and destroy when a step fails for real (issue 18): the container is
killed or removed behind VibeBox's back, or the engine refuses, resets or loses an answer
(tests/faults.py). Each time the answer is a clean 4xx/5xx with a stable code, the row goes back to
where it was, follows the container (`stopped`, `error` with a reason) or finishes the step, no
container or volume of the sandbox is left behind once it is destroyed, and /workspace keeps what it
held whenever the container still exists."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.sandboxes.models import Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile

NOTE = b"kept across the fault\n"
UNDO = {"stop": "start", "pause": "resume"}


def url(sandbox_id: str, action: str = "") -> str:
    return f"/api/v1/sandboxes/{sandbox_id}" + (f"/{action}" if action else "")


@pytest.fixture
def sandbox_id(create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="python-3")["id"]
    write = docker_client.containers.get(sandbox_id).exec_run(["sh", "-c", f"printf '{NOTE.decode()}' > /workspace/n"])
    assert write.exit_code == 0, write.output
    return sandbox_id


def row(sandbox_id: str) -> Sandbox:
    return Sandbox.objects.get(pk=sandbox_id)


def note(docker_client, sandbox_id: str) -> bytes:
    result = docker_client.containers.get(sandbox_id).exec_run(["cat", "/workspace/n"])
    assert result.exit_code == 0, result.output
    return result.output


def engine_state(docker_client, sandbox_id: str) -> str:
    return docker_client.api.inspect_container(sandbox_id)["State"]["Status"]


def assert_conflict(response, status: str, reason: str) -> None:
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "sandbox_state_conflict"
    assert error["details"]["status"] == status and reason in error["details"]["statusReason"], error


def assert_destroys_cleanly(api_client, docker_client, sandbox_id: str) -> None:
    assert api_client.delete(url(sandbox_id)).status_code == 204
    assert row(sandbox_id).status == "destroyed"
    assert not docker_client.containers.list(all=True, filters={"name": sandbox_id})
    assert not docker_client.volumes.list(filters={"name": sandbox_id})


# ---- the container killed or removed behind VibeBox's back ----


@pytest.mark.parametrize("action", ["stop", "restart", "pause"])
def test_a_removed_container_moves_the_row_to_error(action, api_client, sandbox_id, docker_client):
    docker_client.api.remove_container(sandbox_id, force=True)
    assert_conflict(api_client.post(url(sandbox_id, action)), "error", "container not found")
    sandbox = row(sandbox_id)
    assert sandbox.status == "error" and sandbox.status_reason == "container not found"
    assert api_client.post(url(sandbox_id, action)).json()["error"]["code"] == "sandbox_state_conflict"
    assert_destroys_cleanly(api_client, docker_client, sandbox_id)


def test_resume_of_a_removed_container_moves_the_row_to_error(api_client, sandbox_id, docker_client):
    assert api_client.post(url(sandbox_id, "pause")).json()["status"] == "paused"
    docker_client.api.remove_container(sandbox_id, force=True)
    assert_conflict(api_client.post(url(sandbox_id, "resume")), "error", "container not found")
    sandbox = row(sandbox_id)
    assert sandbox.status == "error" and sandbox.paused_at is not None
    assert_destroys_cleanly(api_client, docker_client, sandbox_id)


def test_pause_of_a_killed_container_moves_the_row_to_stopped(api_client, sandbox_id, docker_client):
    docker_client.api.kill(sandbox_id)
    assert_conflict(api_client.post(url(sandbox_id, "pause")), "stopped", "exited")
    sandbox = row(sandbox_id)
    assert sandbox.status == "stopped" and sandbox.paused_at is None and sandbox.stopped_at
    assert "exited" in sandbox.status_reason
    # it starts again, with its files
    assert api_client.post(url(sandbox_id, "start")).json()["status"] == "running"
    assert row(sandbox_id).status_reason == ""
    assert note(docker_client, sandbox_id) == NOTE


def test_resume_of_a_killed_paused_container_moves_the_row_to_stopped(api_client, sandbox_id, docker_client):
    assert api_client.post(url(sandbox_id, "pause")).json()["status"] == "paused"
    docker_client.api.kill(sandbox_id)  # the engine unfreezes it to deliver SIGKILL
    assert engine_state(docker_client, sandbox_id) == "exited"
    assert_conflict(api_client.post(url(sandbox_id, "resume")), "stopped", "exited")
    assert row(sandbox_id).status == "stopped"
    assert api_client.post(url(sandbox_id, "start")).json()["status"] == "running"
    assert note(docker_client, sandbox_id) == NOTE


@pytest.mark.parametrize("action, status", [("stop", "stopped"), ("restart", "running")])
def test_stop_and_restart_of_a_killed_container_succeed(action, status, api_client, sandbox_id, docker_client):
    docker_client.api.kill(sandbox_id)
    response = api_client.post(url(sandbox_id, action))
    assert response.status_code == 200 and response.json()["status"] == status, response.content
    if status == "stopped":
        assert api_client.post(url(sandbox_id, "start")).status_code == 200
    assert note(docker_client, sandbox_id) == NOTE


def test_destroy_of_a_removed_container_finishes(api_client, sandbox_id, docker_client):
    docker_client.api.remove_container(sandbox_id, force=True)
    assert_destroys_cleanly(api_client, docker_client, sandbox_id)


# ---- the engine refuses, resets, or loses its answer ----


@pytest.mark.parametrize("action, before", [("stop", "running"), ("restart", "running"), ("pause", "running")])
def test_an_action_while_the_engine_refuses_changes_nothing(
    action,
    before,
    sandbox_id,
    engine_fault,
    api_client,
    docker_client,
):
    engine_fault.refuse()
    response = api_client.post(url(sandbox_id, action))
    assert response.status_code == 503 and response.json()["error"]["code"] == "runtime_unavailable", response.content
    sandbox = row(sandbox_id)
    assert sandbox.status == before and sandbox.paused_at is None
    assert engine_state(docker_client, sandbox_id) == "running"
    engine_fault.restore()
    assert api_client.post(url(sandbox_id, action)).status_code == 200
    if action in UNDO:
        assert api_client.post(url(sandbox_id, UNDO[action])).status_code == 200
    assert note(docker_client, sandbox_id) == NOTE


def test_resume_while_the_engine_resets_changes_nothing(sandbox_id, engine_fault, api_client, docker_client):
    assert api_client.post(url(sandbox_id, "pause")).json()["status"] == "paused"
    paused_at = row(sandbox_id).paused_at
    engine_fault.reset()
    response = api_client.post(url(sandbox_id, "resume"))
    assert response.status_code == 503 and response.json()["error"]["code"] == "runtime_unavailable", response.content
    sandbox = row(sandbox_id)
    assert sandbox.status == "paused" and sandbox.paused_at == paused_at
    assert engine_state(docker_client, sandbox_id) == "paused"
    engine_fault.restore()
    assert api_client.post(url(sandbox_id, "resume")).json()["status"] == "running"
    assert note(docker_client, sandbox_id) == NOTE


@pytest.mark.parametrize(
    "action, request_path, status, engine",
    [
        ("stop", "stop", "stopped", "exited"),
        ("pause", "pause", "paused", "paused"),
    ],
)
def test_an_action_whose_answer_is_lost_lands_where_the_container_is(
    action,
    request_path,
    status,
    engine,
    sandbox_id,
    engine_fault,
    api_client,
    docker_client,
):
    """The engine did it and the answer never came: the row follows the container, not the error."""
    tripped = engine_fault.fail_on(rf"^POST /containers/{sandbox_id}/{request_path}(\?|$)", when="after")
    response = api_client.post(url(sandbox_id, action))
    assert tripped.is_set()
    assert response.status_code == 200 and response.json()["status"] == status, response.content
    assert row(sandbox_id).status == status and engine_state(docker_client, sandbox_id) == engine
    assert api_client.post(url(sandbox_id, "start" if action == "stop" else "resume")).status_code == 200
    assert note(docker_client, sandbox_id) == NOTE


def test_resume_whose_answer_is_lost_lands_running(sandbox_id, engine_fault, api_client, docker_client):
    assert api_client.post(url(sandbox_id, "pause")).json()["status"] == "paused"
    tripped = engine_fault.fail_on(rf"^POST /containers/{sandbox_id}/unpause$", when="after")
    response = api_client.post(url(sandbox_id, "resume"))
    assert tripped.is_set()
    assert response.status_code == 200 and response.json()["status"] == "running", response.content
    assert row(sandbox_id).paused_at is None and engine_state(docker_client, sandbox_id) == "running"


def test_destroy_while_the_engine_refuses_is_finished_by_a_retry(
    sandbox_id,
    engine_fault,
    api_client,
    docker_client,
):
    """The row is never `destroyed` while its container exists: it stays `destroying`, and a
    retried DELETE finishes the job."""
    engine_fault.refuse()
    response = api_client.delete(url(sandbox_id))
    assert response.status_code == 503 and response.json()["error"]["code"] == "runtime_unavailable", response.content
    assert row(sandbox_id).status == "destroying"
    assert engine_state(docker_client, sandbox_id) == "running"
    engine_fault.restore()
    assert_destroys_cleanly(api_client, docker_client, sandbox_id)


def test_destroy_whose_engine_fails_midway_is_finished_by_reconcile(
    sandbox_id,
    engine_fault,
    api_client,
    docker_client,
):
    """The removal of the container reaches the engine but its answer is lost, and the engine stays
    down: the row stays `destroying` until the next reconcile pass (once the engine is back)
    finishes it."""
    engine_fault.fail_on(rf"^DELETE /containers/{sandbox_id}", when="after", then="refuse")
    response = api_client.delete(url(sandbox_id))
    assert response.status_code == 503 and response.json()["error"]["code"] == "runtime_unavailable", response.content
    assert row(sandbox_id).status == "destroying"
    engine_fault.restore()
    later = timezone.now() + dt.timedelta(seconds=django_settings.VIBEBOX_STUCK_AFTER + 1)
    report = sandbox_reconcile(now=later)
    assert sandbox_id in report.finished
    assert row(sandbox_id).status == "destroyed"
    assert not docker_client.containers.list(all=True, filters={"name": sandbox_id})
    assert not docker_client.volumes.list(filters={"name": sandbox_id})


@pytest.mark.engine_timeout(5)
def test_stop_while_the_engine_hangs_changes_nothing(sandbox_id, engine_fault, api_client, docker_client):
    """The engine takes requests and never answers: the driver's timeout (5 s here) ends the call."""
    engine_fault.hang()
    response = api_client.post(url(sandbox_id, "stop"))
    assert response.status_code == 503 and response.json()["error"]["code"] == "runtime_unavailable", response.content
    assert row(sandbox_id).status == "running"
    engine_fault.restore()
    assert engine_state(docker_client, sandbox_id) == "running"
    assert note(docker_client, sandbox_id) == NOTE


@pytest.fixture
def no_default_disk(settings):
    """Set up before engine_fault, so its settings override is undone after the fixture's."""
    settings.VIBEBOX_DEFAULT_DISK = None


def test_destroy_whose_volume_removal_fails_is_finished_by_a_retry(
    no_default_disk, create_sandbox, engine_fault, api_client, docker_client
):
    """Without a disk limit the workspace is a volume: the container goes, the volume's removal
    fails, and the row stays `destroying` until a retry removes the volume too."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    volume = f"{sandbox_id}-workspace"
    assert docker_client.volumes.get(volume)
    tripped = engine_fault.fail_on(rf"^DELETE /volumes/{volume}")
    response = api_client.delete(url(sandbox_id))
    assert tripped.is_set()
    assert response.status_code == 503 and response.json()["error"]["code"] == "runtime_unavailable", response.content
    assert row(sandbox_id).status == "destroying"
    assert docker_client.volumes.get(volume)  # its data is still there
    assert_destroys_cleanly(api_client, docker_client, sandbox_id)
