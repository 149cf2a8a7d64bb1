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
from apps.sandboxes.models import Node, Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import ContainerSpec, get_driver
from apps.sandboxes.services.exec import sandbox_exec
from apps.sandboxes.services.nodes import RELAY_NAME, node_check, node_prepare, node_ship_image
from apps.sandboxes.specs import base_labels, network_name
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
    prepared = node_prepare(node=node)  # sandboxd, the relay (and its firewall agent), the network
    node_ship_image(node=node, tag=base_image())
    node.refresh_from_db()
    driver = get_driver(node)
    template = Template.objects.create(name="lr", display_name="LR", image=base_image())  # no user: root
    sandbox = Sandbox.objects.get(pk=sandbox_row(owner, template, node=node, image=base_image()).pk)
    spec = ContainerSpec(
        name=sandbox.container_name, image=base_image(),
        labels={**base_labels(), "vibebox.sandbox-id": sandbox.pk}, env={}, volume=None,
        network=network_name(), daemon_volume=prepared.volume, memory=256 * 1024**2,
    )  # fmt: skip
    driver.start(driver.create(spec).name)
    assert sandbox_exec(sandbox=sandbox, command="echo before").stdout == "before\n"  # through the relay
    identity = "{{.State.Pid}} {{.State.StartedAt}}"
    before = engine.docker("inspect", "-f", identity, sandbox.container_name).strip()
    relay_before = engine.docker("inspect", "-f", identity, RELAY_NAME).strip()

    began = time.monotonic()
    engine.container.exec_run(["sh", "-c", "kill -TERM $(cat /run/engine-dockerd.pid)"])
    gone_after = _until(lambda: not _answers(driver), "the engine's API going away", timeout=30)
    assert node_check(node=node) == Node.State.HEALTHY  # checked while dockerd is away
    node.refresh_from_db()
    failures_while_away = node.failures
    # sandboxd answers through the relay while the engine's API is away: neither needs dockerd.
    answered_while_away = sandbox_exec(sandbox=sandbox, command="echo during").stdout == "during\n"
    away_still = not _answers(driver)
    _until(lambda: _answers(driver), "the engine's API coming back")
    away = time.monotonic() - began - gone_after

    assert failures_while_away <= 1 < settings.VIBEBOX_NODE_DOWN_AFTER
    assert answered_while_away
    assert node_check(node=node) == Node.State.HEALTHY
    node.refresh_from_db()
    assert node.failures == 0
    # Neither the sandbox's container nor the relay was restarted: the same processes.
    assert engine.docker("inspect", "-f", identity, sandbox.container_name).strip() == before
    assert engine.docker("inspect", "-f", identity, RELAY_NAME).strip() == relay_before
    assert "dockerd exited; starting it again" in engine.container.logs().decode(errors="replace")
    # Reconcile finds the container with its labels: nothing vanished, nothing removed.
    report = sandbox_reconcile(node=node)
    assert sandbox.pk not in report.vanished and not report.orphans_removed
    sandbox.refresh_from_db()
    assert sandbox.status == "running"
    assert sandbox_exec(sandbox=sandbox, command="echo after").stdout == "after\n"
    sys.__stderr__.write(
        f"\nHA drill (e) live-restore: engine API away {away:.2f} s (gone {gone_after:.2f} s after the TERM); "
        f"failures counted while away: {failures_while_away} (down after {settings.VIBEBOX_NODE_DOWN_AFTER}); "
        f"sandboxd answered through the relay while away: {answered_while_away} (API still away then: "
        f"{away_still}); container and relay kept their processes; reconcile: nothing vanished\n"
    )
    driver.remove(sandbox.container_name)
