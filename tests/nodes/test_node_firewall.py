"""The egress firewall on a remote node, through the node's relay (docs/nodes.md, "Egress firewall
rules on a remote node"): the relay image (`sandboxd.relay_build`) shipped to a nested engine and
run there as a node runs it (`--network host`, NET_ADMIN, `--firewall`); a node driver whose
firewall runner is a `RelayRunner` isolates its bridge there, and the kernel rules act on the node
(a container on that bridge cannot reach the node's host nor a private address, and can once the
rules are gone), per-sandbox egress rules too; nothing appears in this host's iptables."""

import ipaddress
import ssl
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings

from apps.sandboxes import sandboxd
from apps.sandboxes.runtime import firewall
from apps.sandboxes.runtime.base import EgressRules, NodeConnection
from apps.sandboxes.runtime.docker import DockerDriver
from apps.sandboxes.runtime.firewall_remote import RelayFirewallRefused, RelayRunner, runner_for_node
from apps.sandboxes.runtime.relay import client_context, node_context
from tests.nodes import engines
from tests.nodes.engines import CertificateAuthority
from tests.waiting import wait_for

INSTANCE = django_settings.VIBEBOX_INSTANCE
RELAY_PORT = 2377
RELAY = f"vibebox-{INSTANCE}-nfw-relay"
PROBE = f"vibebox-{INSTANCE}-nfw-probe"
NETWORK = f"vibebox-{INSTANCE}-nfw"


def _exec(engine, *argv: str) -> tuple[int, str]:
    code, output = engine.container.exec_run(list(argv))
    return code, output.decode(errors="replace")


def _local_chains() -> set[str]:
    """This host's chain names (iptables -S), the server's own host."""
    listed = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    return {line.split()[1] for line in listed.splitlines() if line.startswith("-N ")}


@pytest.fixture
def node_relay(docker_nodes):
    """Node 1 with the relay image running `--firewall` on its host's network; yields (engine,
    RelayRunner, relay image)."""
    engine = docker_nodes[0]
    image = sandboxd.relay_build()
    engines.ship(engine, image)
    ca = CertificateAuthority("node-1 relay CA")
    server, client = ca.issue("relay", server_ip=engine.address), ca.issue("vibebox-server")
    files = {"ca.pem": ca.pem, "cert.pem": server.cert, "key.pem": server.key}
    engine.container.put_archive("/", engines._tar({f"relay-tls/{name}": data for name, data in files.items()}))
    _exec(engine, "docker", "rm", "-f", RELAY, PROBE)
    engine.docker(
        "run", "-d", "--name", RELAY, "--network", "host", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
        "-v", "/relay-tls:/tls:ro", image, "/opt/vibebox/sandboxd", "relay",
        "--listen", f"{engine.address}:{RELAY_PORT}", "--cert", "/tls/cert.pem", "--key", "/tls/key.pem",
        "--client-ca", "/tls/ca.pem", "--allow", "10.255.255.0/24", "--firewall",
    )  # fmt: skip
    connection = NodeConnection(
        url=engine.url, ca=engine.ca.pem.decode(), relay_port=RELAY_PORT, relay_ca=ca.pem.decode(),
        relay_cert=client.cert.decode(), relay_key=client.key.decode(),
    )  # fmt: skip
    runner = runner_for_node(connection, name="node-1", context=node_context(connection))

    def answering():
        try:
            return runner.has("iptables") or pytest.fail("the relay image has no iptables")
        except ConnectionRefusedError:
            return None

    try:
        wait_for(answering, timeout=60, what="the relay's firewall agent")
        yield engine, runner, image
    finally:
        print(_exec(engine, "docker", "logs", RELAY)[1])  # shown with a failure: one line per command
        _exec(engine, "docker", "rm", "-f", RELAY, PROBE)


def _connects(engine, address: str, port: int) -> bool:
    """Whether the probe container (on the node's bridge) opens a TCP connection to address:port;
    a dropped connection is given up after 3 s."""
    code, _ = _exec(engine, "docker", "exec", PROBE, "timeout", "3", "bash", "-c", f"echo > /dev/tcp/{address}/{port}")
    return code == 0


def test_a_nodes_bridge_is_isolated_through_its_relay(node_relay, docker_nodes, settings):
    engine, runner, image = node_relay
    other = docker_nodes[1].address  # another host of the node's LAN: a private address
    local_before = _local_chains()
    driver = DockerDriver(node=NodeConnection(url=engine.url, ca=engine.ca.pem.decode(),
                                              cert=engine.client_pem.cert.decode(),
                                              key=engine.client_pem.key.decode()),
                          firewall_runner=runner)  # fmt: skip
    settings.VIBEBOX_GATEWAY_PORT, settings.VIBEBOX_EGRESS_PROXY_PORT = 8093, 8094
    settings.VIBEBOX_NODE_BACK_LINKS = 0  # no back links: not even the gateway's port is opened
    bridge = driver.ensure_network(NETWORK, {"vibebox.test": "node-firewall"})
    try:
        # The chains are in the node's kernel: its INPUT and DOCKER-USER jump to them.
        code, listed = _exec(engine, "iptables", "-w", "-S")
        assert code == 0, listed
        inbound, outbound = firewall.chain_name(bridge), firewall.egress_chain_name(bridge)
        assert f"-N {inbound}" in listed and f"-N {outbound}" in listed
        assert f"-A INPUT -i {bridge} -j {inbound}" in listed
        assert f"-A DOCKER-USER -i {bridge} -j {outbound}" in listed
        # Nothing into the node's host but replies: no model gateway (nor proxy) exception there.
        replies_then_drop = [
            f"-A {inbound} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            f"-A {inbound} -j DROP",
        ]
        assert [line for line in listed.splitlines() if line.startswith(f"-A {inbound} ")] == replies_then_drop
        assert f"-A INPUT -i {bridge} -j {inbound}" in firewall.rules(bridge, runner=runner)
        gateway = driver.network_gateway(NETWORK)
        # With back links (the default) the relay's two ports on the bridge's gateway, and nothing else.
        settings.VIBEBOX_NODE_BACK_LINKS = 4
        assert firewall.isolate_bridge(bridge, gateway, runner=runner)
        opened = [f"-A {inbound} -d {gateway}/32 -p tcp -m tcp --dport {port} -j RETURN" for port in (8093, 8094)]
        listed = _exec(engine, "iptables", "-w", "-S", inbound)[1].splitlines()
        assert [line for line in listed if line.startswith(f"-A {inbound} ")] == [
            replies_then_drop[0],
            *opened,
            replies_then_drop[1],
        ]
        settings.VIBEBOX_NODE_BACK_LINKS = 0
        assert firewall.isolate_bridge(bridge, gateway, runner=runner)
        engine.docker("run", "-d", "--name", PROBE, "--network", NETWORK, image, "sleep", "600")

        # The rules act: the node's host (its engine's port 2376, on the bridge's gateway and on the
        # node's own address, the relay's port) and a private address of its LAN are out of reach.
        assert not _connects(engine, gateway, 2376)
        assert not _connects(engine, engine.address, RELAY_PORT)
        assert not _connects(engine, other, 2376)

        # The operator's allow-list reaches the node too (a rebuild through the relay) ...
        settings.VIBEBOX_EGRESS_ALLOW_PRIVATE = [f"{other}/32"]
        began = time.monotonic()
        assert firewall.isolate_bridge(bridge, gateway, runner=runner)
        # Not an assertion (no timed assertions): the number for docs/nodes.md.
        sys.__stderr__.write(f"\nisolate_bridge through the relay: {time.monotonic() - began:.2f} s\n")
        assert _connects(engine, other, 2376)
        # ... and a sandbox's own egress rules (per-sandbox chain keyed by its address) close it again.
        addresses = driver.egress_rules_set(PROBE, NETWORK, EgressRules(deny=(f"{other}/32",)))
        assert addresses and all(ipaddress.ip_address(a) for a in addresses)
        chain = firewall.sandbox_chain_name(PROBE)
        lines = firewall.sandbox_rules(bridge, PROBE, runner=runner)
        assert any(line.endswith(f"-j {chain}") for line in lines), lines
        assert f"-A {chain} -d {other}/32 -j REJECT --reject-with icmp-admin-prohibited" in lines
        assert not _connects(engine, other, 2376)
        driver.egress_rules_remove(PROBE, NETWORK)
        assert firewall.sandbox_rules(bridge, PROBE, runner=runner) == []
        assert _connects(engine, other, 2376)

        # Without the bridge's rules the same container reaches the node's host: it was the rules.
        firewall.remove_bridge_rules(bridge, runner=runner)
        assert firewall.rules(bridge, runner=runner) == []
        assert _connects(engine, gateway, 2376)

        # Nothing of it on the server's own host.
        local_after = _local_chains()
        assert not {inbound, outbound, firewall.policy_chain_name(bridge), chain} & local_after
        # (other tests running beside this one may add chains of their own bridges meanwhile)
        assert not {name for name in local_after - local_before if bridge in name}
    finally:
        _exec(engine, "docker", "rm", "-f", PROBE)
        driver.remove_network(NETWORK)
        driver.close()
    code, listed = _exec(engine, "iptables", "-w", "-S")
    assert bridge not in listed, listed


def test_the_relay_runs_only_the_firewalls_binaries(node_relay):
    engine, runner, _ = node_relay
    with pytest.raises(RelayFirewallRefused) as refused:
        runner.run("sh", ["-c", "touch /tmp/owned"])
    assert refused.value.status == 403 and '"sh" is not one of' in refused.value.message
    assert _exec(engine, "docker", "exec", RELAY, "test", "-e", "/tmp/owned")[0] == 1  # nothing ran
    with pytest.raises(RelayFirewallRefused) as refused:
        runner.run("iptables", ["--modprobe=/bin/sh", "-S"])
    assert refused.value.status == 403
    # What it runs, it runs on the node: the node's chains, not this host's.
    code, stdout, _ = runner.run("iptables", ["-w", "-S", "DOCKER-USER"])
    assert code == 0 and stdout.startswith("-N DOCKER-USER")
    code, _, stderr = runner.run("iptables", ["-w", "-S", "NO-SUCH-CHAIN"])
    assert code != 0 and stderr
    # The node's resolvers come from the relay (its host's resolv.conf), loopback ones left out.
    assert all(not address.is_loopback for address in runner.resolvers())
    # Another CA's client certificate gets nothing.
    stranger = CertificateAuthority("another CA").issue("intruder")
    ca = runner.context.get_ca_certs(binary_form=True)
    assert ca
    pem = ssl.DER_cert_to_PEM_cert(ca[0])
    intruder = RelayRunner(
        runner.relay,
        context=client_context(ca=pem, cert=stranger.cert.decode(), key=stranger.key.decode()),
        name="intruder",
    )
    with pytest.raises(OSError):
        intruder.run("iptables", ["-w", "-S"])


def test_a_node_without_a_relay_runs_nothing_here_and_refuses_egress_rules():
    """A node's driver given no runner (firewall.NONE): nothing reaches this host's iptables, the
    bridge is reported not isolated, and a restricted sandbox's rules fail loudly."""
    before = _local_chains()
    assert not firewall.isolate_bridge("vbx-nfw-none", "10.255.0.1", runner=firewall.NONE)
    assert not firewall.available(firewall.NONE)
    with pytest.raises(OSError, match="no firewall agent"):
        firewall.sandbox_rules_set(
            "vbx-nfw-none", "sbx_x", ["10.255.0.5"], EgressRules(closed=True), runner=firewall.NONE
        )
    with pytest.raises(OSError, match="no firewall agent"):
        firewall.sandbox_rules_replace_all(
            "vbx-nfw-none", [("sbx_x", ["10.255.0.5"], EgressRules(closed=True))], runner=firewall.NONE
        )
    firewall.sandbox_rules_set("vbx-nfw-none", "sbx_x", ["10.255.0.5"], None, runner=firewall.NONE)  # no rules: fine
    firewall.remove_bridge_rules("vbx-nfw-none", runner=firewall.NONE)
    assert not {name for name in _local_chains() - before if "nfw-none" in name}  # (others' may come)
