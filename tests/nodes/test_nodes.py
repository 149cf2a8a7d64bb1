"""Nodes (docs/nodes.md), against real Docker engines running in containers (tests/nodes/conftest.py):
registering one over mutual TLS, each way a registration is refused, the driver of a node, and
the health check following an engine that stops and starts again."""

import ipaddress
import shutil
import socket
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.marketplace.catalog import base_image
from apps.sandboxes import sandboxd
from apps.sandboxes.models import Node
from apps.sandboxes.runtime import DAEMON_MOUNT, ContainerSpec, get_driver
from apps.sandboxes.services.nodes import node_state_set
from apps.sandboxes.tasks import check_nodes
from tests.nodes.engines import ENGINE_PORT, CertificateAuthority, add_node, ship, start_engine
from tests.waiting import wait_for
from vibebox.crypto import decrypt

pytestmark = pytest.mark.django_db


def _files(engine, tmp_path):
    return engine.write_client_files(tmp_path / "client")


def _addnode(*args: str) -> str:
    out = StringIO()
    call_command("addnode", *args, stdout=out)
    return out.getvalue()


def _refused(*args: str) -> str:
    with pytest.raises(CommandError) as refused:
        _addnode(*args)
    assert not Node.objects.exists()  # nothing saved
    return str(refused.value)


def test_addnode_registers_an_engine_and_stores_what_it_says(docker_nodes, tmp_path):
    engine = docker_nodes[0]
    files = _files(engine, tmp_path)
    said = _addnode(
        "node-a", engine.url, "--tlscacert", str(files["ca"]), "--tlscert", str(files["cert"]),
        "--tlskey", str(files["key"]), "--label", "zone=test",
    )  # fmt: skip
    assert said.startswith("node node-a added: ")
    node = Node.objects.get(name="node-a")
    version, cpus, memory = engine.docker("info", "--format", "{{.ServerVersion}} {{.NCPU}} {{.MemTotal}}").split()
    assert (node.engine_version, node.cpus, node.memory) == (version, int(cpus), int(memory))
    # Never btrfs in a test engine: stopping it would turn off the host engine's btrfs quotas
    # (tests/nodes/engine/entrypoint.sh).
    assert engine.docker("info", "--format", "{{.Driver}}").strip() == "vfs"
    assert node.state == Node.State.HEALTHY and node.last_seen is not None and node.labels == {"zone": "test"}
    assert node.docker_url == engine.url
    key = files["key"].read_text()
    assert key not in node.tls_key and decrypt(node.tls_key) == key  # encrypted at rest

    listed = StringIO()
    call_command("nodes", "--json", stdout=listed)
    assert '"name": "local"' in listed.getvalue() and '"name": "node-a"' in listed.getvalue()
    table = StringIO()
    call_command("nodes", stdout=table)
    assert "node-a" in table.getvalue() and "healthy" in table.getvalue()

    assert "registered already" in _refused_again(engine, files)
    call_command("removenode", "node-a", stdout=StringIO())
    assert not Node.objects.exists()
    with pytest.raises(CommandError, match="No node is named"):
        call_command("removenode", "node-a", stdout=StringIO())


def _refused_again(engine, files) -> str:
    with pytest.raises(CommandError) as refused:
        _addnode(
            "node-a", engine.url, "--tlscacert", str(files["ca"]), "--tlscert", str(files["cert"]),
            "--tlskey", str(files["key"]),
        )  # fmt: skip
    assert Node.objects.count() == 1
    return str(refused.value)


def test_an_engine_whose_certificate_another_ca_signed_is_refused(docker_nodes, tmp_path):
    engine = docker_nodes[0]
    files = _files(engine, tmp_path)
    other = tmp_path / "other-ca.pem"
    other.write_bytes(CertificateAuthority("another CA").pem)
    message = _refused(
        "node-a", engine.url, "--tlscacert", str(other), "--tlscert", str(files["cert"]), "--tlskey", str(files["key"])
    )
    assert "certificate the given CA did not sign" in message and "server_certificate_untrusted" in message


def test_an_engine_asked_without_a_client_certificate_is_refused(docker_nodes, tmp_path):
    engine = docker_nodes[0]
    files = _files(engine, tmp_path)
    message = _refused("node-a", engine.url, "--tlscacert", str(files["ca"]))
    assert "requires a client certificate: give --tlscert and --tlskey" in message


def test_a_client_certificate_the_engine_does_not_trust_is_refused(docker_nodes, tmp_path):
    engine = docker_nodes[0]
    files = _files(engine, tmp_path)
    stranger = CertificateAuthority("a stranger's CA").issue("stranger")
    (tmp_path / "cert.pem").write_bytes(stranger.cert)
    (tmp_path / "key.pem").write_bytes(stranger.key)
    message = _refused(
        "node-a", engine.url, "--tlscacert", str(files["ca"]),
        "--tlscert", str(tmp_path / "cert.pem"), "--tlskey", str(tmp_path / "key.pem"),
    )  # fmt: skip
    assert "refused the client certificate" in message and "client_certificate_refused" in message


@pytest.fixture
def open_engine(docker_nodes, docker_client):
    """A third engine, for one test: it answers clients that have no certificate (dockerd --tls with no
    CA: it still refuses a client certificate it cannot verify)."""
    network_name = next(iter(docker_nodes[0].container.attrs["NetworkSettings"]["Networks"]))
    network = docker_client.networks.get(network_name)
    subnet = ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])
    name = f"{docker_nodes[0].container.name.rsplit('-', 1)[0]}-open"
    engine = start_engine(
        docker_client, name=name, network=network, address=str(subnet[20]),
        labels=docker_nodes[0].container.labels, verify_clients=False,
    )  # fmt: skip
    yield engine
    engine.container.remove(force=True, v=True)
    shutil.rmtree(engine.client_dir, ignore_errors=True)


def test_an_engine_that_answers_clients_without_a_certificate_is_refused(open_engine, tmp_path):
    files = _files(open_engine, tmp_path)
    message = _refused("node-o", open_engine.url, "--tlscacert", str(files["ca"]))
    assert "answers clients without a certificate" in message and "run dockerd with --tlsverify" in message

    # The same engine with a certificate that names another address.
    open_engine.stop()
    open_engine.put_server_certificate(open_engine.ca.issue("elsewhere", server_ip="192.0.2.1"))
    open_engine.container.start()
    wait_for(lambda: _listening(open_engine), what="the engine to listen again")
    message = _refused(
        "node-o", open_engine.url, "--tlscacert", str(files["ca"]),
        "--tlscert", str(files["cert"]), "--tlskey", str(files["key"]),
    )  # fmt: skip
    assert "certificate does not name the address" in message and "server_certificate_name" in message


def _listening(engine) -> bool:
    try:
        socket.create_connection((engine.address, ENGINE_PORT), timeout=1).close()
    except OSError:
        return False
    return True


def test_an_unreachable_engine_is_refused(docker_nodes, tmp_path):
    files = _files(docker_nodes[0], tmp_path)
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    message = _refused(
        "node-a", f"tcp://127.0.0.1:{port}", "--tlscacert", str(files["ca"]),
        "--tlscert", str(files["cert"]), "--tlskey", str(files["key"]),
    )  # fmt: skip
    assert "cannot be reached at tcp://127.0.0.1" in message and "(unreachable)" in message


@pytest.mark.parametrize(
    ("name", "url", "said"),
    [
        ("local", None, "not 'local'"),
        ("Bad_Name", None, "lowercase letters"),
        ("node-a", "http://127.0.0.1:2376", "tcp://HOST:PORT"),
        ("node-a", "tcp://127.0.0.1", "tcp://HOST:PORT"),
    ],
)
def test_bad_names_and_urls_are_refused(docker_nodes, tmp_path, name, url, said):
    engine = docker_nodes[0]
    files = _files(engine, tmp_path)
    message = _refused(
        name, url or engine.url, "--tlscacert", str(files["ca"]),
        "--tlscert", str(files["cert"]), "--tlskey", str(files["key"]),
    )  # fmt: skip
    assert said in message


def test_files_that_hold_no_pem_are_refused(docker_nodes, tmp_path):
    engine = docker_nodes[0]
    files = _files(engine, tmp_path)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert "--tlscacert) holds no PEM certificate" in _refused(
        "node-a", engine.url, "--tlscacert", str(junk), "--tlscert", str(files["cert"]), "--tlskey", str(files["key"])
    )
    assert "--tlskey) holds no PEM private key" in _refused(
        "node-a", engine.url, "--tlscacert", str(files["ca"]), "--tlscert", str(files["cert"]), "--tlskey", str(junk)
    )
    assert "--tlscacert" in _refused(
        "node-a", engine.url, "--tlscacert", str(tmp_path / "missing.pem"),
        "--tlscert", str(files["cert"]), "--tlskey", str(files["key"]),
    )  # fmt: skip


def test_the_driver_of_a_node_runs_containers_on_that_engine(docker_nodes, docker_client):
    engine = docker_nodes[1]
    node = add_node(engine, "node-b")
    driver = get_driver(node)
    assert get_driver(Node.objects.get(pk=node.pk)) is driver  # kept per node
    assert get_driver() is not driver  # the local engine's is another one
    assert driver.node_engine().version == node.engine_version

    image, daemon_image = base_image(), sandboxd.image(base_image())
    for tag in (image, daemon_image):
        ship(engine, tag)
    name, labels = "vibebox-node-test-box", {"vibebox.test": "node-driver"}
    daemon_volume = "vibebox-node-test-sandboxd"
    driver.volume_from_image(daemon_volume, image=daemon_image, path=DAEMON_MOUNT, labels=labels)
    spec = ContainerSpec(
        name=name, image=image, labels=labels, env={"A": "1"}, volume=None, network="bridge",
        daemon_volume=daemon_volume, memory=256 * 1024**2,
    )  # fmt: skip
    try:
        created = driver.create(spec)
        assert created.name == name and created.status == "created"
        assert driver.inspect(name).labels["vibebox.test"] == "node-driver"
        assert [c.name for c in driver.list_containers(labels)] == [name]
        assert name in engine.docker("ps", "-a", "--format", "{{.Names}}").split()
        assert not docker_client.containers.list(all=True, filters={"name": name})  # not on the local engine
        assert driver.start(name).status == "running"
        assert driver.stop(name, timeout=5).status == "exited"
    finally:
        driver.remove(name)
        driver.remove_volume(daemon_volume)
    assert driver.inspect(name) is None
    assert name not in engine.docker("ps", "-a", "--format", "{{.Names}}").split()


def test_the_health_check_follows_an_engine_that_stops_and_starts(docker_nodes, settings):
    settings.VIBEBOX_NODE_DOWN_AFTER = 2
    settings.VIBEBOX_NODE_CHECK_TIMEOUT = 5
    engine = docker_nodes[1]
    node = add_node(engine, "node-b")
    assert check_nodes() == {"node-b": "healthy"}
    seen = Node.objects.get(pk=node.pk).last_seen
    engine.stop()
    try:
        assert check_nodes() == {"node-b": "healthy"}  # one failure: not down yet
        node.refresh_from_db()
        assert node.failures == 1 and "cannot be reached" in node.last_error
        assert check_nodes() == {"node-b": "down"}
        node.refresh_from_db()
        assert node.failures == 2 and node.last_seen == seen
    finally:
        engine.start()
    assert check_nodes() == {"node-b": "healthy"}
    node.refresh_from_db()
    assert node.failures == 0 and node.last_error == "" and node.last_seen > seen

    node_state_set(name="node-b", state=Node.State.DRAINING)  # an operator's: the check keeps it
    assert check_nodes() == {"node-b": "draining"}


def test_the_admin_lists_nodes_and_never_shows_the_key(docker_nodes, client):
    admin = get_user_model().objects.create_superuser(username="root", password="pw-root-1234")
    client.force_login(admin)
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    stored = Node.objects.get(pk=node.pk).tls_key
    for url in ("/admin/sandboxes/node/", reverse("admin:sandboxes_node_change", args=[node.pk])):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"node-a" in response.content and engine.url.encode() in response.content
        assert engine.client_pem.key not in response.content and stored.encode() not in response.content
    assert client.get("/admin/sandboxes/node/add/").status_code == 403  # manage.py addnode checks first
    change = client.get(reverse("admin:sandboxes_node_change", args=[node.pk])).content
    assert b'value="draining"' in change and b'value="down"' not in change  # down: the health check's
    response = client.post(reverse("admin:sandboxes_node_delete", args=[node.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Node.objects.exists()
