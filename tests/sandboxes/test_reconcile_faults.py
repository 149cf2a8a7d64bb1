"""The reconcile pass when the engine refuses one object: the failure is reported under `failed`,
every other sandbox, container, volume and image of the pass is still reconciled, and the next
pass tries again. The refusals are real: the engine itself fails to remove a container (an
immutable file in its state directory), a volume in use cannot be removed, and the fault proxy
(tests/faults.py) cuts the connection of one request or takes the engine away mid-pass."""

import contextlib
import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import docker.errors
import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from django.utils import timezone

from apps.sandboxes.models import Execution, Sandbox, Snapshot
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import get_driver
from tests.faults import EngineProxy

PIN = "vibebox-test-immutable"


class Removal:
    """Makes the real engine refuse to remove chosen containers, and then allow it again.

    `docker rm -f` removes the container's state directory (<data root>/containers/<id>) last; an
    immutable file in it makes that fail with "unable to remove filesystem ... operation not
    permitted" and leaves the container `dead` (docker 20.10; an immutable file in the btrfs
    layer does not stop the engine: it deletes the whole subvolume)."""

    def __init__(self, client):
        self.client = client
        self.root = Path(client.info()["DockerRootDir"]) / "containers"
        self.pinned: dict[str, Path] = {}

    def refuse(self, name: str) -> None:
        container = self.client.containers.get(name)
        pin = self.root / container.id / PIN
        pin.touch()
        subprocess.run(["chattr", "+i", str(pin)], check=True)
        self.pinned[name] = pin

    def allow(self, name: str) -> None:
        pin = self.pinned.pop(name)
        subprocess.run(["chattr", "-i", str(pin)], check=True)
        pin.unlink(missing_ok=True)


@pytest.fixture
def removal(docker_client):
    if os.geteuid() != 0:
        pytest.skip("making a file of the engine's data root immutable needs root on the engine's host")
    refusals = Removal(docker_client)
    if not refusals.root.is_dir():
        pytest.skip(f"the engine's data root {refusals.root} is not on this host")
    yield refusals
    for name in list(refusals.pinned):
        refusals.allow(name)  # so that the container (left `dead`) can be removed
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.containers.get(name).remove(force=True)


@contextlib.contextmanager
def through_proxy():
    """VibeBox's driver talks to the engine through tests/faults.py's proxy for the faulty pass
    only: the test's set-up and its retry pass go straight to the engine (the `engine_fault`
    fixture's 5 s timeout is for hangs; these tests only cut requests, and a commit or a create
    on a busy machine can take longer)."""
    with EngineProxy() as proxy, override_settings(VIBEBOX_DOCKER_HOST=proxy.url):
        get_driver.cache_clear()
        try:
            yield proxy
        finally:
            get_driver.cache_clear()


def _gone(docker_client, name) -> bool:
    return not docker_client.containers.list(all=True, filters={"name": f"^{name}$"})


def test_a_sandbox_the_engine_cannot_remove_does_not_stop_the_pass(create_sandbox, docker_client, removal):
    expired = create_sandbox()["id"]
    vanished = create_sandbox()["id"]
    exited = create_sandbox()["id"]
    stuck = create_sandbox()["id"]
    refusing = create_sandbox()["id"]  # the newest: the pass meets it first
    removal.refuse(refusing)
    docker_client.containers.get(vanished).remove(force=True)
    docker_client.containers.get(exited).stop(timeout=1)
    Sandbox.objects.filter(pk__in=[refusing, expired]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    Sandbox.objects.filter(pk=stuck).update(status="stopping", updated_at=timezone.now() - dt.timedelta(hours=1))

    report = sandbox_reconcile()

    assert list(report.failed) == [refusing]
    assert "unable to remove filesystem" in report.failed[refusing]
    assert Sandbox.objects.get(pk=refusing).status == "destroying"  # the destroy is still owed
    assert report.expired == [expired] and Sandbox.objects.get(pk=expired).status == "destroyed"
    assert _gone(docker_client, expired)
    assert report.vanished == [vanished] and Sandbox.objects.get(pk=vanished).status == "error"
    assert report.exited == [exited] and Sandbox.objects.get(pk=exited).status == "stopped"
    assert report.finished == [stuck] and Sandbox.objects.get(pk=stuck).status == "running"
    assert report.as_dict()["failed"] == report.failed  # what the Celery task and the command answer

    removal.allow(refusing)  # the engine can remove it again: the next pass finishes the destroy
    report = sandbox_reconcile()
    assert report.expired == [refusing] and not report.failed
    assert Sandbox.objects.get(pk=refusing).status == "destroyed"
    assert _gone(docker_client, refusing)
    assert not docker_client.volumes.list(filters={"name": f"^{refusing}-workspace$"})


def test_orphans_the_engine_cannot_remove_are_reported_and_retried(docker_client, templates, removal):
    instance = django_settings.VIBEBOX_INSTANCE
    labels = {"vibebox.managed": "1", "vibebox.instance": instance}
    image = templates["python-3"].image
    stray_volume = docker_client.volumes.create(f"sbx_strayvol{instance}-workspace", labels=labels)
    plain = docker_client.containers.create(
        image, name=f"sbx_plainorphan{instance}", labels={**labels, "vibebox.sandbox-id": f"sbx_plainorphan{instance}"}
    )
    stuck_name = f"sbx_stuckorphan{instance}"
    stuck_volume = docker_client.volumes.create(f"{stuck_name}-workspace", labels=labels)
    docker_client.containers.run(
        image,
        ["sleep", "600"],
        name=stuck_name,
        labels={**labels, "vibebox.sandbox-id": stuck_name},
        volumes={stuck_volume.name: {"bind": "/workspace", "mode": "rw"}},
        detach=True,
    )
    removal.refuse(stuck_name)

    report = sandbox_reconcile()

    # the container stays (dead), and so does its volume: the engine will not remove a volume in use
    assert "unable to remove filesystem" in report.failed[stuck_name]
    assert "in use" in report.failed[stuck_volume.name]
    assert set(report.failed) == {stuck_name, stuck_volume.name}
    assert report.orphans_removed == [plain.name] and _gone(docker_client, plain.name)
    assert report.volumes_removed == [stray_volume.name]

    removal.allow(stuck_name)
    report = sandbox_reconcile()
    assert report.orphans_removed == [stuck_name] and not report.failed  # its volume went with it
    assert _gone(docker_client, stuck_name)
    assert not docker_client.volumes.list(filters={"name": f"^{stuck_volume.name}$"})


def test_a_lost_snapshot_image_the_engine_fails_to_remove_is_retried(api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    lost = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json").json()
    image = Snapshot.objects.get(pk=lost["id"]).image
    Snapshot.objects.filter(pk=lost["id"]).delete()  # as if the database lost it
    left = Execution.objects.create(sandbox_id=sandbox_id, kind="exec", command="sleep 1d")
    Execution.objects.filter(pk=left.pk).update(started_at=timezone.now() - dt.timedelta(days=1))
    later = timezone.now() + dt.timedelta(minutes=10)  # the image is old enough not to be a snapshot in the making
    try:
        with through_proxy() as proxy:
            tripped = proxy.fail_on(r"^DELETE /images/")
            report = sandbox_reconcile(now=later)

        assert tripped.is_set()
        assert list(report.failed) == [image] and report.snapshot_images_removed == []
        assert docker_client.images.list(name=image)
        assert report.executions_abandoned == 1  # the steps after it still ran
        assert Execution.objects.get(pk=left.pk).status == "error"

        report = sandbox_reconcile(now=later)
        assert report.snapshot_images_removed == [image] and not report.failed
        assert not docker_client.images.list(name=image)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image, force=True)


def test_the_engine_going_away_mid_pass(create_sandbox, docker_client):
    first = create_sandbox()["id"]
    second = create_sandbox()["id"]
    Sandbox.objects.filter(pk__in=[first, second]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    left = Execution.objects.create(sandbox_id=first, kind="exec", command="sleep 1d")
    Execution.objects.filter(pk=left.pk).update(started_at=timezone.now() - dt.timedelta(days=1))
    with through_proxy() as proxy:
        # the first container removal is cut, and the engine stays away for the rest of the pass
        tripped = proxy.fail_on(r"^DELETE /containers/", then="refuse")
        report = sandbox_reconcile()

    assert tripped.is_set()
    assert set(report.failed) == {first, second, "snapshot images"}
    assert all("not reachable" in reason for reason in report.failed.values())
    assert report.expired == []
    assert {Sandbox.objects.get(pk=i).status for i in (first, second)} == {"destroying"}
    assert docker_client.containers.get(first) and docker_client.containers.get(second)  # nothing half-removed
    assert report.executions_abandoned == 1  # the database's own work is done regardless

    report = sandbox_reconcile()  # the engine is back
    assert sorted(report.expired) == sorted([first, second]) and not report.failed
    assert {Sandbox.objects.get(pk=i).status for i in (first, second)} == {"destroyed"}
    assert _gone(docker_client, first) and _gone(docker_client, second)


def _processes(docker_client, sandbox_id) -> str:
    return docker_client.containers.get(sandbox_id).exec_run(["ps", "-eo", "args"]).output.decode()


def test_commands_of_a_previous_server_that_could_not_be_ended_are_reported(create_sandbox, docker_client):
    cut = create_sandbox()["id"]
    ended = create_sandbox()["id"]
    for sandbox_id in (cut, ended):  # as a command of a server that has since died would be
        docker_client.containers.get(sandbox_id).exec_run(
            ["sh", "-c", "sleep 901"], environment={"VIBEBOX_EXEC_ID": "exec_gone"}, detach=True
        )
    deadline = time.monotonic() + 30
    while not all("sleep 901" in _processes(docker_client, i) for i in (cut, ended)):
        assert time.monotonic() < deadline, "the stray commands did not start"
        time.sleep(0.2)
    with through_proxy() as proxy:
        # the first engine request of ending `cut`'s strays is cut (the exec, or the inspect before it)
        tripped = proxy.fail_on(rf"^(GET /containers/{cut}/json|POST /containers/{cut}/exec)")
        report = sandbox_reconcile(startup=True)

    assert tripped.is_set()
    assert report.strays_ended == [ended] and list(report.failed) == [cut]
    assert "sleep 901" not in _processes(docker_client, ended)

    report = sandbox_reconcile(startup=True)
    assert report.strays_ended == [cut, ended] or report.strays_ended == [ended, cut]
    assert not report.failed and "sleep 901" not in _processes(docker_client, cut)
