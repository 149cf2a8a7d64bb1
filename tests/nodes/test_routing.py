"""Sandboxes and snapshots on a node (docs/nodes.md): every engine call for one goes to its node's
engine (driver_for), and a node that still holds sandboxes or snapshots is not removed unless
forced. Also: an operator's state change in the admin starts the failure count again, and addnode
refuses something on the address that is not a Docker engine (not_docker)."""

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from apps.audit.models import AuditEntry
from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.orgs.services import personal_org_ensure
from apps.sandboxes import sandboxd
from apps.sandboxes.models import Node, Sandbox, Snapshot
from apps.sandboxes.runtime import DAEMON_MOUNT, ContainerSpec, driver_for, get_driver
from apps.sandboxes.services.lifecycle import sandbox_stop
from tests.conftest import sandbox_row
from tests.nodes.engines import CertificateAuthority, add_node, ship

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(db):
    return Template.objects.create(name="on-node", display_name="On node", image="vibebox/on-node:1", user="sandbox")


def _snapshot(sandbox: Sandbox, node: Node) -> Snapshot:
    return Snapshot.objects.create(
        owner=sandbox.owner, org=sandbox.org, sandbox=sandbox, template=sandbox.template, image="x", node=node
    )


def test_a_sandbox_on_the_local_engine_gets_its_driver_without_a_query(owner, template, django_assert_num_queries):
    sandbox = Sandbox.objects.get(pk=sandbox_row(owner, template).pk)
    with django_assert_num_queries(0):
        assert driver_for(sandbox) is get_driver()


def test_every_call_for_a_sandbox_on_a_node_goes_to_that_engine(docker_nodes, docker_client, owner, template):
    engine = docker_nodes[1]
    node = add_node(engine, "node-b")
    driver = get_driver(node)
    sandbox = Sandbox.objects.get(pk=sandbox_row(owner, template, node=node).pk)
    assert driver_for(sandbox) is driver and driver_for(Snapshot(node=node)) is driver
    image, daemon_image = base_image(), sandboxd.image(base_image())
    for tag in (image, daemon_image):
        ship(engine, tag)
    daemon_volume, labels = "vibebox-node-route-sandboxd", {"vibebox.test": "node-route"}
    driver.volume_from_image(daemon_volume, image=daemon_image, path=DAEMON_MOUNT, labels=labels)
    spec = ContainerSpec(
        name=sandbox.container_name, image=image, labels=labels, env={}, volume=None, network="bridge",
        daemon_volume=daemon_volume, memory=256 * 1024**2,
    )  # fmt: skip
    try:
        driver.start(driver.create(spec).name)
        assert not docker_client.containers.list(all=True, filters={"name": sandbox.container_name})
        sandbox_stop(sandbox=sandbox)  # a service: it reaches the container through driver_for
        sandbox.refresh_from_db()
        assert sandbox.status == "stopped"
        assert driver.inspect(sandbox.container_name).status == "exited"  # on the node's engine
    finally:
        driver.remove(sandbox.container_name)
        driver.remove_volume(daemon_volume)


def test_removenode_refuses_while_sandboxes_or_snapshots_are_on_the_node(docker_nodes, owner, template, client):
    node = add_node(docker_nodes[0], "node-a")
    live = sandbox_row(owner, template, name="live", node=node)
    gone = sandbox_row(owner, template, name="gone", status="destroyed", node=node)
    snapshot = _snapshot(live, node)

    with pytest.raises(CommandError) as refused:
        call_command("removenode", "node-a", stdout=StringIO())
    assert "still holds 1 sandbox(es) and 1 snapshot(s)" in str(refused.value) and "--force" in str(refused.value)
    live.refresh_from_db()
    assert Node.objects.filter(name="node-a").exists() and live.status == "running" and live.node_id == node.pk
    assert Snapshot.objects.filter(pk=snapshot.pk).exists()

    # The admin's delete asks the same rule: the page names what holds the node, nothing is deleted.
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root-1234"))
    url = reverse("admin:sandboxes_node_delete", args=[node.pk])
    page = client.get(url)
    assert page.status_code == 200 and f"sandbox {live}".encode() in page.content
    assert f"snapshot {snapshot.pk}".encode() in page.content and str(gone.pk).encode() not in page.content
    client.post(url, {"post": "yes"})
    assert Node.objects.filter(name="node-a").exists()

    out = StringIO()
    call_command("removenode", "node-a", "--force", stdout=out)
    assert out.getvalue().startswith("node node-a removed") and not Node.objects.exists()
    live.refresh_from_db()
    gone.refresh_from_db()
    assert (live.status, live.status_reason, live.node_id) == ("error", "node removed", None)
    assert gone.status == "destroyed" and gone.node_id is None
    assert not Snapshot.objects.filter(pk=snapshot.pk).exists()
    entries = {(e.action, e.target_id, e.org_id) for e in AuditEntry.objects.all()}
    org = personal_org_ensure(user=owner).pk
    assert ("sandbox.node_removed", live.pk, org) in entries and ("snapshot.deleted", snapshot.pk, org) in entries
    assert ("node.removed", str(node.pk), "") in entries


def test_the_admin_deletes_a_node_only_destroyed_sandboxes_were_on(docker_nodes, owner, template, client):
    node = add_node(docker_nodes[0], "node-a")
    gone = sandbox_row(owner, template, name="gone", status="destroyed", node=node)
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root-1234"))
    response = client.post(reverse("admin:sandboxes_node_delete", args=[node.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Node.objects.exists()
    gone.refresh_from_db()
    assert gone.node_id is None


def test_an_operator_setting_the_state_in_the_admin_starts_the_failure_count_again(docker_nodes, client):
    node = add_node(docker_nodes[0], "node-a")
    Node.objects.filter(pk=node.pk).update(state=Node.State.DRAINING, failures=2)
    client.force_login(get_user_model().objects.create_superuser(username="root", password="pw-root-1234"))
    url = reverse("admin:sandboxes_node_change", args=[node.pk])
    response = client.post(url, {"state": "healthy", "labels": '{"zone": "eu-1"}', "_save": "Save"})
    assert response.status_code == 302, response.content[-2000:]
    node.refresh_from_db()
    assert (node.state, node.failures, node.labels) == ("healthy", 0, {"zone": "eu-1"})

    Node.objects.filter(pk=node.pk).update(failures=1)  # a label edit alone leaves the count as it is
    client.post(url, {"state": "healthy", "labels": '{"zone": "eu-2"}', "_save": "Save"})
    node.refresh_from_db()
    assert (node.state, node.failures, node.labels) == ("healthy", 1, {"zone": "eu-2"})


class _NotDocker(BaseHTTPRequestHandler):
    def do_GET(self):  # a web page, where an engine answers JSON
        body = b"<html><body>hello</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def not_docker(tmp_path):
    """A web server on loopback speaking HTTPS with a certificate of the test's CA (for
    127.0.0.1): TLS is fine, what answers is not a Docker engine. Yields the client's files."""
    ca = CertificateAuthority("not-docker CA")
    server, client_pem = ca.issue("not-docker", server_ip="127.0.0.1"), ca.issue("client")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "cert.pem", "key": tmp_path / "key.pem"}
    files["ca"].write_bytes(ca.pem)
    files["cert"].write_bytes(client_pem.cert)
    files["key"].write_bytes(client_pem.key)
    (tmp_path / "server-cert.pem").write_bytes(server.cert)
    (tmp_path / "server-key.pem").write_bytes(server.key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server-cert.pem", tmp_path / "server-key.pem")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _NotDocker)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_addnode_refuses_a_tls_server_that_is_not_docker(not_docker):
    url, files = not_docker
    with pytest.raises(CommandError) as refused:
        call_command(
            "addnode", "node-w", url, "--tlscacert", str(files["ca"]),
            "--tlscert", str(files["cert"]), "--tlskey", str(files["key"]), stdout=StringIO(),
        )  # fmt: skip
    message = str(refused.value)
    assert f"What answers at {url} is not a Docker engine speaking TLS" in message and "(not_docker)" in message
    assert not Node.objects.exists()
