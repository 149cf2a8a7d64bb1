"""Pause and resume against the real engine: frozen processes keep their memory, autoResume,
auto-pause on idle, pauseStopsTimeout, and ephemeral sandboxes dying with their API key."""

import datetime as dt
import time

from django.utils import timezone

from apps.sandboxes.models import Execution, Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from tests.waiting import wait_for

COUNTER = (
    "import os, time\n"
    "n = 0\n"
    "while True:\n"
    "    n += 1\n"
    "    open('/workspace/c.tmp', 'w').write(f'{os.getpid()} {n}')\n"
    "    os.replace('/workspace/c.tmp', '/workspace/c')\n"
    "    time.sleep(0.05)\n"
)


def read_counter(api_client, sandbox_id) -> tuple[int, int]:
    body = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "cat /workspace/c"}, format="json")
    pid, count = body.json()["stdout"].split()
    return int(pid), int(count)


def test_pause_freezes_a_process_and_keeps_its_memory(transactional_db, api_client, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    started = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec",
        {"command": ["python3", "-c", COUNTER], "background": True},
        format="json",
    )
    assert started.status_code == 202
    exists = {"command": "test -f /workspace/c"}
    wait_for(
        lambda: api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", exists, format="json").json()["exitCode"] == 0,
        timeout=60,
        what="the counter to start",
    )

    # The counter ticks at most every 0.05 s: in the time it was not paused it can count no more
    # than that time allows (a busy machine only makes it count less), while the pause (kept long
    # against the time the calls took) would have let a running process count far more.
    begun = time.monotonic()
    pid, before = read_counter(api_client, sandbox_id)
    paused = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause").json()
    assert paused["status"] == "paused" and paused["pausedAt"]
    paused_at = time.monotonic()
    time.sleep(max(2, 2 * (paused_at - begun)))  # part of what is tested: time passes while frozen
    resuming = time.monotonic()
    resumed = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/resume").json()
    assert resumed["status"] == "running" and resumed["pausedAt"] is None
    same_pid, after = read_counter(api_client, sandbox_id)
    running = (paused_at - begun) + (time.monotonic() - resuming)
    assert same_pid == pid  # the same process, not a restarted one
    # It counted on from its own memory and was frozen meanwhile.
    assert before <= after <= before + running / 0.05 + 2, (before, after, running)
    wait_for(lambda: read_counter(api_client, sandbox_id)[1] > after, timeout=30, what="the counter to run again")


def test_paused_sandbox_refuses_commands_and_files_unless_auto_resume(api_client, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause")
    upload = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/files?path=a.txt", data=b"x", content_type="application/octet-stream"
    )
    assert upload.status_code == 409 and upload.json()["error"]["code"] == "sandbox_paused"
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files/a.txt").json()["error"]["code"] == "sandbox_paused"
    listing = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files?path=/workspace")
    assert listing.json()["error"]["code"] == "sandbox_paused"
    upload = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/files?path=a.txt&autoResume=true",
        data=b"x",
        content_type="application/octet-stream",
    )
    assert upload.status_code == 201
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()["status"] == "running"

    # The sandbox's own autoResume setting does the same for every call.
    patched = api_client.patch(f"/api/v1/sandboxes/{sandbox_id}", {"autoResume": True}, format="json").json()
    assert patched["autoResume"] is True
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause")
    body = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "cat a.txt"}, format="json").json()
    assert body["stdout"] == "x"


def test_auto_pause_on_idle(api_client, create_sandbox):
    idle = create_sandbox(template="python-3", autoPause="10s")
    busy = create_sandbox(template="python-3", autoPause="10s")
    always_on = create_sandbox(template="python-3")
    assert idle["autoPause"] == 10
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    Sandbox.objects.filter(pk__in=[idle["id"], busy["id"], always_on["id"]]).update(last_activity_at=long_ago)
    Execution.objects.create(sandbox_id=busy["id"], kind="exec", command="sleep 100")  # a command still runs
    report = sandbox_reconcile()
    assert report.auto_paused == [idle["id"]]
    assert Sandbox.objects.get(pk=idle["id"]).status == "paused"
    assert Sandbox.objects.get(pk=busy["id"]).status == "running"
    assert Sandbox.objects.get(pk=always_on["id"]).status == "running"

    # Activity counts: a recently used sandbox stays up.
    api_client.post(f"/api/v1/sandboxes/{idle['id']}/resume")
    api_client.post(f"/api/v1/sandboxes/{idle['id']}/exec", {"command": "true"}, format="json")
    assert sandbox_reconcile().auto_paused == []
    # Turned off by PATCH.
    api_client.patch(f"/api/v1/sandboxes/{idle['id']}", {"autoPause": None}, format="json")
    Sandbox.objects.filter(pk=idle["id"]).update(last_activity_at=long_ago)
    assert sandbox_reconcile().auto_paused == []


def test_auto_pause_must_be_sensible(api_client, create_sandbox):
    body = create_sandbox(template="python-3", expect=400, autoPause="1s")
    assert body["error"]["code"] == "invalid_duration"


def test_pause_stops_timeout(api_client, create_sandbox):
    frozen = create_sandbox(template="python-3", timeout="1h", pauseStopsTimeout=True)
    ticking = create_sandbox(template="python-3", timeout="1h")
    for sandbox in (frozen, ticking):
        api_client.post(f"/api/v1/sandboxes/{sandbox['id']}/pause")
    past = timezone.now() - dt.timedelta(minutes=1)
    Sandbox.objects.filter(pk__in=[frozen["id"], ticking["id"]]).update(expires_at=past)
    report = sandbox_reconcile()
    assert report.expired == [ticking["id"]]  # a paused sandbox's TTL keeps counting by default

    # While paused, time does not count: resume moves the expiry by the time spent paused.
    expires = timezone.now() + dt.timedelta(minutes=10)
    Sandbox.objects.filter(pk=frozen["id"]).update(
        expires_at=expires, paused_at=timezone.now() - dt.timedelta(minutes=30)
    )
    resumed = api_client.post(f"/api/v1/sandboxes/{frozen['id']}/resume").json()
    moved = dt.datetime.fromisoformat(resumed["expiresAt"].replace("Z", "+00:00")) - expires
    assert dt.timedelta(minutes=29) < moved < dt.timedelta(minutes=31)


def test_ephemeral_sandboxes_die_with_their_key(
    owner, make_key, client_for, create_sandbox, django_capture_on_commit_callbacks
):
    key, secret = make_key(owner)
    creator = client_for(owner)
    creator.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    ephemeral = create_sandbox(client=creator, template="python-3", ephemeral=True)
    lasting = create_sandbox(client=creator, template="python-3")
    admin = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.delete(f"/api/v1/keys/{key.id}").status_code == 204
    assert Sandbox.objects.get(pk=ephemeral["id"]).status == "destroyed"
    assert Sandbox.objects.get(pk=lasting["id"]).status == "running"
