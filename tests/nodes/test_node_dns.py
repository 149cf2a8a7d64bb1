"""A node's DNS servers as Docker chooses them (docs/nodes.md, "Egress firewall rules on a remote
node"): the node's /etc/docker/daemon.json lists `dns`; node_prepare's relay reads it through its
read-only bind (the node has no systemd-resolved: that file's bind is left out), the relay's
GET /firewall reports it, and a restricted sandbox with internet keeps DNS to it open in the
node's kernel. The address is never sent anything: the test reads the rules."""

import json

import pytest

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes.runtime import firewall, get_driver
from apps.sandboxes.services import placement
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.nodes import node_prepare
from apps.sandboxes.specs import network_name
from tests.nodes.engines import add_node, fill_local_engine, ship, unprepare

pytestmark = pytest.mark.django_db

RESOLVER = "10.255.53.53"  # private, never queried: the rules are read, not used


@pytest.fixture
def dns_node(docker_nodes, settings):
    settings.VIBEBOX_DEFAULT_DISK = None  # the nested engines (vfs) cannot limit a container's disk
    settings.VIBEBOX_POOL_ENABLED = False
    engine = docker_nodes[0]
    # The running dockerd does not read it again: only the relay does (and Docker would at its restart).
    daemon = json.dumps({"dns": [RESOLVER, "127.0.0.1"]})
    write = f"mkdir -p /etc/docker && echo '{daemon}' >/etc/docker/daemon.json"  # 0644, as a host has it
    written = engine.container.exec_run(["sh", "-c", write])
    assert written.exit_code == 0, written.output
    Template.objects.update(is_active=False)
    template = Template.objects.create(name="dns-node", display_name="DNS", image=base_image())
    node = add_node(engine, "node-dns")
    try:
        ship(engine, template.image)
        node_prepare(node=node)
        node.refresh_from_db()
        placement.placement_caches_clear()
        fill_local_engine(template)
        yield engine, node
    finally:
        placement.placement_caches_clear()
        unprepare(engine)
        engine.container.exec_run(["rm", "-f", "/etc/docker/daemon.json"])


def test_a_nodes_daemon_json_dns_is_its_resolver(dns_node, owner):
    engine, node = dns_node
    relay = json.loads(engine.docker("inspect", "vibebox-relay"))[0]
    bound = {mount["Destination"]: mount["Source"] for mount in relay["Mounts"] if mount["Type"] == "bind"}
    assert bound == {"/host/etc/docker/daemon.json": "/etc/docker/daemon.json"}  # no resolved here: left out
    runner = get_driver(node)._firewall
    resolvers = runner.resolvers()
    assert [str(address) for address in resolvers] == [RESOLVER]  # daemon.json's, loopback left out

    bridge = ("vbx-" + network_name().removeprefix("vibebox-"))[:15]  # runtime/docker.py's name
    outbound = firewall.egress_chain_name(bridge)
    on_node = engine.container.exec_run(["iptables", "-w", "-S"])[1].decode()
    assert f"-A {outbound} -d {RESOLVER}/32 -p udp -m udp --dport 53 -j RETURN" in on_node

    # Internet but a name denied: direct connections closed (the proxy decides), DNS to the node's resolver open.
    sandbox = sandbox_create(owner=owner, template="dns-node", network_policy={"deny": ["blocked.test"]})
    try:
        assert sandbox.node_id == node.pk and sandbox.status == "running"
        chain = firewall.sandbox_chain_name(sandbox.container_name)
        lines = firewall.sandbox_rules(bridge, sandbox.container_name, runner=runner)
        assert f"-A {chain} -d {RESOLVER}/32 -p udp -m udp --dport 53 -j RETURN" in lines, lines
        assert f"-A {chain} -d {RESOLVER}/32 -p tcp -m tcp --dport 53 -j RETURN" in lines
        assert not any("127.0.0.1" in line for line in lines)
    finally:
        sandbox_destroy(sandbox=sandbox)


def test_docker_resolvers_chooses_as_docker_does():
    """The server's own host's choice (firewall.docker_resolvers), the relay's in Go: the same rules."""
    stub, upstream = "nameserver 127.0.0.53\noptions edns0\n", "nameserver 10.9.8.7\nnameserver fd00::1\n"
    assert firewall.docker_resolvers("nameserver 10.1.2.3\n", upstream, "") == ["10.1.2.3"]
    assert firewall.docker_resolvers(stub, upstream, "") == ["10.9.8.7", "fd00::1"]  # the stub: the upstream list
    assert firewall.docker_resolvers(stub, "", "") == ["127.0.0.53"]  # no upstream file: left as it is
    assert firewall.docker_resolvers(stub, upstream, '{"dns": ["10.5.5.5"]}') == ["10.5.5.5"]  # daemon.json first
    assert firewall.docker_resolvers("nameserver 10.1.2.3\n", "", '{"dns": []}') == ["10.1.2.3"]
    assert firewall.docker_resolvers("nameserver 10.1.2.3\n", "", "not json") == ["10.1.2.3"]
    usable = firewall.usable_resolvers(["127.0.0.53", "10.9.8.7", "fe80::1%eth0", "10.9.8.7", "::1", "name"])
    assert [str(address) for address in usable] == ["10.9.8.7", "fe80::1"]
