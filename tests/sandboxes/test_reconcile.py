"""Reconciliation of database and engine, and expiry, against the real engine."""

import datetime as dt
import time

from django.conf import settings as django_settings
from django.utils import timezone

from apps.sandboxes.models import Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import ExecRequest, get_driver
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
    old.refresh_from_db()
    assert old.status == "error" and old.stderr == "The server stopped while this ran." and old.finished_at
    assert Execution.objects.get(pk=fresh.pk).status == "running"


def test_startup_ends_commands_of_a_previous_server(api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    container = docker_client.containers.get(sandbox_id)
    # as a command or terminal of a server that has since died would be
    container.exec_run(["sh", "-c", "sleep 901"], environment={"VIBEBOX_EXEC_ID": "exec_gone"}, detach=True)
    container.exec_run(["sh", "-c", "sleep 902"], detach=True)  # not VibeBox's: left alone
    # a background process in sandboxd: any server follows it, so it is no stray
    started = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "sleep 903", "background": True}, format="json"
    )
    assert started.status_code == 202, started.content
    # so is a terminal in sandboxd, and what runs in it
    opened = ExecRequest(argv=("sh", "-c", "sleep 904"), exec_id="term_kept", timeout=0)
    get_driver().terminal_open(sandbox_id, opened, cols=80, rows=24, idle_timeout=0)
    time.sleep(0.5)
    assert sandbox_reconcile(startup=True).strays_ended == [sandbox_id]
    running = container.exec_run(["ps", "-eo", "args"]).output.decode()
    assert "sleep 901" not in running and "sleep 902" in running and "sleep 903" in running
    assert "sleep 904" in running


def test_ephemeral_sandboxes_of_a_revoked_key_are_destroyed(owner, make_key, create_sandbox, docker_client):
    from rest_framework.test import APIClient

    from apps.keys.services import api_key_revoke

    key, secret = make_key(owner)
    creator = APIClient()
    creator.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    ephemeral = create_sandbox(client=creator, ephemeral=True)["id"]
    lasting = create_sandbox(client=creator)["id"]
    other_key = create_sandbox(ephemeral=True)["id"]  # its key is still valid
    # The revoke destroys them once its transaction commits; here it never does, as when the
    # server stopped in between: the reconcile pass is what is left to do it.
    api_key_revoke(key=key)
    assert Sandbox.objects.get(pk=ephemeral).status == "running"
    report = sandbox_reconcile()
    assert report.key_revoked == [ephemeral]
    assert Sandbox.objects.get(pk=ephemeral).status == "destroyed"
    assert not docker_client.containers.list(all=True, filters={"name": f"^{ephemeral}$"})
    assert Sandbox.objects.get(pk=lasting).status == "running"
    assert Sandbox.objects.get(pk=other_key).status == "running"


def test_rows_stuck_in_stopping_and_starting_are_finished_from_the_engine(create_sandbox, docker_client):
    never_stopped = create_sandbox()["id"]  # the stop never reached the engine
    stopped = create_sandbox()["id"]  # the engine stopped it; the server died before the row moved
    paused = create_sandbox()["id"]  # a stop of a paused sandbox that never reached the engine
    gone = create_sandbox()["id"]  # a start whose container was removed meanwhile
    recent = create_sandbox()["id"]  # a stop under way right now
    docker_client.containers.get(stopped).stop(timeout=1)
    docker_client.containers.get(paused).pause()
    docker_client.containers.get(gone).remove(force=True)
    long_ago = timezone.now() - dt.timedelta(seconds=django_settings.VIBEBOX_STUCK_AFTER + 60)
    Sandbox.objects.filter(pk__in=[never_stopped, stopped, paused]).update(status="stopping", updated_at=long_ago)
    Sandbox.objects.filter(pk=gone).update(status="starting", updated_at=long_ago)
    Sandbox.objects.filter(pk=recent).update(status="stopping", updated_at=timezone.now())

    report = sandbox_reconcile()

    assert sorted(report.finished) == sorted([never_stopped, stopped, paused, gone])
    assert Sandbox.objects.get(pk=never_stopped).status == "running"
    row = Sandbox.objects.get(pk=stopped)
    assert row.status == "stopped" and row.stopped_at is not None  # as a stop that finished would have it
    assert Sandbox.objects.get(pk=paused).status == "paused"
    row = Sandbox.objects.get(pk=gone)
    assert row.status == "error" and row.status_reason == "container missing after interrupted starting"
    assert Sandbox.objects.get(pk=recent).status == "stopping"  # its request may still finish it
    assert not report.vanished and not report.exited  # each row was settled once, by the stuck branch


def test_abandoned_claude_asks_are_marked_failed(create_sandbox):
    from apps.agents.models import ClaudeAsk, ClaudeSession

    sandbox_id = create_sandbox()["id"]

    def ask(session_id, **fields):
        session = ClaudeSession.objects.create(id=session_id, sandbox_id=sandbox_id, cwd="/workspace")
        return ClaudeAsk.objects.create(session=session, sandbox_id=sandbox_id, prompt="hello", **fields)

    abandoned = ask("session-abandoned")
    fresh = ask("session-fresh")
    done = ask("session-done", status="completed", finished_at=timezone.now())
    grace = django_settings.VIBEBOX_CLAUDE_ASK_TIMEOUT + django_settings.VIBEBOX_STUCK_AFTER
    long_ago = timezone.now() - dt.timedelta(seconds=grace + 60)
    ClaudeAsk.objects.filter(pk__in=[abandoned.pk, done.pk]).update(started_at=long_ago)

    # no thread of this process runs it, and it is past its timeout
    assert sandbox_reconcile().more["asks_abandoned"] == 1
    abandoned.refresh_from_db()
    assert abandoned.status == "failed" and abandoned.error == "The server running this ask stopped."
    assert abandoned.finished_at is not None
    assert ClaudeAsk.objects.get(pk=fresh.pk).status == "running"  # may be running in the web process
    assert ClaudeAsk.objects.get(pk=done.pk).status == "completed"

    # at start-up no server runs anything yet: every ask still `running` was abandoned
    assert sandbox_reconcile(startup=True).more["asks_abandoned"] == 1
    assert ClaudeAsk.objects.get(pk=fresh.pk).status == "failed"
    assert ClaudeAsk.objects.get(pk=done.pk).status == "completed"


def test_a_stuck_destroy_of_an_expired_sandbox_is_reported_once(create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    long_ago = timezone.now() - dt.timedelta(hours=1)
    Sandbox.objects.filter(pk=sandbox_id).update(status="destroying", updated_at=long_ago, expires_at=long_ago)
    report = sandbox_reconcile()
    assert report.finished == [sandbox_id] and report.expired == []
    assert Sandbox.objects.get(pk=sandbox_id).status == "destroyed"
    assert not docker_client.containers.list(all=True, filters={"name": f"^{sandbox_id}$"})
