"""The outbox for pause, resume and file uploads: the event's delivery is written in the
transaction that makes the change, so a failure before that transaction commits leaves no
delivery (and no change), and the normal path writes exactly one.

The failure is real, not simulated in our code: a receiver of `sandbox_event` connected after the
webhooks app's raises once the delivery row is written, which is what any error between the
delivery and the commit (a crash, a database error) does to that transaction."""

import contextlib
import io

import pytest

from apps.audit.models import AuditEntry
from apps.sandboxes.models import Sandbox
from apps.sandboxes.services.files import file_upload
from apps.sandboxes.services.lifecycle import sandbox_pause, sandbox_resume
from apps.sandboxes.services.snapshots import snapshot_create
from apps.sandboxes.signals import sandbox_event
from apps.webhooks.models import Delivery

pytestmark = pytest.mark.django_db


class Boom(Exception):
    pass


@contextlib.contextmanager
def failing_after(kind: str):
    """Makes the publishing of `kind` fail after the webhooks' receiver wrote its deliveries."""

    def explode(sender, type, **kwargs):
        if type == kind:
            raise Boom(kind)

    sandbox_event.connect(explode, weak=False, dispatch_uid="tests.outbox.explode")
    try:
        yield
    finally:
        sandbox_event.disconnect(dispatch_uid="tests.outbox.explode")


def deliveries(kind: str) -> int:
    return Delivery.objects.filter(event=kind).count()


def test_pause_and_resume_write_one_delivery_each_or_none_with_a_failed_commit(create_sandbox, hook):
    hook(events=["sandbox.paused", "sandbox.resumed"])
    sandbox = Sandbox.objects.get(pk=create_sandbox()["id"])

    with failing_after("sandbox.paused"), pytest.raises(Boom):
        sandbox_pause(sandbox=sandbox)
    assert deliveries("sandbox.paused") == 0
    sandbox.refresh_from_db()
    assert sandbox.status == "paused"  # claimed (and frozen by the engine) before the event's transaction

    sandbox_resume(sandbox=sandbox)
    assert sandbox.status == "running" and deliveries("sandbox.resumed") == 1
    sandbox_pause(sandbox=sandbox)
    assert sandbox.status == "paused" and deliveries("sandbox.paused") == 1

    with failing_after("sandbox.resumed"), pytest.raises(Boom):
        sandbox_resume(sandbox=sandbox)
    assert deliveries("sandbox.resumed") == 1  # still only the first
    sandbox.refresh_from_db()
    assert sandbox.status == "running"  # claimed, and the container unfrozen, before the event's transaction

    [paused] = Delivery.objects.filter(event="sandbox.paused")
    assert paused.payload["data"]["id"] == sandbox.id and paused.payload["data"]["status"] == "paused"


def test_a_file_upload_writes_one_delivery_with_its_audit_entry_or_neither(create_sandbox, hook):
    hook(events=["file.uploaded"])
    sandbox = Sandbox.objects.get(pk=create_sandbox()["id"])

    with failing_after("file.uploaded"), pytest.raises(Boom):
        file_upload(sandbox=sandbox, path="lost.txt", fileobj=io.BytesIO(b"lost"), size=4)
    assert deliveries("file.uploaded") == 0
    assert not AuditEntry.objects.filter(action="file.written").exists()

    file_upload(sandbox=sandbox, path="kept.txt", fileobj=io.BytesIO(b"kept"), size=4)
    [delivery] = Delivery.objects.filter(event="file.uploaded")
    assert delivery.payload["data"] == {"sandboxId": sandbox.id, "path": "/workspace/kept.txt", "size": 4}
    assert AuditEntry.objects.filter(action="file.written").count() == 1


def test_a_snapshot_writes_its_delivery_with_its_row_or_neither(api_client, create_sandbox, hook):
    hook(events=["snapshot.created"])
    sid = create_sandbox()["id"]
    sandbox = Sandbox.objects.get(pk=sid)

    with failing_after("sandbox.snapshotted"), pytest.raises(Boom):
        snapshot_create(sandbox=sandbox, name="lost")
    assert deliveries("snapshot.created") == 0
    assert not sandbox.snapshots.exists()  # the row went with its delivery (and its image, removed)

    response = api_client.post(f"/api/v1/sandboxes/{sid}/snapshots", {"name": "kept"}, format="json")
    assert response.status_code == 201, response.content
    [delivery] = Delivery.objects.filter(event="snapshot.created")
    assert delivery.payload["data"] == {"sandboxId": sid, "snapshotId": response.json()["id"], "name": "kept"}
