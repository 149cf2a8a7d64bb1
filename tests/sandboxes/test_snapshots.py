"""Snapshots against the real engine: round trip in place, new sandboxes from a snapshot, access."""

import pytest

from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes.models import Snapshot
from apps.sandboxes.services.snapshots import archive_path, snapshot_delete


@pytest.fixture(autouse=True)
def remove_snapshots(db):
    yield
    for snapshot in Snapshot.objects.all():
        snapshot_delete(snapshot=snapshot)


def sh(client, sandbox_id, command, user=None):
    body = {"command": command, **({"user": user} if user else {})}
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_snapshot_and_restore_in_place(api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="python-3", env={"KEEP": "me"})["id"]
    sh(api_client, sandbox_id, "echo one > a.txt && mkdir -p deep/er && echo d > deep/er/d.txt")
    sh(api_client, sandbox_id, "echo outside > /etc/vibebox-marker", user="root")
    created = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {"name": "before-deploy"}, format="json")
    assert created.status_code == 201, created.content
    snap = created.json()
    assert snap["name"] == "before-deploy" and snap["sandboxId"] == sandbox_id and snap["template"] == "python-3.13"
    assert snap["workspaceBytes"] > 0 and snap["size"] == snap["imageBytes"] + snap["workspaceBytes"]
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()["status"] == "running"  # thawed

    sh(api_client, sandbox_id, "echo two > a.txt && rm -r deep && touch c.txt")
    sh(api_client, sandbox_id, "rm /etc/vibebox-marker", user="root")
    restored = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/restore", {"snapshot": snap["id"]}, format="json")
    assert restored.status_code == 200, restored.content
    assert restored.json()["status"] == "running" and restored.json()["id"] == sandbox_id
    out = sh(api_client, sandbox_id, "cat a.txt deep/er/d.txt /etc/vibebox-marker; ls; stat -c %U a.txt; echo $KEEP")
    assert out["stdout"] == "one\nd\noutside\na.txt\ndeep\nsandbox\nme\n"
    container = docker_client.containers.get(sandbox_id)
    assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]  # as hardened as before


def test_new_sandbox_from_a_snapshot(api_client, create_sandbox):
    source = create_sandbox(template="python-3")["id"]
    sh(api_client, source, "echo saved > s.txt && pip --version > /dev/null")
    api_client.post(f"/api/v1/sandboxes/{source}/stop")
    snap = api_client.post(f"/api/v1/sandboxes/{source}/snapshots", {}, format="json").json()
    assert api_client.get(f"/api/v1/sandboxes/{source}").json()["status"] == "stopped"

    copy = create_sandbox(snapshot=snap["id"], name="from-snap")
    assert copy["template"] == "python-3.13" and copy["status"] == "running" and copy["warm"] is False
    assert sh(api_client, copy["id"], "cat s.txt")["stdout"] == "saved\n"
    cold = create_sandbox(snapshot=snap["id"], autoStart=False)
    assert cold["status"] == "stopped"
    api_client.post(f"/api/v1/sandboxes/{cold['id']}/start")
    assert sh(api_client, cold["id"], "cat s.txt")["stdout"] == "saved\n"
    mismatch = create_sandbox(expect=400, snapshot=snap["id"], template="node-20")
    assert mismatch["error"]["code"] == "validation_error"


def test_restore_keeps_a_stopped_sandbox_stopped_and_snapshots_a_paused_one(api_client, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    sh(api_client, sandbox_id, "echo v1 > v.txt")
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause")
    snap = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json").json()
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()["status"] == "paused"
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/resume")
    sh(api_client, sandbox_id, "echo v2 > v.txt")
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop")
    restored = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/restore", {"snapshot": snap["id"]}, format="json")
    assert restored.json()["status"] == "stopped"
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/start")
    assert sh(api_client, sandbox_id, "cat v.txt")["stdout"] == "v1\n"


def test_list_get_delete(api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="python-3")["id"]
    snap = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {"name": "s1"}, format="json").json()
    assert [s["id"] for s in api_client.get(f"/api/v1/sandboxes/{sandbox_id}/snapshots").json()["results"]] == [
        snap["id"]
    ]
    assert [s["id"] for s in api_client.get("/api/v1/snapshots").json()["results"]] == [snap["id"]]
    assert api_client.get(f"/api/v1/snapshots/{snap['id']}").json()["name"] == "s1"
    snapshot = Snapshot.objects.get(pk=snap["id"])
    assert archive_path(snapshot).exists()
    assert docker_client.images.get(snapshot.image)
    # A snapshot outlives its sandbox.
    assert api_client.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code == 204
    assert api_client.get(f"/api/v1/snapshots/{snap['id']}").json()["sandboxId"] == sandbox_id
    assert api_client.delete(f"/api/v1/snapshots/{snap['id']}").status_code == 204
    assert not archive_path(snapshot).exists()
    assert not docker_client.images.list(name=snapshot.image.split(":")[0])
    assert api_client.get(f"/api/v1/snapshots/{snap['id']}").status_code == 404


def test_access(api_client, create_sandbox, outsider_client, client, owner, client_for):
    sandbox_id = create_sandbox(template="python-3")["id"]
    snap = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json").json()
    for response in (
        outsider_client.get(f"/api/v1/snapshots/{snap['id']}"),
        outsider_client.delete(f"/api/v1/snapshots/{snap['id']}"),
        outsider_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json"),
        outsider_client.get(f"/api/v1/sandboxes/{sandbox_id}/snapshots"),
        outsider_client.post("/api/v1/sandboxes", {"snapshot": snap["id"]}, format="json"),
    ):
        assert response.status_code == 404, response.content
    assert outsider_client.get("/api/v1/snapshots").json()["results"] == []
    assert client.get("/api/v1/snapshots").status_code == 401
    assert client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json").status_code == 401
    reader = client_for(owner, [SANDBOXES_READ])
    assert reader.get(f"/api/v1/snapshots/{snap['id']}").status_code == 200
    denied = reader.post(f"/api/v1/sandboxes/{sandbox_id}/restore", {"snapshot": snap["id"]}, format="json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
    assert reader.delete(f"/api/v1/snapshots/{snap['id']}").status_code == 403
    unknown = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/restore", {"snapshot": "snap_nope"}, format="json")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "snapshot_not_found"
    bad = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {"label": "x"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_field"


def test_reconcile_removes_snapshot_images_whose_row_is_gone(api_client, create_sandbox, docker_client):
    import datetime as dt

    from django.utils import timezone

    from apps.sandboxes.reconcile import sandbox_reconcile

    sandbox_id = create_sandbox(template="python-3")["id"]
    kept = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json").json()
    lost = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json").json()
    lost_image = Snapshot.objects.get(pk=lost["id"]).image
    Snapshot.objects.filter(pk=lost["id"]).delete()  # as if the database lost it
    assert lost_image not in sandbox_reconcile().snapshot_images_removed  # too recent: may be in the making
    later = timezone.now() + dt.timedelta(minutes=10)
    assert sandbox_reconcile(now=later).snapshot_images_removed == [lost_image]
    assert not docker_client.images.list(name=lost_image)
    assert docker_client.images.list(name=Snapshot.objects.get(pk=kept["id"]).image)
