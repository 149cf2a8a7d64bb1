"""Drill (e), `make test-ha` (docs/operations.md): a node's dockerd restarted with live-restore.

A nested engine of its own runs `dockerd --live-restore` under a supervising PID 1
(engine/entrypoint.sh, ENGINE_SUPERVISE=1), as systemd would restart it on a host. The drill stops
that dockerd alone (SIGTERM, the nested engine's own; never the host's) while a sandbox's container
runs on the node, and checks: the container keeps running (same process, same start time), the
node's health check sees at most one failure (fewer than VIBEBOX_NODE_DOWN_AFTER: the node never
goes down), and once dockerd is back the node answers and the sandbox is untouched. It prints how
long the engine's API was away.

Not in `make test` (its --ignore): `make test-ha` runs it (scripts/test-ha.sh)."""

import ipaddress
import sys
import time

import pytest
from django.conf import settings
from django.test import override_settings

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes import sandboxd
from apps.sandboxes.models import Node, Sandbox
from apps.sandboxes.runtime import DAEMON_MOUNT, ContainerSpec, get_driver
from apps.sandboxes.services.nodes import node_check
from tests.conftest import sandbox_row
from tests.nodes import engines

pytestmark = pytest.mark.django_db

INSTANCE = settings.VIBEBOX_INSTANCE
LABELS = {"vibebox.test-fixture": "nodes", "vibebox.test-instance": INSTANCE}  # tests/nodes/conftest.py removes them


@pytest.fixture
def live_restore_engine(docker_nodes, docker_client):
    """A third engine on the nodes' network, with --live-restore and a supervised dockerd."""
    network = docker_client.networks.get(f"vibebox-{INSTANCE}-nodes")
    subnet = ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])
    engine = engines.start_engine(
        docker_client,
        name=f"vibebox-{INSTANCE}-node-lr",
        network=network,
        address=str(subnet[20]),
        labels=LABELS,
        environment={"ENGINE_SUPERVISE": "1", "ENGINE_ARGS": "--live-restore"},
    )
    yield engine
    engine.container.remove(force=True, v=True)


def _answers(driver) -> bool:
    try:
        driver.ping()
    except Exception:
        return False
    return True


def _until(condition, what: str, timeout: float = 60.0) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - began


@override_settings(VIBEBOX_NODE_DOWN_AFTER=3, VIBEBOX_NODE_CHECK_TIMEOUT=5)
def test_a_node_whose_dockerd_restarts_with_live_restore_keeps_its_sandboxes(live_restore_engine, owner):
    engine = live_restore_engine
    node = engines.add_node(engine, "node-lr")
    driver = get_driver(node)
    template = Template.objects.create(name="lr", display_name="LR", image=base_image(), user="sandbox")
    sandbox = Sandbox.objects.get(pk=sandbox_row(owner, template, node=node).pk)
    image, daemon_image = base_image(), sandboxd.image(base_image())
    for tag in (image, daemon_image):
        engines.ship(engine, tag)
    daemon_volume = "vibebox-node-lr-sandboxd"
    driver.volume_from_image(daemon_volume, image=daemon_image, path=DAEMON_MOUNT, labels={"vibebox.test": "lr"})
    spec = ContainerSpec(
        name=sandbox.container_name, image=image, labels={"vibebox.test": "lr"}, env={}, volume=None,
        network="bridge", daemon_volume=daemon_volume, memory=256 * 1024**2,
    )  # fmt: skip
    driver.start(driver.create(spec).name)
    identity = "{{.State.Pid}} {{.State.StartedAt}}"
    before = engine.docker("inspect", "-f", identity, sandbox.container_name).strip()

    began = time.monotonic()
    engine.container.exec_run(["sh", "-c", "kill -TERM $(cat /run/engine-dockerd.pid)"])
    gone_after = _until(lambda: not _answers(driver), "the engine's API going away", timeout=30)
    assert node_check(node=node) == Node.State.HEALTHY  # checked while dockerd is away
    node.refresh_from_db()
    failures_while_away = node.failures
    _until(lambda: _answers(driver), "the engine's API coming back")
    away = time.monotonic() - began - gone_after

    assert failures_while_away <= 1 < settings.VIBEBOX_NODE_DOWN_AFTER
    assert node_check(node=node) == Node.State.HEALTHY
    node.refresh_from_db()
    assert node.failures == 0
    # The container was not restarted: the same process, started at the same time.
    assert engine.docker("inspect", "-f", identity, sandbox.container_name).strip() == before
    assert driver.inspect(sandbox.container_name).status == "running"
    assert "dockerd exited; starting it again" in engine.container.logs().decode(errors="replace")
    sandbox.refresh_from_db()
    assert sandbox.status == "running"
    sys.__stderr__.write(
        f"\nHA drill (e) live-restore: engine API away {away:.2f} s (gone {gone_after:.2f} s after the TERM); "
        f"failures counted while away: {failures_while_away} (down after {settings.VIBEBOX_NODE_DOWN_AFTER}); "
        "container kept its process\n"
    )
