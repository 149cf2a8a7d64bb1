"""Sandboxes cannot reach private networks or the host's other addresses (issue 17, items 6 and 14).

The private network is one the test makes: a network namespace on the host, joined by a veth pair
with a private /30 (the host routes to it like to any LAN), with a small HTTP server inside. A
container on another Docker network would prove nothing (Docker isolates its bridges already).
No traffic goes anywhere but this namespace, the sandbox and the host's own addresses.
"""

import contextlib
import ipaddress
import socket
import subprocess
import sys
import threading
import urllib.request

import pytest
from django.conf import settings as django_settings

from apps.sandboxes.runtime import firewall
from apps.sandboxes.runtime.docker import DockerDriver
from apps.sandboxes.specs import base_labels, network_name
from bench.common import free_port
from tests.waiting import wait_for

SUBNET = ipaddress.ip_network("10.213.77.0/30")  # checked unused on the test machines (ip addr, ip route)
PROBE = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); print('connected')"
MARKER = "inside-the-private-namespace"
HTTP_PROBE = "import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@pytest.fixture
def network(docker_client, create_sandbox):
    """(container, bridge, gateway address) of a fresh sandbox on the test instance's network."""
    container = docker_client.containers.get(create_sandbox()["id"])
    network = docker_client.networks.get(f"vibebox-{django_settings.VIBEBOX_INSTANCE}")
    bridge = network.attrs["Options"]["com.docker.network.bridge.name"]
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    return container, bridge, gateway


@contextlib.contextmanager
def namespace_http_server(tmp_path, *, name: str, subnet, marker: str):
    """An HTTP server serving `marker` at the second address of `subnet` (a /30), inside a network
    namespace of the test's own joined to the host by a veth pair (the host side takes the first
    address); yields {"url", "host_side", "port"}. `name` (5 letters) keeps concurrent tests'
    namespaces and links apart; skips when the subnet is in use on this machine."""
    host_side, ns_side = (str(address) for address in subnet.hosts())
    instance = django_settings.VIBEBOX_INSTANCE
    namespace, host_veth, ns_veth = f"{name}-{instance}", f"{name}{instance}"[:13] + "h", f"{name}{instance}"[:13] + "n"
    _ip("link", "del", host_veth, check=False)  # left by an interrupted run
    _ip("netns", "del", namespace, check=False)
    busy = _ip("-o", "addr").stdout + _ip("route").stdout
    if str(subnet.network_address).rsplit(".", 1)[0] + "." in busy:
        pytest.skip(f"{subnet} is in use on this machine")
    server = None
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", host_veth, "type", "veth", "peer", "name", ns_veth)
        _ip("link", "set", ns_veth, "netns", namespace)
        _ip("addr", "add", f"{host_side}/{subnet.prefixlen}", "dev", host_veth)
        _ip("link", "set", host_veth, "up")
        _ip("-n", namespace, "addr", "add", f"{ns_side}/{subnet.prefixlen}", "dev", ns_veth)
        _ip("-n", namespace, "link", "set", ns_veth, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        port = free_port()
        (tmp_path / "index.html").write_text(marker)
        server = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "http.server", str(port), "--bind", ns_side],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://{ns_side}:{port}/"

        def answers() -> bool:  # from the host (its own namespace's address): up once it answers
            assert server.poll() is None, "the namespace's server exited"
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return True
            except OSError:
                return False

        wait_for(answers, what="the namespace's server to answer")
        yield {"url": url, "host_side": host_side, "port": port}
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        _ip("link", "del", host_veth, check=False)
        _ip("netns", "del", namespace, check=False)


@pytest.fixture
def private_server(tmp_path):
    """An HTTP server inside a network namespace of the test's own, on SUBNET."""
    with namespace_http_server(tmp_path, name="vbxeg", subnet=SUBNET, marker=MARKER) as server:
        yield server


def rebuild_rules() -> None:
    """What a VibeBox process starting now with these settings installs (a fresh driver: the
    shared one has set the network up once already)."""
    driver = DockerDriver(base_url=django_settings.VIBEBOX_DOCKER_HOST or None)
    driver.ensure_network(network_name(), base_labels())


@contextlib.contextmanager
def rules_with(settings, **overrides):
    """The bridge's rules rebuilt with these settings, and rebuilt back afterwards."""
    saved = {name: getattr(settings, name) for name in overrides}
    try:
        for name, value in overrides.items():
            setattr(settings, name, value)
        rebuild_rules()
        yield
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        rebuild_rules()


def run(container, *argv) -> tuple[int, str]:
    result = container.exec_run(list(argv))
    return result.exit_code, result.output.decode(errors="replace")


def test_a_private_network_is_unreachable_by_default_and_reachable_when_allowed(network, private_server, settings):
    container, _, _ = network
    url = private_server["url"]
    code, output = run(container, "python3", "-c", HTTP_PROBE, url)
    assert code != 0 and MARKER not in output, output
    with rules_with(settings, VIBEBOX_EGRESS_ALLOW_PRIVATE=[str(SUBNET)]):
        code, output = run(container, "python3", "-c", HTTP_PROBE, url)
        assert code == 0 and MARKER in output, output
    # The allow-list is gone again: so is the way there.
    code, output = run(container, "python3", "-c", HTTP_PROBE, url)
    assert code != 0 and MARKER not in output, output


def test_rules_reject_private_link_local_and_reserved_destinations(network):
    _, bridge, _ = network
    lines = firewall.rules(bridge)
    chain = firewall.egress_chain_name(bridge)
    # Jumped to from DOCKER-USER (kept across dockerd restarts), for traffic from the bridge only.
    assert f"-A DOCKER-USER -i {bridge} -j {chain}" in lines
    rejected = {
        line.split(" -d ")[1].split()[0] for line in lines if line.startswith(f"-A {chain} -d") and "REJECT" in line
    }
    for cidr in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8"):
        assert cidr in rejected, lines
    # Nothing else: public addresses stay reachable.
    assert not [
        line for line in lines if line.startswith(f"-A {chain}") and " -d " not in line and "ESTABLISHED" not in line
    ]
    if "ip6tables" in [family.binary for family in firewall._families()]:
        lines6 = firewall.rules(bridge, ipv6=True)
        rejected6 = {
            line.split(" -d ")[1].split()[0] for line in lines6 if f"-A {chain} -d" in line and "REJECT" in line
        }
        assert {"fe80::/10", "fc00::/7", "::1/128", "ff00::/8"} <= rejected6, lines6


def test_dns_to_the_hosts_resolvers_stays_allowed(network):
    _, bridge, _ = network
    chain = firewall.egress_chain_name(bridge)
    lines = firewall.rules(bridge)
    for resolver in firewall.host_resolvers():
        if resolver.version == 4:
            for proto in ("udp", "tcp"):
                allow = f"-A {chain} -d {resolver}/32 -p {proto} -m {proto} --dport 53 -j RETURN"
                assert allow in lines
                # ... and before the rejections.
                assert lines.index(allow) < min(i for i, line in enumerate(lines) if "REJECT" in line)


def test_the_gateway_port_is_open_on_the_gateway_address_only(network, private_server, settings):
    """Issue 17, item 14: a listener on the gateway's port at another host address is out of reach."""
    container, bridge, gateway = network
    port = free_port()
    listeners, accepted = [], []
    for address in (gateway, private_server["host_side"]):
        listener = socket.socket()
        listener.bind((address, port))
        listener.listen()
        listeners.append(listener)

        def accept(sock=listener, where=address):
            with contextlib.suppress(OSError):
                conn, _ = sock.accept()
                accepted.append(where)
                conn.close()

        threading.Thread(target=accept, daemon=True).start()
    try:
        with rules_with(settings, VIBEBOX_GATEWAY_PORT=port):
            code, output = run(container, "python3", "-c", PROBE, gateway, str(port))
            assert code == 0 and "connected" in output, output
            code, output = run(container, "python3", "-c", PROBE, private_server["host_side"], str(port))
            assert code != 0, output
            exception = f"-A {firewall.chain_name(bridge)} -d {gateway}/32 -p tcp -m tcp --dport {port} -j RETURN"
            assert exception in firewall.rules(bridge)
    finally:
        for listener in listeners:
            listener.close()
    assert private_server["host_side"] not in accepted
