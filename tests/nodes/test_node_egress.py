"""A sandbox's own egress rules on a node (docs/nodes.md, "A sandbox's egress rules on a node"): a
create with a restricted policy is placed on a prepared node, its rules are written in the node's
kernel through the node's relay (none on this host), a denied address of the node's LAN is out of
reach and an allowed one is not; a PATCH on the running sandbox moves the rules; destroy removes
them; the reconcile pass rewrites them on the node.

Targets are the test's own containers on the nodes' LAN: the second nested engine's TLS port, and
a listener the test starts at another address."""

import pytest
from django.conf import settings as django_settings

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes.models import Sandbox
from apps.sandboxes.runtime import firewall, get_driver
from apps.sandboxes.services import network, placement
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.nodes import node_prepare
from apps.sandboxes.specs import network_name
from tests.nodes.engines import ENGINE_PORT, add_node, fill_local_engine, lan_listener, ship, unprepare

pytestmark = pytest.mark.django_db

INSTANCE = django_settings.VIBEBOX_INSTANCE
TARGET = f"vibebox-{INSTANCE}-egress-target"


@pytest.fixture
def lan(docker_nodes, docker_client):
    """(allowed, denied): node-2's engine port, and a listener of the test's own at another address
    of the nodes' LAN."""
    with lan_listener(
        docker_client, network=f"vibebox-{INSTANCE}-nodes", host=40, name=TARGET, instance=INSTANCE
    ) as address:
        yield docker_nodes[1].address, address


@pytest.fixture
def node_a(docker_nodes, lan, settings):
    """node-a prepared with the template's image; the LAN's two targets on the operator's
    allow-list (private addresses), written into the node's bridge rules by node_prepare."""
    settings.VIBEBOX_DEFAULT_DISK = None  # the nested engines (vfs) cannot limit a container's disk
    settings.VIBEBOX_POOL_ENABLED = False
    settings.VIBEBOX_EGRESS_ALLOW_PRIVATE = [f"{address}/32" for address in lan]
    engine = docker_nodes[0]
    Template.objects.update(is_active=False)
    template = Template.objects.create(name="egress-node", display_name="Egress", image=base_image())
    node = add_node(engine, "node-a")
    ship(engine, template.image)
    node_prepare(node=node)
    node.refresh_from_db()
    placement.placement_caches_clear()
    fill_local_engine(template)
    yield node
    placement.placement_caches_clear()
    unprepare(engine)


def _reaches(api_client, sandbox, address: str) -> bool:
    command = f"timeout 3 bash -c 'echo > /dev/tcp/{address}/{ENGINE_PORT}' && echo open || echo closed"
    answer = api_client.post(f"/api/v1/sandboxes/{sandbox.id}/exec", {"command": command}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()["stdout"].strip() == "open"


def _node_rules(engine) -> str:
    code, output = engine.container.exec_run(["iptables", "-w", "-S"])
    assert code == 0
    return output.decode()


def test_a_restricted_sandbox_on_a_node_has_its_rules_there(node_a, lan, docker_nodes, owner, api_client, settings):
    allowed, denied = lan
    engine = docker_nodes[0]
    sandbox = sandbox_create(owner=owner, template="egress-node", network_policy={"deny": [f"{denied}/32"]})
    try:
        assert sandbox.node_id == node_a.pk and sandbox.status == "running"
        chain = firewall.sandbox_chain_name(sandbox.container_name)
        on_node = _node_rules(engine)
        assert f"-A {chain} -d {denied}/32 -j REJECT" in on_node  # in the node's kernel...
        assert chain not in firewall.LOCAL.run("iptables", ["-w", "-S"])[1]  # ...not this host's
        stored = Sandbox.objects.get(pk=sandbox.pk)
        assert stored.network_address and f"-s {stored.network_address}/32 -j {chain}" in on_node
        assert network.sandbox_by_address(stored.network_address) is None  # the local proxy's lookup: local only
        assert _reaches(api_client, sandbox, allowed)
        assert not _reaches(api_client, sandbox, denied)

        # A policy change on the running sandbox: in force on the node before the answer.
        url = f"/api/v1/sandboxes/{sandbox.id}/network"
        changed = api_client.patch(url, {"deny": [f"{allowed}/32"]}, format="json")
        assert changed.status_code == 200, changed.content
        assert not _reaches(api_client, sandbox, allowed)
        assert _reaches(api_client, sandbox, denied)

        # The reconcile pass rewrites the node's rules (here: after they were lost).
        bridge = ("vbx-" + network_name().removeprefix("vibebox-"))[:15]  # runtime/docker.py's name
        firewall.sandbox_rules_remove(bridge, sandbox.container_name, runner=get_driver(node_a)._firewall)
        assert _reaches(api_client, sandbox, allowed)
        assert network.network_reconcile() >= 1
        assert not _reaches(api_client, sandbox, allowed)

        # Without back links a policy that goes through the egress proxy is refused on a node (the
        # old one stays): the proxy would be out of its reach (test_node_backlinks.py: with them).
        settings.VIBEBOX_NODE_BACK_LINKS = 0
        refused = api_client.patch(url, {"internet": False}, format="json")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "egress_unavailable"
        assert not _reaches(api_client, sandbox, allowed)
    finally:
        sandbox_destroy(sandbox=sandbox)
    assert chain not in _node_rules(engine)  # removed with the sandbox
