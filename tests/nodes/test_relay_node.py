"""The relay on a node (docs/nodes.md, "How the server reaches sandboxd on a remote node"):
node_prepare mints its credentials and starts it on a nested engine, and the services reach the
sandboxd of a sandbox on that node through it (commands, streamed output, files), never at the
container's bridge address, which only the node can route."""

import io
import json
import os
import ssl
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes import sandboxd
from apps.sandboxes.models import Node, Sandbox, new_execution_id
from apps.sandboxes.runtime import DAEMON_MOUNT, ContainerSpec, ExecRequest, get_driver, sandboxd_client
from apps.sandboxes.runtime.base import WatchRequest
from apps.sandboxes.runtime.relay import RelayRefused, client_context, tunnel
from apps.sandboxes.services.exec import sandbox_exec
from apps.sandboxes.services.files import file_download, file_upload
from apps.sandboxes.services.nodes import RELAY_NAME, RELAY_VOLUME, node_prepare, node_ship_image
from apps.sandboxes.specs import network_name
from tests.conftest import sandbox_row
from tests.nodes.engines import CertificateAuthority, add_node
from vibebox import exceptions as errors
from vibebox.crypto import decrypt

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(db):
    return Template.objects.create(name="on-relay", display_name="On relay", image=base_image(), user="root")


@pytest.fixture
def relayed_node(docker_nodes):
    """Node `node-b` (the second nested engine), prepared: sandboxd and the relay on it. The relay,
    its files and the sandbox network are removed afterwards."""
    engine = docker_nodes[1]
    node = add_node(engine, "node-b")
    prepared = node_prepare(node=node)
    node.refresh_from_db()
    try:
        yield engine, node, prepared
    finally:
        driver = get_driver(Node.objects.get(pk=node.pk))
        driver.remove_network(network_name())  # its firewall rules go through the relay: first
        driver.relay_remove(RELAY_NAME, RELAY_VOLUME)


def _inspect(engine, name: str) -> dict:
    return json.loads(engine.docker("inspect", name))[0]


def test_prepare_starts_the_relay_and_a_second_prepare_changes_nothing(relayed_node, docker_client):
    engine, node, prepared = relayed_node
    assert prepared.relay_started and prepared.relay_port == node.relay_port == 2377
    network = _inspect(engine, network_name())  # made on the node, as the local engine makes it
    assert list(prepared.subnets) == [c["Subnet"] for c in network["IPAM"]["Config"]]
    assert network["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    relay = _inspect(engine, RELAY_NAME)
    host = relay["HostConfig"]
    assert relay["State"]["Running"] and host["NetworkMode"] == "host" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert sorted(host["CapAdd"]) == ["NET_ADMIN", "NET_RAW"]  # the firewall agent's, nothing else
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert [(m["Name"], m["Destination"], m["RW"]) for m in relay["Mounts"]] == [(RELAY_VOLUME, "/tls", False)]
    args = relay["Args"]
    assert args[args.index("--allow") + 1] == ",".join(prepared.subnets)
    assert args[args.index("--ports") + 1] == "1-65535" and ":2377" in args  # sandboxd's and previews' ports
    assert "--firewall" in args
    assert relay["Image"] == docker_client.images.get(sandboxd.relay_image(base_image())).id
    assert not docker_client.containers.list(all=True, filters={"name": f"^{RELAY_NAME}$"})  # not on this engine

    again = node_prepare(node=node)  # the same image, arguments and files: left alone
    assert not again.relay_started and again.image.sent == 0 and not again.volume_made
    assert _inspect(engine, RELAY_NAME)["Id"] == relay["Id"]
    node.refresh_from_db()
    assert node.relay_image == sandboxd.relay_image(base_image()) == sandboxd.relay_current()  # its tag: placeable

    # The keys are stored encrypted; nothing on the row holds a key in clear.
    row = json.dumps(Node.objects.filter(pk=node.pk).values()[0], default=str)
    assert "PRIVATE KEY" not in row
    assert decrypt(node.relay_key).startswith("-----BEGIN PRIVATE KEY-----")
    assert decrypt(node.relay_server_key).startswith("-----BEGIN PRIVATE KEY-----")

    # The server's client certificate opens it (a CONNECT it refuses itself); another CA's does not.
    where = (engine.address, node.relay_port)
    context = client_context(ca=node.relay_ca, cert=node.relay_cert, key=decrypt(node.relay_key))
    with pytest.raises(RelayRefused) as refused:
        tunnel(where, ("127.0.0.1", sandboxd_client.PORT), context=context, timeout=10)
    assert refused.value.status == 403
    stranger = CertificateAuthority("another CA").issue("intruder")
    foreign = client_context(ca=node.relay_ca, cert=stranger.cert.decode(), key=stranger.key.decode())
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tunnel(where, ("127.0.0.1", sandboxd_client.PORT), context=foreign, timeout=10)

    # Another argument (the port) replaces it; it answers there, with the same credentials.
    Node.objects.filter(pk=node.pk).update(relay_port=2399)
    moved = node_prepare(node=node)
    replaced = _inspect(engine, RELAY_NAME)
    assert moved.relay_started and replaced["Id"] != relay["Id"] and ":2399" in replaced["Args"]
    with pytest.raises(RelayRefused) as refused:
        tunnel((engine.address, 2399), ("127.0.0.1", sandboxd_client.PORT), context=context, timeout=10)
    assert refused.value.status == 403


def test_addnode_takes_the_relays_port(docker_nodes):
    engine = docker_nodes[0]
    files = engine.write_client_files(engine.client_dir)
    flags = ["--tlscacert", str(files["ca"]), "--tlscert", str(files["cert"]), "--tlskey", str(files["key"])]
    with pytest.raises(CommandError, match=r"The relay's port is 1-65535 \(got 70000\)"):
        call_command("addnode", "node-a", engine.url, *flags, "--relay-port", "70000", stdout=StringIO())
    assert not Node.objects.exists()
    call_command("addnode", "node-a", engine.url, *flags, "--relay-port", "2400", stdout=StringIO())
    assert Node.objects.get(name="node-a").relay_port == 2400
    call_command("addnode", "node-c", engine.url, *flags, stdout=StringIO())
    node = Node.objects.get(name="node-c")
    assert node.relay_port == 2377 and not node.relay_ca  # minted by node_prepare, not before

    # Its sandboxd cannot be reached before then: a clear error, nothing dialled.
    daemon_image, daemon_volume = sandboxd.image(base_image()), "vibebox-node-norelay-sandboxd"
    for tag in (base_image(), daemon_image):
        node_ship_image(node=node, tag=tag)
    driver = get_driver(node)
    driver.volume_from_image(daemon_volume, image=daemon_image, path=DAEMON_MOUNT, labels={"vibebox.test": "norelay"})
    spec = ContainerSpec(
        name="vibebox-norelay", image=base_image(), labels={"vibebox.test": "norelay"}, env={}, volume=None,
        network="bridge", daemon_volume=daemon_volume, memory=256 * 1024**2,
    )  # fmt: skip
    try:
        driver.start(driver.create(spec).name)
        request = ExecRequest(argv=("true",), exec_id=new_execution_id(), workdir="/")
        with pytest.raises(errors.RuntimeFailure) as failed:
            driver.exec(spec.name, request)
        assert failed.value.details["reason"] == "node_no_relay"
        assert "manage.py shipimage NODE --sandboxd" in failed.value.message
    finally:
        driver.remove(spec.name)
        driver.remove_volume(daemon_volume)


def test_the_services_reach_a_sandbox_on_the_node_through_the_relay(relayed_node, docker_client, owner, template):
    engine, node, prepared = relayed_node
    node_ship_image(node=node, tag=base_image())
    driver = get_driver(node)
    sandbox = Sandbox.objects.get(pk=sandbox_row(owner, template, node=node, image=base_image()).pk)
    spec = ContainerSpec(
        name=sandbox.container_name, image=base_image(), labels={"vibebox.test": "relay-node"}, env={},
        volume=None, network=network_name(), daemon_volume=prepared.volume, memory=256 * 1024**2,
    )  # fmt: skip
    try:
        driver.start(driver.create(spec).name)
        assert not docker_client.containers.list(all=True, filters={"name": sandbox.container_name})

        outcome = sandbox_exec(sandbox=sandbox, command="echo hello from $(hostname) as $(id -un)")
        assert (outcome.result.exit_code, outcome.stdout) == (0, "hello from sandbox as root\n")
        # The connection sandboxd handed the next nonce on is kept under the relayed address: the
        # idle pool never takes it for a local container at the same bridge address.
        kept = [where for where, _ in sandboxd_client._idle._idle if _ == sandbox.container_name]
        assert kept and all(isinstance(where, sandboxd_client.Relayed) for where in kept)
        assert kept[0].relay == (engine.address, node.relay_port) and kept[0] != kept[0].host

        data = b"written through the relay\n" * 1000
        written = file_upload(sandbox=sandbox, path="/workspace/note.txt", fileobj=io.BytesIO(data), size=len(data))
        assert written.size == len(data)
        assert b"".join(file_download(sandbox=sandbox, path="/workspace/note.txt").chunks) == data

        # Output as it comes: the command waits for a file that the callback writes (through the
        # relay, on another connection) only once the first line has arrived.
        seen = []

        def on_output(stream, chunk):
            seen.append(chunk)
            if b"first" in chunk:
                file_upload(sandbox=sandbox, path="/tmp/go", fileobj=io.BytesIO(b"go"), size=2)

        script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second"
        streamed = sandbox_exec(sandbox=sandbox, command=script, timeout=60, on_output=on_output)
        assert streamed.result.exit_code == 0 and streamed.stdout == "first\nsecond\n"
        assert b"".join(seen) == b"first\nsecond\n" and b"second" not in seen[0]

        # Both ways at once on one tunnel: stdin sent by the stream's feeding thread while this one
        # reads `cat`'s output of it as it comes.
        stdin, echoed = os.urandom(6 * 1024**2), bytearray()
        request = ExecRequest(
            argv=("cat",), exec_id=new_execution_id(), workdir="/", stdin=stdin, timeout=60,
            on_output=lambda stream, chunk: echoed.extend(chunk),
        )  # fmt: skip
        result = driver.exec(sandbox.container_name, request)
        assert result.exit_code == 0 and result.stdout_bytes == len(stdin) and bytes(echoed) == stdin

        # A background process, a terminal and a file watch: the same dialler.
        name = sandbox.container_name
        background = ExecRequest(argv=("sh", "-c", "echo in the background"), exec_id=new_execution_id(), workdir="/")
        driver.process_start(name, background)
        ended = driver.process_attach(name, background.exec_id, request=background)
        assert (ended.exit_code, ended.stdout) == (0, b"in the background\n")
        assert background.exec_id in [p.exec_id for p in driver.process_list(name)]
        shown = bytearray()
        terminal = ExecRequest(
            argv=("sh", "-c", "echo on a terminal"), exec_id=new_execution_id(), workdir="/",
            on_output=lambda stream, chunk: shown.extend(chunk),
        )  # fmt: skip
        driver.terminal_open(name, terminal, cols=80, rows=24, idle_timeout=0)
        closed = driver.terminal_attach(name, terminal.exec_id, request=terminal)
        assert closed.exit_code == 0 and b"on a terminal" in shown
        watch = driver.watch(name, WatchRequest(path="/workspace", watch_id="relay-watch", timeout=60))
        try:
            file_upload(sandbox=sandbox, path="/workspace/watched.txt", fileobj=io.BytesIO(b"x"), size=1)
            assert any(event.path == "watched.txt" for event in watch)
        finally:
            watch.close()
    finally:
        driver.remove(sandbox.container_name)
