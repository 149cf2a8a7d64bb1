"""A restore that cannot finish loses nothing: the snapshot is checked first, the new container is
built beside the old one, and a failure hands the sandbox back exactly as it was (real engine).

Faults are made for real behind VibeBox's back: the archive deleted or corrupted on disk, the
image removed from the engine, an archive the engine refuses half-way through the restore, and a
server that died in the middle of one (its set-aside container found by reconcile)."""

import datetime as dt
import hashlib

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from apps.sandboxes.models import Sandbox, Snapshot
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.services.snapshots import archive_path, snapshot_delete


@pytest.fixture(autouse=True)
def remove_snapshots(db):
    yield
    for snapshot in Snapshot.objects.all():
        snapshot_delete(snapshot=snapshot)


def sh(client, sandbox_id, command):
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def containers_of(docker_client, sandbox_id):
    return docker_client.containers.list(all=True, filters={"label": f"vibebox.sandbox-id={sandbox_id}"})


def snapshot_images(docker_client) -> set[str]:
    labels = ["vibebox.snapshot-id", f"vibebox.instance={django_settings.VIBEBOX_INSTANCE}"]
    return {image.id for image in docker_client.images.list(filters={"label": labels})}


def snapshot_then_change(api_client, create_sandbox):
    """A sandbox with a snapshot of `a.txt = one`, changed since to `a.txt = two` + `new.txt`."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    sh(api_client, sandbox_id, "echo one > a.txt")
    created = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json")
    assert created.status_code == 201, created.content
    sh(api_client, sandbox_id, "echo two > a.txt && echo kept > new.txt")
    return sandbox_id, Snapshot.objects.get(pk=created.json()["id"])


def restore(api_client, sandbox_id, snapshot):
    return api_client.post(f"/api/v1/sandboxes/{sandbox_id}/restore", {"snapshot": snapshot.id}, format="json")


def assert_untouched(api_client, docker_client, sandbox_id, container_id, status="running"):
    body = api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()
    assert body["status"] == status, body
    [container] = containers_of(docker_client, sandbox_id)  # nothing new left beside it
    assert container.id == container_id and container.name == sandbox_id
    if status == "paused":
        api_client.post(f"/api/v1/sandboxes/{sandbox_id}/resume")
    if status == "stopped":
        api_client.post(f"/api/v1/sandboxes/{sandbox_id}/start")
    assert sh(api_client, sandbox_id, "cat a.txt new.txt")["stdout"] == "two\nkept\n"


def corrupt(snapshot: Snapshot, *, record: bool) -> None:
    """Overwrites the archive's second tar header with garbage (same size). With `record`, the row's
    digest is made to match, as if the damage happened before the digest was taken: only the engine
    finds out, half-way through the restore."""
    path = archive_path(snapshot)
    data = bytearray(path.read_bytes())
    data[512:1024] = b"\xff" * 512
    path.write_bytes(bytes(data))
    if record:
        Snapshot.objects.filter(pk=snapshot.pk).update(workspace_sha256=hashlib.sha256(bytes(data)).hexdigest())
        snapshot.refresh_from_db()


def test_restore_with_the_archive_deleted_keeps_the_sandbox(api_client, create_sandbox, docker_client):
    sandbox_id, snapshot = snapshot_then_change(api_client, create_sandbox)
    container_id = docker_client.containers.get(sandbox_id).id
    archive_path(snapshot).unlink()
    answer = restore(api_client, sandbox_id, snapshot)
    assert answer.status_code == 409, answer.content
    assert answer.json()["error"]["code"] == "snapshot_unusable"
    assert answer.json()["error"]["details"]["reason"] == "archive_missing"
    assert_untouched(api_client, docker_client, sandbox_id, container_id)


def test_restore_with_the_image_removed_keeps_the_sandbox(api_client, create_sandbox, docker_client):
    sandbox_id, snapshot = snapshot_then_change(api_client, create_sandbox)
    container_id = docker_client.containers.get(sandbox_id).id
    docker_client.images.remove(snapshot.image, force=True)
    answer = restore(api_client, sandbox_id, snapshot)
    assert answer.status_code == 409, answer.content
    assert answer.json()["error"]["details"] == {"snapshot": snapshot.id, "reason": "image_missing"}
    assert_untouched(api_client, docker_client, sandbox_id, container_id)

    # A new sandbox from it is refused the same way, and nothing of one is left.
    before = Sandbox.objects.count()
    made = api_client.post("/api/v1/sandboxes", {"snapshot": snapshot.id}, format="json")
    assert made.status_code == 409 and made.json()["error"]["code"] == "snapshot_unusable"
    assert Sandbox.objects.count() == before


def test_restore_with_a_damaged_archive_keeps_the_sandbox(api_client, create_sandbox, docker_client):
    sandbox_id, snapshot = snapshot_then_change(api_client, create_sandbox)
    container_id = docker_client.containers.get(sandbox_id).id
    corrupt(snapshot, record=False)
    answer = restore(api_client, sandbox_id, snapshot)
    assert answer.status_code == 409, answer.content
    assert answer.json()["error"]["details"]["reason"] == "archive_damaged"
    assert_untouched(api_client, docker_client, sandbox_id, container_id)


@pytest.mark.parametrize("state", ["running", "paused", "stopped"])
def test_a_restore_failing_half_way_is_rolled_back(api_client, create_sandbox, docker_client, state):
    sandbox_id, snapshot = snapshot_then_change(api_client, create_sandbox)
    if state != "running":
        action = "pause" if state == "paused" else "stop"
        assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/{action}").status_code == 200
    container_id = docker_client.containers.get(sandbox_id).id
    corrupt(snapshot, record=True)  # passes the check; the engine refuses it while writing the workspace
    answer = restore(api_client, sandbox_id, snapshot)
    assert answer.status_code == 502, answer.content
    assert answer.json()["error"]["code"] == "runtime_error"
    assert docker_client.containers.get(sandbox_id).status == {"stopped": "exited"}.get(state, state)
    assert_untouched(api_client, docker_client, sandbox_id, container_id, status=state)


def test_reconcile_finishes_a_restore_whose_server_died(api_client, create_sandbox, docker_client):
    """The server stopped after setting the old container aside: reconcile gives it its name back."""
    sandbox_id, _ = snapshot_then_change(api_client, create_sandbox)
    container = docker_client.containers.get(sandbox_id)
    container.rename(f"{sandbox_id}-replaced")
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Sandbox.objects.filter(pk=sandbox_id).update(status="starting", updated_at=long_ago)
    report = sandbox_reconcile()
    assert sandbox_id in report.finished
    assert_untouched(api_client, docker_client, sandbox_id, container.id)


def test_restore_with_a_workspace_volume_keeps_the_new_one(api_client, create_sandbox, docker_client, settings):
    """Where there is no disk limit the workspace is a volume; volumes cannot be renamed, so the
    restored one has a new name, which the row records and reconcile and destroy follow."""
    settings.VIBEBOX_DEFAULT_DISK = 0
    sandbox_id, snapshot = snapshot_then_change(api_client, create_sandbox)
    assert docker_client.volumes.get(f"{sandbox_id}-workspace")
    answer = restore(api_client, sandbox_id, snapshot)
    assert answer.status_code == 200, answer.content
    volume = Sandbox.objects.get(pk=sandbox_id).workspace_volume
    assert volume.startswith(f"{sandbox_id}-workspace-")
    sandbox_reconcile()  # neither the new volume nor the container are taken for orphans
    volumes = {v.name for v in docker_client.volumes.list(filters={"name": sandbox_id})}
    assert volumes == {volume}  # the old workspace went with the old container
    assert sh(api_client, sandbox_id, "cat a.txt; ls")["stdout"] == "one\na.txt\n"
    assert api_client.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code in (200, 204)
    assert not docker_client.volumes.list(filters={"name": sandbox_id})


def test_engine_lost_during_a_snapshot_leaves_nothing_half_made(
    api_client, create_sandbox, docker_client, engine_fault
):
    sandbox_id = create_sandbox(template="python-3")["id"]
    sh(api_client, sandbox_id, "echo one > a.txt")
    images_before = snapshot_images(docker_client)
    for step in (r"POST /commit", r"GET /containers/[^/]+/archive"):  # before the image, then before the archive
        tripped = engine_fault.fail_on(step)
        answer = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json")
        assert tripped.is_set() and answer.status_code in (502, 503), answer.content
        assert answer.json()["error"]["code"] in ("runtime_error", "runtime_unavailable")
        assert not Snapshot.objects.exists()
        assert docker_client.containers.get(sandbox_id).status == "running"  # thawed again
        assert snapshot_images(docker_client) == images_before
        assert not list(archive_path(Snapshot(id="x")).parent.glob("*.part"))
    assert sh(api_client, sandbox_id, "cat a.txt")["stdout"] == "one\n"


def test_engine_lost_during_a_restore_is_rolled_back_now_or_by_reconcile(
    api_client, create_sandbox, docker_client, engine_fault
):
    sandbox_id, snapshot = snapshot_then_change(api_client, create_sandbox)
    container_id = docker_client.containers.get(sandbox_id).id

    # The new container's start fails; the engine answers again for the roll-back.
    tripped = engine_fault.fail_on(r"POST /containers/[^/]+/start")
    answer = restore(api_client, sandbox_id, snapshot)
    assert tripped.is_set() and answer.status_code in (502, 503), answer.content
    assert_untouched(api_client, docker_client, sandbox_id, container_id)

    # The engine goes away at that step and stays away: the roll-back must wait for it.
    tripped = engine_fault.fail_on(r"POST /containers/[^/]+/start", then="refuse")
    answer = restore(api_client, sandbox_id, snapshot)
    assert tripped.is_set() and answer.status_code in (502, 503), answer.content
    row = Sandbox.objects.get(pk=sandbox_id)
    assert row.status == "starting" and "rolling back" in row.status_reason
    assert docker_client.containers.get(f"{sandbox_id}-replaced").id == container_id  # kept aside
    engine_fault.restore()
    Sandbox.objects.filter(pk=sandbox_id).update(updated_at=timezone.now() - dt.timedelta(hours=1))  # stuck
    assert sandbox_id in sandbox_reconcile().finished
    assert_untouched(api_client, docker_client, sandbox_id, container_id)
