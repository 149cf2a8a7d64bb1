"""resource.limit_exceeded for a sandbox's own limits, with real sandboxes on the real engine: its
container OOM-killed under a small memory limit, a bounded fork bomb under the pids limit, and a
write past its disk limit (where the engine enforces one)."""

import pytest

from apps.sandboxes.models import Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import get_driver
from apps.webhooks.models import Delivery
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db

MIB = 1024**2


def limits() -> list[dict]:
    return [d.payload["data"] for d in Delivery.objects.filter(event="resource.limit_exceeded").order_by("seq")]


def exec_(api_client, sid, command, expect=200, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sid}/exec", {"command": command, **body}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def oom_kill_the_container(docker_client, sid):
    """What a memory hog does to a sandbox whose main process the kernel picks: the test makes
    PID 1 the OOM killer's first choice (as root, through the engine: a sandbox user cannot), then
    a command allocates past the container's memory limit. The kernel kills PID 1, the container
    ends, and the engine records State.OOMKilled."""
    container = docker_client.containers.get(sid)
    adjusted = container.exec_run(["sh", "-c", "echo 1000 > /proc/1/oom_score_adj"], user="root")
    assert adjusted.exit_code == 0, adjusted
    container.exec_run(["python3", "-c", "x = bytearray(512 * 1024 * 1024)"])

    def ended():
        container.reload()
        return container.status == "exited" and container.attrs["State"]

    state = wait_for(ended, timeout=30, what="the container to end")
    assert state["OOMKilled"], state


def test_a_container_oom_killed_is_told_once_by_the_call_that_finds_it(api_client, create_sandbox, hook, docker_client):
    hook(events=["resource.limit_exceeded"])
    sid = create_sandbox(template="python-3", resources={"memory": "128m"})["id"]
    oom_kill_the_container(docker_client, sid)

    refused = exec_(api_client, sid, "echo hi", expect=409)
    assert refused["error"]["code"] == "sandbox_not_running"
    assert refused["error"]["details"]["statusReason"] == "container OOM-killed"
    sandbox_reconcile()  # the row is stopped already: nothing more to tell
    [told] = limits()
    assert told["sandboxId"] == sid and told["limit"] == "memory"
    assert told["sandbox"]["id"] == sid and told["sandbox"]["status"] == "stopped"
    assert told["sandbox"]["statusReason"] == "container OOM-killed"
    assert told == {"sandboxId": sid, "limit": "memory", "sandbox": told["sandbox"]}


def test_a_container_oom_killed_is_told_by_the_reconcile_pass(create_sandbox, hook, docker_client):
    hook(events=["resource.limit_exceeded"])
    sid = create_sandbox(template="python-3", resources={"memory": "128m"})["id"]
    other = create_sandbox(template="python-3")["id"]
    oom_kill_the_container(docker_client, sid)
    docker_client.containers.get(other).kill()  # an exit that is no limit: no event

    report = sandbox_reconcile()
    assert sorted(report.exited) == sorted([sid, other])
    assert Sandbox.objects.get(pk=other).status_reason == "container exited"
    [told] = limits()
    assert (told["sandboxId"], told["limit"], told["sandbox"]["status"]) == (sid, "memory", "stopped")


def test_a_command_that_hits_the_pids_limit_is_told(api_client, create_sandbox, hook, settings):
    settings.VIBEBOX_PIDS_LIMIT = 64
    hook(events=["resource.limit_exceeded", "execution.failed", "execution.completed"])
    sid = create_sandbox(template="python-3")["id"]
    ok = exec_(api_client, sid, "for i in $(seq 5); do sleep 1 & done; wait; echo fine")
    assert ok["stdout"] == "fine\n"
    # A bounded fork bomb: 100 background sleeps where 64 processes are allowed (dash: no retries).
    bomb = ["sh", "-c", "i=0; while [ $i -lt 100 ]; do sleep 20 >/dev/null 2>&1 & i=$((i+1)); done; echo started"]
    body = exec_(api_client, sid, bomb, timeout="60s")
    assert "fork" in body["stderr"].lower(), body
    [told] = limits()
    assert told["limit"] == "pids" and told["executionId"] == body["executionId"] and told["sandbox"]["id"] == sid
    kinds = [d.event for d in Delivery.objects.order_by("seq")]
    assert kinds == ["execution.completed", "execution.failed", "resource.limit_exceeded"]


@pytest.fixture
def disk_limits_on():
    if not get_driver().engine_info().supports_disk_limit:
        pytest.skip("this engine cannot limit a container's disk size (docs/operations.md, Disk limits)")


def test_writes_past_the_disk_limit_are_told(api_client, create_sandbox, hook, disk_limits_on):
    hook(events=["resource.limit_exceeded"])
    sid = create_sandbox(template="python-3", resources={"disk": "64m"})["id"]

    upload = api_client.post(
        f"/api/v1/sandboxes/{sid}/files?path=/workspace/big.bin",
        b"\0" * (100 * MIB),
        content_type="application/octet-stream",
    )
    assert upload.status_code == 507 and upload.json()["error"]["code"] == "disk_full", upload.content
    filled = exec_(api_client, sid, "head -c 100M /dev/zero > /workspace/big && echo done", timeout="120s")
    full = ("No space left on device", "Disk quota exceeded")  # ENOSPC, or EDQUOT (btrfs qgroups)
    assert filled["exitCode"] != 0 and any(text in filled["stderr"] for text in full), filled
    exec_(api_client, sid, "rm -f /workspace/big /workspace/big.bin")

    by_upload, by_command = limits()
    assert by_upload["limit"] == "disk" and by_upload["path"] == "/workspace/big.bin"
    assert by_upload["sandbox"]["id"] == sid and by_upload["sandbox"]["resources"]["disk"] == "64m"
    assert by_command["limit"] == "disk" and by_command["executionId"] == filled["executionId"]
