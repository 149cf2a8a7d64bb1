"""`POST /api/v1/sandboxes/{id}/recover` (apps/sandboxes/services/recovery.py, docs/api.md
"Recover"): a sandbox in `error` made usable again, against the real engine. The restore onto a
fresh machine, where recover matters most, is tests/sandboxes/test_backup_restore.py's."""

import pytest

from apps.audit.models import AuditEntry
from apps.sandboxes.models import Sandbox, Status
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import get_driver

pytestmark = pytest.mark.django_db(transaction=True)


def _exec(api_client, sandbox_id: str, command: str) -> dict:
    done = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert done.status_code == 200, done.content
    return done.json()


def _vanish(sandbox_id: str) -> Sandbox:
    """Its container removed behind VibeBox's back (its workspace volume kept), then reconcile."""
    row = Sandbox.objects.get(pk=sandbox_id)
    get_driver().remove(row.container_name)  # no volume= : the workspace stays
    sandbox_reconcile()
    row.refresh_from_db()
    assert row.status == Status.ERROR and row.status_reason == "container vanished", row.status_reason
    return row


def test_a_vanished_container_is_made_again_with_its_workspace_then_started(settings, api_client, create_sandbox):
    settings.VIBEBOX_DEFAULT_DISK = 0  # the workspace in its named volume
    sandbox = create_sandbox(name="phoenix", env={"GREETING": "hi"})
    assert _exec(api_client, sandbox["id"], "echo kept > /workspace/note.txt")["exitCode"] == 0
    _vanish(sandbox["id"])

    answer = api_client.post(f"/api/v1/sandboxes/{sandbox['id']}/recover")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "stopped" and "its workspace volume" in body["statusReason"], body
    row = Sandbox.objects.get(pk=sandbox["id"])
    assert get_driver().inspect(row.container_name).id == row.container_id
    entry = AuditEntry.objects.filter(action="sandbox.recovered", target_id=sandbox["id"]).get()
    assert entry.changes == {"container": "made", "status": "stopped"}

    started = api_client.post(f"/api/v1/sandboxes/{sandbox['id']}/start")
    assert started.status_code == 200 and started.json()["status"] == "running", started.content
    ran = _exec(api_client, sandbox["id"], 'cat /workspace/note.txt; echo "$GREETING"')
    assert ran["stdout"] == "kept\nhi\n", ran

    # Only from `error`: a running sandbox is refused, and stays as it is.
    again = api_client.post(f"/api/v1/sandboxes/{sandbox['id']}/recover")
    assert again.status_code == 409 and again.json()["error"]["code"] == "sandbox_state_conflict", again.content


def test_a_container_still_there_is_followed_and_nothing_is_made(api_client, create_sandbox):
    sandbox = create_sandbox(name="stillhere")
    row = Sandbox.objects.get(pk=sandbox["id"])
    container_id = row.container_id
    Sandbox.objects.filter(pk=row.pk).update(status=Status.ERROR, status_reason="a move that was not settled")

    answer = api_client.post(f"/api/v1/sandboxes/{sandbox['id']}/recover")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "running" and answer.json()["statusReason"] == "", answer.content
    row.refresh_from_db()
    assert row.container_id == container_id  # the same container, not a new one
    assert _exec(api_client, sandbox["id"], "true")["exitCode"] == 0
    entry = AuditEntry.objects.filter(action="sandbox.recovered", target_id=sandbox["id"]).get()
    assert entry.changes == {"container": "found", "status": "running"}


def test_a_gone_image_falls_back_to_the_template_s_current_one_but_a_snapshot_s_does_not(
    settings, api_client, create_sandbox
):
    settings.VIBEBOX_DEFAULT_DISK = 0
    sandbox = create_sandbox(name="oldimage")
    row = _vanish(sandbox["id"])
    current = row.image
    # An older template version's tag, which a fresh machine does not build again.
    Sandbox.objects.filter(pk=row.pk).update(image=f"{current.rsplit(':', 1)[0]}:0-gone")

    answer = api_client.post(f"/api/v1/sandboxes/{sandbox['id']}/recover")
    assert answer.status_code == 200, answer.content
    assert f"its template's current image {current}" in answer.json()["statusReason"], answer.content
    row.refresh_from_db()
    assert row.image == current and row.status == Status.STOPPED

    # A snapshot's image has no stand-in: refused, and the sandbox stays in error with its reason.
    get_driver().remove(row.container_name)
    Sandbox.objects.filter(pk=row.pk).update(
        status=Status.ERROR,
        status_reason="container vanished",
        image=f"{settings.VIBEBOX_IMAGE_PREFIX}/snapshot-x:gone",
    )
    refused = api_client.post(f"/api/v1/sandboxes/{sandbox['id']}/recover")
    assert refused.status_code == 409, refused.content
    error = refused.json()["error"]
    assert error["code"] == "sandbox_unrecoverable" and error["details"]["reason"] == "image_missing", error
    row.refresh_from_db()
    assert row.status == Status.ERROR and row.status_reason == "container vanished"
    assert get_driver().inspect(row.container_name) is None
