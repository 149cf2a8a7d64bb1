"""`sandboxd relay` as a node will run it (docs/sandboxd.md, "The relay"; docs/nodes.md): the
binary from the sandboxd volume, in a container with the host's network, reached over mutual TLS
by the server's side (runtime/relay.py), opening a tunnel to a real sandbox's sandboxd on its
bridge, and refusing what it must. Here the "node" is this host's own engine: the relay listens on
loopback, the sandboxes' network is the one it may open."""

import ipaddress
import json
import ssl

import pytest
from django.conf import settings

from apps.marketplace.catalog import base_image
from apps.sandboxes import sandboxd
from apps.sandboxes.runtime import DAEMON_MOUNT
from apps.sandboxes.runtime.relay import RelayRefused, bridge, client_context, tunnel
from apps.sandboxes.runtime.sandboxd_client import PORT
from bench.common import free_port
from tests.nodes.engines import CertificateAuthority
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def relay(docker_client, tmp_path, create_sandbox):
    """A sandbox, and a relay allowed to open sandboxd's port on the sandbox's network: yields
    (relay address, the sandbox's address, the CA, a client certificate of that CA)."""
    sandbox = create_sandbox(template="python-3")
    container = docker_client.containers.get(sandbox["id"])
    network = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))
    address = network["IPAddress"]
    subnet = ipaddress.ip_interface(f"{address}/{network['IPPrefixLen']}").network
    ca = CertificateAuthority("node CA")
    server, client = ca.issue("relay", server_ip="127.0.0.1"), ca.issue("vibebox-server")
    tls = tmp_path / "tls"
    tls.mkdir()
    for name, data in {"ca.pem": ca.pem, "cert.pem": server.cert, "key.pem": server.key}.items():
        (tls / name).write_bytes(data)
    port = free_port()
    flags = f"--listen 127.0.0.1:{port} --cert /tls/cert.pem --key /tls/key.pem --client-ca /tls/ca.pem"
    started = docker_client.containers.run(
        sandboxd.image(base_image()),  # FROM scratch: the static binary alone, as a node gets it shipped
        ["relay", *flags.split(), "--allow", str(subnet), "--ports", str(PORT)],
        entrypoint=[f"{DAEMON_MOUNT}/sandboxd"],
        network_mode="host",
        volumes={str(tls): {"bind": "/tls", "mode": "ro"}},
        labels={"vibebox.managed": "1", "vibebox.instance": settings.VIBEBOX_INSTANCE, "vibebox.test": "relay"},
        detach=True,
    )
    try:
        yield ("127.0.0.1", port), address, ca, client
    finally:
        logs = started.logs().decode(errors="replace")
        started.remove(force=True)
        print(logs)  # shown with a failure: the relay's one line per tunnel and refusal


def _context(ca, client) -> ssl.SSLContext:
    return client_context(ca=ca.pem.decode(), cert=client.cert.decode(), key=client.key.decode())


def test_a_tunnel_reaches_a_sandboxs_sandboxd_and_nothing_else(relay):
    address, target, ca, client = relay
    context = _context(ca, client)

    def tunnelled():
        try:
            return tunnel(address, (target, PORT), context=context, timeout=10)
        except ConnectionRefusedError:  # the relay's container is still starting
            return None
        except RelayRefused as exc:  # 502: sandboxd did not accept in time; the server retries these too
            if exc.status != 502:
                raise
            return None

    sock = wait_for(tunnelled, timeout=60, what="the relay to accept a tunnel")
    with sock:
        # sandboxd's health check (any GET): the tunnel carries HTTP to the sandbox and back.
        sock.sendall(b"GET / HTTP/1.1\r\nHost: sandboxd\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body) == {"ok": True}, answer

    # The same through a bridge (what sandboxd_client uses): a plain local socket, the relay's end
    # an EOF there.
    with bridge(tunnel(address, (target, PORT), context=context, timeout=10)) as local:
        local.settimeout(10)
        local.sendall(b"GET / HTTP/1.1\r\nHost: sandboxd\r\nConnection: close\r\n\r\n")
        bridged = b""
        while chunk := local.recv(4096):
            bridged += chunk
    assert bridged.partition(b"\r\n\r\n")[2] == body and bridged.startswith(b"HTTP/1.1 200")

    # Another port of the same sandbox, and an address outside its network: refused, reasons named.
    with pytest.raises(RelayRefused) as refused:
        tunnel(address, (target, 22), context=context, timeout=10)
    assert refused.value.status == 403 and "port 22 is not one the relay opens" in refused.value.message
    with pytest.raises(RelayRefused) as refused:
        tunnel(address, ("127.0.0.1", PORT), context=context, timeout=10)
    assert refused.value.status == 403 and "127.0.0.1 is not in a network" in refused.value.message


def test_a_client_certificate_of_another_ca_gets_no_tunnel(relay):
    address, target, ca, _ = relay
    stranger = CertificateAuthority("another CA").issue("intruder")
    context = _context(ca, stranger)

    def refused():
        try:
            tunnel(address, (target, PORT), context=context, timeout=10)
        except ConnectionRefusedError:  # still starting
            return None
        except (ssl.SSLError, ConnectionError) as exc:
            return exc
        pytest.fail("a tunnel was opened for a certificate of another CA")

    assert wait_for(refused, timeout=60, what="the relay's refusal")
