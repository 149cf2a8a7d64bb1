"""Reconcile per node and the `unreachable` state (docs/nodes.md): a full reconcile pass leaves a
healthy node's sandboxes alone (they are not "vanished" from the local engine); a node that goes
down takes its running and paused sandboxes to `unreachable` (REST answers 409
sandbox_unreachable, a destroy waits in `destroying`); when it answers again it is reconciled:
each sandbox follows its container there, the ones whose container went are `error`, the waiting
destroys finish and orphans go. A local sandbox is never touched by any of it.

The engine is made unreachable by pausing its container (its /var/lib/docker is a tmpfs: a stop
would empty it). The health check's timeout is cut to 2 s for the checks that fail."""

import pytest
from django.db.models import Q

from apps.billing.models import MeterSample
from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes import sandboxd
from apps.sandboxes.models import Node, Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import DAEMON_MOUNT, ContainerSpec, get_driver
from apps.sandboxes.specs import base_labels
from apps.sandboxes.tasks import check_nodes
from tests.conftest import sandbox_row
from tests.nodes.engines import add_node, ship

pytestmark = pytest.mark.django_db

DAEMON_VOLUME = "vibebox-node-unreach-sandboxd"


@pytest.fixture
def template(db):
    return Template.objects.create(name="on-node", display_name="On node", image="vibebox/on-node:1", user="sandbox")


@pytest.fixture
def node_engine(docker_nodes):
    """Node 1 registered, with the images and sandboxd's volume its containers need; every
    container of this instance on it removed afterwards (and the engine unpaused)."""
    engine = docker_nodes[0]
    node = add_node(engine, "node-u")
    driver = get_driver(node)
    image, daemon_image = base_image(), sandboxd.image(base_image())
    for tag in (image, daemon_image):
        ship(engine, tag)
    driver.volume_from_image(DAEMON_VOLUME, image=daemon_image, path=DAEMON_MOUNT, labels={"vibebox.test": "unreach"})
    yield engine, node, driver
    engine.container.reload()
    if engine.container.status == "paused":
        engine.container.unpause()
    for container in driver.list_containers(base_labels()):
        driver.remove(container.name)
    driver.remove_volume(DAEMON_VOLUME)


def _container(driver, sandbox_id: str) -> None:
    """A running container for `sandbox_id` on the node's engine, labelled as a sandbox's is."""
    spec = ContainerSpec(
        name=sandbox_id, image=base_image(), labels={**base_labels(), "vibebox.sandbox-id": sandbox_id}, env={},
        volume=None, network="bridge", daemon_volume=DAEMON_VOLUME, memory=256 * 1024**2,
    )  # fmt: skip
    driver.start(driver.create(spec).name)


def _status(sandbox: Sandbox) -> tuple[str, str]:
    sandbox.refresh_from_db()
    return sandbox.status, sandbox.status_reason


def test_a_full_pass_leaves_a_healthy_node_sandboxes_alone(node_engine, owner, template):
    _, node, driver = node_engine
    sandbox = sandbox_row(owner, template, name="on-node", node=node)
    _container(driver, sandbox.id)
    report = sandbox_reconcile()
    assert sandbox.id not in report.vanished and sandbox.id not in report.failed
    assert _status(sandbox) == ("running", "")
    assert driver.inspect(sandbox.id).status == "running"
    assert "node-u" not in report.nodes  # nothing to say about it


def test_a_node_that_cannot_be_listed_or_is_down_is_skipped(docker_nodes, owner, template):
    node = add_node(docker_nodes[1], "node-v")  # for its certificates
    # A healthy node row whose engine refuses connections (nothing listens there).
    broken = Node.objects.create(
        name="node-x", docker_url="tcp://127.0.0.1:9", tls_ca=node.tls_ca, tls_cert=node.tls_cert, tls_key=node.tls_key
    )
    sandbox = sandbox_row(owner, template, name="on-broken", node=broken)
    report = sandbox_reconcile()
    assert "node node-x" in report.failed and set(report.nodes["node-x"]) == {"skipped"}
    assert sandbox.id not in report.vanished and _status(sandbox) == ("running", "")
    report = sandbox_reconcile(node=broken)
    assert "node node-x" in report.failed and _status(sandbox) == ("running", "")
    # A down node is skipped without being asked: its rows stay as they are.
    Node.objects.filter(pk=broken.pk).update(state="down")
    report = sandbox_reconcile()
    assert report.nodes["node-x"] == {"skipped": "down"} and "node node-x" not in report.failed
    assert _status(sandbox) == ("running", "")
    assert sandbox_reconcile(node=broken).nodes == {"node-x": {"skipped": "down"}}


def test_a_node_down_and_back(node_engine, owner, template, api_client, settings):
    engine, node, driver = node_engine
    settings.VIBEBOX_NODE_DOWN_AFTER = 2
    settings.VIBEBOX_NODE_CHECK_TIMEOUT = 2
    kept = sandbox_row(owner, template, name="kept", node=node)
    lost = sandbox_row(owner, template, name="lost", node=node)
    gone = sandbox_row(owner, template, name="gone", node=node)
    halted = sandbox_row(owner, template, name="halted", node=node)
    was_stopped = sandbox_row(owner, template, name="was-stopped", node=node, status="stopped")
    local = sandbox_row(owner, template, name="local")  # on the local engine (no container: never looked at here)
    for sandbox in (kept, lost, gone, halted):
        _container(driver, sandbox.id)
        Sandbox.objects.filter(pk=sandbox.pk).update(container_id=driver.inspect(sandbox.id).id)
    _container(driver, was_stopped.id)
    driver.stop(was_stopped.id, 1)
    MeterSample.objects.create(sandbox=kept, org=kept.org, taken_at=kept.created_at, state="running", cpu_ns=5)

    engine.container.pause()
    assert check_nodes() == {"node-u": "healthy"}  # one failure: not down yet
    assert _status(kept) == ("running", "")
    assert check_nodes() == {"node-u": "down"}
    for sandbox in (kept, lost, gone, halted):
        assert _status(sandbox) == ("unreachable", "node down")
    assert _status(was_stopped) == ("stopped", "") and _status(local) == ("running", "")
    # The meter's mark: nothing is counted from the last sample on (apps/billing/receivers.py).
    mark = MeterSample.objects.get(sandbox=kept, state="unreachable")
    assert mark.cpu_ns == 5 and not MeterSample.objects.filter(~Q(sandbox=kept)).exists()

    # REST: get and list show it; everything else is 409 sandbox_unreachable; a destroy waits.
    base = f"/api/v1/sandboxes/{kept.id}"
    assert api_client.get(base).json()["status"] == "unreachable"
    listed = {s["id"]: s["status"] for s in api_client.get("/api/v1/sandboxes").json()["results"]}
    assert listed[kept.id] == "unreachable" and listed[local.id] == "running"
    for method, path, body in [
        ("post", "/stop", None),
        ("post", "/pause", None),
        ("post", "/exec", {"command": "true"}),
        ("get", "/files?path=/workspace", None),
        ("get", "/metrics", None),
        ("post", "/snapshots", {}),
    ]:
        response = getattr(api_client, method)(base + path, body, format="json")
        assert response.status_code == 409, (path, response.content)
        assert response.json()["error"]["code"] == "sandbox_unreachable", path
    assert api_client.get(base + "/logs").status_code == 200  # VibeBox's events (the container cannot be read)
    assert api_client.delete(f"/api/v1/sandboxes/{gone.id}").status_code == 204
    assert _status(gone) == ("destroying", "node down")

    # While it was down (its row says so), one container went and one stopped; an orphan appeared.
    engine.container.unpause()
    driver.remove(lost.id)
    driver.stop(halted.id, 1)
    orphan = "sbx_orphanonnodeu"
    _container(driver, orphan)

    assert check_nodes() == {"node-u": "healthy"}  # back: reconciled at once
    assert _status(kept) == ("running", "")
    assert _status(lost) == ("error", "container lost with node")
    assert _status(halted)[0] == "stopped"
    assert _status(gone)[0] == "destroyed" and driver.inspect(gone.id) is None
    assert driver.inspect(orphan) is None
    assert driver.inspect(kept.id).status == "running"
    assert _status(was_stopped) == ("stopped", "") and _status(local) == ("running", "")
    assert api_client.get(base).json()["status"] == "running"
