"""Reconciliation of database and engine, and expiry, against the real engine."""

import datetime as dt
import time

from django.conf import settings as django_settings
from django.utils import timezone

from apps.sandboxes.models import Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.tasks import reconcile_sandboxes


def test_removes_a_hand_made_orphan(docker_client, templates):
    image = templates["python-3"].image
    orphan = docker_client.containers.create(
        image,
        name=f"sbx_handmadeorphan{django_settings.VIBEBOX_INSTANCE}",
        labels={
            "vibebox.managed": "1",
            "vibebox.instance": django_settings.VIBEBOX_INSTANCE,
            "vibebox.sandbox-id": f"sbx_handmadeorphan{django_settings.VIBEBOX_INSTANCE}",
        },
    )
    volume = docker_client.volumes.create(
        f"sbx_stray{django_settings.VIBEBOX_INSTANCE}-workspace",
        labels={"vibebox.instance": django_settings.VIBEBOX_INSTANCE, "vibebox.managed": "1"},
    )
    report = sandbox_reconcile()
    assert orphan.name in report.orphans_removed
    assert volume.name in report.volumes_removed
    assert not docker_client.containers.list(all=True, filters={"name": orphan.name})


def test_leaves_other_instances_alone(docker_client, templates):
    image = templates["python-3"].image
    other = docker_client.containers.create(
        image, name="vibebox-other-instance-probe", labels={"vibebox.managed": "1", "vibebox.instance": "someone-else"}
    )
    try:
        sandbox_reconcile()
        assert docker_client.containers.get(other.id)
    finally:
        other.remove(force=True)


def test_marks_a_vanished_container(create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    docker_client.containers.get(sandbox_id).remove(force=True)
    report = sandbox_reconcile()
    assert sandbox_id in report.vanished
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    assert sandbox.status == "error" and sandbox.status_reason == "container vanished"


def test_marks_an_exited_container_stopped(create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    docker_client.containers.get(sandbox_id).stop(timeout=1)
    assert sandbox_id in sandbox_reconcile().exited
    assert Sandbox.objects.get(pk=sandbox_id).status == "stopped"


def test_finishes_stuck_rows(create_sandbox, docker_client):
    running = create_sandbox()["id"]
    doomed = create_sandbox()["id"]
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Sandbox.objects.filter(pk=running).update(status="creating", updated_at=long_ago)
    Sandbox.objects.filter(pk=doomed).update(status="destroying", updated_at=long_ago)
    report = sandbox_reconcile()
    assert {running, doomed} <= set(report.finished)
    assert Sandbox.objects.get(pk=running).status == "running"
    assert Sandbox.objects.get(pk=doomed).status == "destroyed"
    assert not docker_client.containers.list(all=True, filters={"name": doomed})


def test_recent_transitions_are_left_alone_unless_at_startup(create_sandbox):
    sandbox_id = create_sandbox()["id"]
    Sandbox.objects.filter(pk=sandbox_id).update(status="starting", updated_at=timezone.now())
    assert sandbox_id not in sandbox_reconcile().finished
    assert sandbox_id in sandbox_reconcile(startup=True).finished
    assert Sandbox.objects.get(pk=sandbox_id).status == "running"


def test_expiry_destroys_the_sandbox(create_sandbox, docker_client):
    keep = create_sandbox(timeout="1h")["id"]
    expire = create_sandbox(timeout=1)["id"]
    Sandbox.objects.filter(pk=expire).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    result = reconcile_sandboxes.apply().get()  # the Celery task beat runs every minute
    assert result["expired"] == [expire]
    assert Sandbox.objects.get(pk=expire).status == "destroyed"
    assert not docker_client.containers.list(all=True, filters={"name": expire})
    assert Sandbox.objects.get(pk=keep).status == "running"


def test_abandoned_executions_are_closed(create_sandbox, settings):
    from apps.sandboxes.models import Execution

    sandbox_id = create_sandbox()["id"]
    old = Execution.objects.create(sandbox_id=sandbox_id, kind="exec", command="sleep 1d")
    fresh = Execution.objects.create(sandbox_id=sandbox_id, kind="exec", command="sleep 1")
    Execution.objects.filter(pk=old.pk).update(started_at=timezone.now() - dt.timedelta(days=1))
    assert sandbox_reconcile().executions_abandoned == 1
    assert Execution.objects.get(pk=old.pk).status == "error"
    assert Execution.objects.get(pk=fresh.pk).status == "running"


def test_startup_ends_commands_of_a_previous_server(create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    container = docker_client.containers.get(sandbox_id)
    # as a background command or terminal of a server that has since died would be
    container.exec_run(["sh", "-c", "sleep 901"], environment={"VIBEBOX_EXEC_ID": "exec_gone"}, detach=True)
    container.exec_run(["sh", "-c", "sleep 902"], detach=True)  # not VibeBox's: left alone
    time.sleep(0.5)
    assert sandbox_reconcile(startup=True).strays_ended == [sandbox_id]
    running = container.exec_run(["ps", "-eo", "args"]).output.decode()
    assert "sleep 901" not in running and "sleep 902" in running
