"""Drill (g), `make test-ha` (docs/operations.md): two nodes whose sandbox networks use the same
subnet, a sandbox at the same address on each, kept apart by the node in the back link's identity
(docs/nodes.md, "The server's services from a node").

The two nested engines of tests/nodes/conftest.py are fresh engines: each gives its sandbox network
the first free pool, the same subnet on both, and the first sandbox on each the same address. Both
are prepared (relay, back links); this side runs the back links with the real egress proxy (in an
event loop in a thread, as `runegress` does). Sandbox A (node-a) may reach only a listener of the
test's own on the nodes' LAN, sandbox B (node-b) only node-2's engine port: each one's CONNECT
through its HTTPS_PROXY (its node's bridge gateway, a back link) is judged by its own policy.

Not in `make test`: two prepared nested engines are heavy (skipped unless VIBEBOX_TEST_HA=1, which
scripts/test-ha.sh sets)."""

import asyncio
import os
import sys
import threading

import pytest
from django.conf import settings as django_settings

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes.backlinks import BackLinks
from apps.sandboxes.egress import EgressProxy
from apps.sandboxes.models import Node, Sandbox
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services import network, placement
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.nodes import node_prepare
from apps.sandboxes.specs import network_name
from tests.nodes.engines import ENGINE_PORT, add_node, fill_local_engine, free_port, lan_listener, ship, unprepare

pytestmark = [
    pytest.mark.django_db(transaction=True),  # the proxy reads rows in its thread
    pytest.mark.skipif(not os.environ.get("VIBEBOX_TEST_HA"), reason="a make test-ha drill (two prepared nodes)"),
]

INSTANCE = django_settings.VIBEBOX_INSTANCE
TARGET = f"vibebox-{INSTANCE}-twin-target"

# A CONNECT through the sandbox's HTTPS_PROXY (bash only: the base image has no curl); prints the status line.
CONNECT = (
    "p=${{HTTPS_PROXY#http://}}; exec 3<>/dev/tcp/${{p%:*}}/${{p##*:}} && "
    "printf 'CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n' >&3 && timeout 10 head -n 1 <&3"
)


@pytest.fixture
def target(docker_nodes, docker_client):
    """A listener of the test's own on the nodes' LAN."""
    with lan_listener(
        docker_client, network=f"vibebox-{INSTANCE}-nodes", host=42, name=TARGET, instance=INSTANCE
    ) as address:
        yield address


@pytest.fixture
def twins(docker_nodes, target, settings):
    """node-a and node-b prepared, labelled twin=a and twin=b; the back links with the egress proxy
    running here (no model gateway: its port is not served)."""
    settings.VIBEBOX_DEFAULT_DISK = None  # the nested engines (vfs) cannot limit a container's disk
    settings.VIBEBOX_POOL_ENABLED = False
    settings.VIBEBOX_EGRESS_ALLOW_PRIVATE = [f"{target}/32", f"{docker_nodes[1].address}/32"]  # the proxy's check
    settings.VIBEBOX_EGRESS_PROXY_PORT, settings.VIBEBOX_NODE_BACK_LINKS = free_port(), 2
    settings.VIBEBOX_GATEWAY_PORT = 0  # no model gateway here: only the proxy's back links
    Template.objects.update(is_active=False)
    template = Template.objects.create(name="twin-node", display_name="Twin", image=base_image())
    nodes = []
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever, daemon=True, name="test-twin-backlinks")
    links = None
    try:
        for engine, side in zip(docker_nodes, "ab", strict=True):
            node = add_node(engine, f"node-{side}")
            Node.objects.filter(pk=node.pk).update(labels={"twin": side})
            ship(engine, template.image)
            node_prepare(node=node)
            node.refresh_from_db()
            nodes.append(node)
        placement.placement_caches_clear()
        fill_local_engine(template)
        links = BackLinks(EgressProxy(), gateway=None)
        running.start()
        asyncio.run_coroutine_threadsafe(links.refresh(), loop).result(timeout=30)  # parked at both relays
        yield nodes
    finally:
        if links is not None:
            asyncio.run_coroutine_threadsafe(links.aclose(), loop).result(timeout=30)
        if running.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            running.join(timeout=30)
        loop.close()
        placement.placement_caches_clear()
        for engine in docker_nodes:
            unprepare(engine)


def _sh(api_client, sandbox, command: str) -> str:
    answer = api_client.post(f"/api/v1/sandboxes/{sandbox.id}/exec", {"command": command}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["stdout"]


def test_two_nodes_with_one_subnet_keep_their_sandboxes_apart(twins, target, docker_nodes, owner, api_client):
    node_a, node_b = twins
    other = docker_nodes[1].address  # node-2's engine port: B's allowed target
    subnets = [tuple(get_driver(node).network_subnets(network_name())) for node in twins]
    assert subnets[0] == subnets[1], subnets  # the drill's premise: one subnet on both

    a = sandbox_create(owner=owner, template="twin-node", node_labels={"twin": "a"},
                       network_policy={"internet": False, "allow": [f"{target}/32"]})  # fmt: skip
    try:
        b = sandbox_create(owner=owner, template="twin-node", node_labels={"twin": "b"},
                           network_policy={"internet": False, "allow": [f"{other}/32"]})  # fmt: skip
        try:
            assert (a.node_id, b.node_id) == (node_a.pk, node_b.pk)
            address = Sandbox.objects.get(pk=a.pk).network_address
            assert address and Sandbox.objects.get(pk=b.pk).network_address == address  # one address, twice
            assert network.proxy_env(a)["HTTPS_PROXY"] == network.proxy_env(b)["HTTPS_PROXY"]  # one gateway too
            sys.__stderr__.write(f"\nHA drill (g): subnet {','.join(subnets[0])}, sandbox address {address} on both\n")

            # Each one's proxy traffic is judged by its own policy: the node in the back link tells them apart.
            assert _sh(api_client, a, CONNECT.format(target=f"{target}:{ENGINE_PORT}")).startswith("HTTP/1.1 200")
            assert _sh(api_client, b, CONNECT.format(target=f"{target}:{ENGINE_PORT}")).startswith("HTTP/1.1 403")
            assert _sh(api_client, b, CONNECT.format(target=f"{other}:{ENGINE_PORT}")).startswith("HTTP/1.1 200")
            assert _sh(api_client, a, CONNECT.format(target=f"{other}:{ENGINE_PORT}")).startswith("HTTP/1.1 403")
        finally:
            sandbox_destroy(sandbox=b)
    finally:
        sandbox_destroy(sandbox=a)
