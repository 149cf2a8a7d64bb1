"""Node operations on a real nested engine (docs/nodes.md): `rotatenode` gives the relay new
credentials while a sandbox on the node keeps running (and answers through the relay), the same
relay reloaded (a tunnel opened before it goes on; a relay from an older image is replaced), no
call refused meanwhile to a thread that reads the row afresh, a row held from before refused only
once the row moved past it, the old client certificate refused afterwards, a node sync meanwhile
refused rather than writing old files; `removenode` takes away what VibeBox made on the node
(its containers and workspaces, the sandbox network and the isolation rules the relay wrote, the
relay and its files), refuses while a sandbox lives there unless --force."""

import json
import ssl
import threading
import time
from io import StringIO

import pytest
from cryptography import x509
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection as db_connection

from apps.audit.models import AuditEntry
from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes import sandboxd
from apps.sandboxes.models import Node, Sandbox, Snapshot, new_execution_id
from apps.sandboxes.runtime import ContainerSpec, ExecRequest, get_driver, sandboxd_client
from apps.sandboxes.runtime.relay import RelayRefused, client_context, tunnel
from apps.sandboxes.services import nodes, placement
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.exec import sandbox_exec
from apps.sandboxes.services.node_images import nodes_images_sync
from apps.sandboxes.services.nodes import RELAY_NAME, RELAY_VOLUME, node_check, node_prepare, node_ship_image
from apps.sandboxes.services.snapshots import archive_path, snapshot_create, snapshot_delete
from apps.sandboxes.specs import base_labels, network_name
from tests.conftest import sandbox_row
from tests.nodes.engines import add_node, free_port, unprepare
from vibebox import exceptions as errors
from vibebox.celery import app as celery_app
from vibebox.crypto import decrypt

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery():
    """Tasks sent run at once, in this process (the test has no worker)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def template(db):
    return Template.objects.create(name="node-ops", display_name="Node ops", image=base_image(), user="root")


@pytest.fixture
def prepared(docker_nodes):
    """node-b (the second nested engine), prepared: sandboxd, the sandbox network, the relay. Bare
    again afterwards."""
    engine = docker_nodes[1]
    node = add_node(engine, "node-b")
    prepared = node_prepare(node=node)
    node_ship_image(node=node, tag=base_image())
    node.refresh_from_db()
    yield engine, node, prepared
    unprepare(engine)


def _sandbox_on(node: Node, owner, template, prepared, name: str) -> Sandbox:
    """A running sandbox on the node: its row and its container (on the sandbox network, with a
    workspace volume, labelled as a sandbox's are)."""
    sandbox = Sandbox.objects.get(pk=sandbox_row(owner, template, name=name, node=node, image=base_image()).pk)
    spec = ContainerSpec(
        name=sandbox.container_name, image=base_image(), labels={**base_labels(), "vibebox.sandbox-id": sandbox.id},
        env={}, volume=sandbox.volume_name, network=network_name(), daemon_volume=prepared.volume,
        memory=256 * 1024**2,
    )  # fmt: skip
    driver = get_driver(node)
    driver.start(driver.create(spec).name)
    return sandbox


def _context(node: Node) -> ssl.SSLContext:
    return client_context(ca=node.relay_ca, cert=node.relay_cert, key=decrypt(node.relay_key))


def _address(engine, sandbox: Sandbox) -> str:
    """The sandbox's address on the node's bridge."""
    return engine.docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", sandbox.container_name
    ).strip()


def _issuers(pem: str) -> set[x509.Name]:
    return {certificate.issuer for certificate in x509.load_pem_x509_certificates(pem.encode())}


def _subjects(pem: str) -> set[x509.Name]:
    return {certificate.subject for certificate in x509.load_pem_x509_certificates(pem.encode())}


def _refusal_explained(held: Node, now: Node) -> bool:
    """Whether the relay may refuse the credentials of the row `held` when the row is `now`: the
    relay's files follow the row (each step writes the row, then reloads the relay), so a refusal
    is right only when `now`'s server certificate is not signed by a CA of `held`'s list, or
    `held`'s client certificate not by a CA of `now`'s."""
    return not _issuers(now.relay_server_cert) & _subjects(held.relay_ca) or not _issuers(held.relay_cert) & _subjects(
        now.relay_ca
    )


def _sandboxd_answers(where, target, context: ssl.SSLContext) -> None:
    """A request to sandboxd through a new tunnel: raises when the relay refuses the credentials."""
    with tunnel(where, target, context=context, timeout=10) as sock:
        sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: sandboxd\r\nConnection: close\r\n\r\n")
        line = sock.makefile("rb").readline()
    if not line.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"sandboxd did not answer through the tunnel: {line!r}")


class Watcher(threading.Thread):
    """Another process's view during a rotation (its own database connection): each round reads
    the node's row afresh and opens sandboxd through the relay with it (`refused`: those that
    failed, which must be none), and with every earlier row it has seen, as processes that keep a
    row a while do; such a row refused must be explained by the row as it is then (`unexplained`:
    those that were not), and is then retired."""

    def __init__(self, node_pk, where, target):
        super().__init__(daemon=True)
        self.node_pk, self.where, self.target = node_pk, where, target
        self.stop, self.started_calls = threading.Event(), threading.Event()
        self.rows: dict[tuple, Node] = {}  # (relay_ca, relay_cert) -> the row, in the order seen
        self.contexts: dict[tuple, ssl.SSLContext] = {}
        self.calls, self.refused, self.unexplained, self.retired = 0, [], [], []
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                row = Node.objects.get(pk=self.node_pk)
                key = (row.relay_ca, row.relay_cert)
                if key not in self.rows:
                    self.rows[key], self.contexts[key] = row, _context(row)
                try:
                    _sandboxd_answers(self.where, self.target, self.contexts[key])
                except Exception as exc:
                    self.refused.append(repr(exc))
                self.calls += 1
                self.started_calls.set()
                for held in [k for k in self.rows if k != key and k not in self.retired]:
                    try:
                        _sandboxd_answers(self.where, self.target, self.contexts[held])
                    except (ssl.SSLError, ConnectionError) as exc:
                        if _refusal_explained(self.rows[held], Node.objects.get(pk=self.node_pk)):
                            self.retired.append(held)
                        else:
                            self.unexplained.append(repr(exc))
        except BaseException as exc:
            self.error = exc
        finally:
            self.started_calls.set()
            db_connection.close()


def _chains(engine) -> list[str]:
    """The node host's VibeBox chains (the relay runs iptables in the engine container's namespace)."""
    code, output = engine.container.exec_run(["iptables", "-w", "-S"])
    assert code == 0, output
    return [line for line in output.decode().splitlines() if "VIBEBOX" in line]


@pytest.mark.django_db(transaction=True)  # the watcher reads the row in its thread
def test_rotatenode_gives_the_relay_new_credentials_and_the_sandbox_keeps_running(prepared, owner, template, settings):
    """While rotatenode runs, a thread that reads the row afresh for each call is never refused; one
    that keeps each row it saw is refused only once the row has moved past it (the rows from before
    step 2 in the end, those after never)."""
    settings.VIBEBOX_NODE_ROTATION_GRACE = 2  # every round of the watcher reads the row again
    engine, node, ready = prepared
    sandbox = _sandbox_on(node, owner, template, ready, "kept")
    assert sandbox_exec(sandbox=sandbox, command="echo before").stdout == "before\n"
    driver = get_driver(node)
    background = ExecRequest(argv=("sleep", "600"), exec_id=new_execution_id(), workdir="/")
    driver.process_start(sandbox.container_name, background)
    container = driver.inspect(sandbox.container_name)
    relay_before = json.loads(engine.docker("inspect", RELAY_NAME))[0]["Id"]
    old_context, where = _context(node), (engine.address, node.relay_port)
    sandboxd_at = (_address(engine, sandbox), sandboxd_client.PORT)
    held = tunnel(where, sandboxd_at, context=old_context, timeout=10)
    before = Node.objects.get(pk=node.pk)
    watcher = Watcher(node.pk, where, sandboxd_at)
    watcher.start()
    watcher.started_calls.wait()

    out = StringIO()
    try:
        call_command("rotatenode", "node-b", stdout=out)
    finally:
        watcher.stop.set()
        watcher.join()
    node.refresh_from_db()
    assert watcher.error is None and watcher.calls > 0
    assert watcher.refused == [] and watcher.unexplained == []
    # It saw the row before the rotation and the last one; in the end the rows it kept from before
    # step 2 (the old client certificate) are refused, the later ones get in.
    rows = list(watcher.rows.values())
    assert (rows[0].relay_ca, rows[0].relay_cert) == (before.relay_ca, before.relay_cert)
    assert (rows[-1].relay_ca, rows[-1].relay_cert) == (node.relay_ca, node.relay_cert)
    for key, row in watcher.rows.items():
        if _refusal_explained(row, node):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                _sandboxd_answers(where, sandboxd_at, watcher.contexts[key])
        else:
            _sandboxd_answers(where, sandboxd_at, watcher.contexts[key])
    assert _refusal_explained(rows[0], node)
    print(f"rotation watched: {watcher.calls} calls, {len(rows)} rows seen, {len(watcher.retired)} retired")
    assert "relay credentials rotated" in out.getvalue() and node.relay_image  # placeable still
    assert out.getvalue().rstrip().endswith("reloaded")
    assert json.loads(engine.docker("inspect", RELAY_NAME))[0]["Id"] == relay_before  # the same relay, reloaded
    # The tunnel opened with the old credentials before the rotation still reaches sandboxd.
    with held:
        held.sendall(b"GET /nothing HTTP/1.1\r\nHost: sandboxd\r\nConnection: close\r\n\r\n")
        assert held.makefile("rb").readline().startswith(b"HTTP/1.1 ")

    # The old client certificate is refused by the new relay (its CA is not trusted any more)...
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tunnel(where, ("127.0.0.1", sandboxd_client.PORT), context=old_context, timeout=10)
    # ...the new one opens it (a CONNECT it refuses itself: the handshake went both ways).
    with pytest.raises(RelayRefused) as refused:
        tunnel(where, ("127.0.0.1", sandboxd_client.PORT), context=_context(node), timeout=10)
    assert refused.value.status == 403

    # The sandbox kept running (same container, its background process alive), reached through the new relay.
    sandbox.refresh_from_db()
    after = get_driver(node).inspect(sandbox.container_name)
    assert (after.id, after.status, after.started_at) == (container.id, "running", container.started_at)
    assert sandbox_exec(sandbox=sandbox, command="echo after").stdout == "after\n"
    running = {p.exec_id: p for p in get_driver(node).process_list(sandbox.container_name)}
    assert running[background.exec_id].running  # its background process runs on
    entry = AuditEntry.objects.get(action="node.relay_rotated")
    assert entry.changes["client_certificate"]["old"] != entry.changes["client_certificate"]["new"]

    # A node that is not prepared, or not healthy, is refused with its reason; nothing changes.
    Node.objects.filter(pk=node.pk).update(state=Node.State.DRAINING)
    with pytest.raises(CommandError, match=r"only while it is healthy\. \(node_not_healthy\)"):
        call_command("rotatenode", "node-b", stdout=StringIO())
    with pytest.raises(CommandError, match="No node is named 'nope'"):
        call_command("rotatenode", "nope", stdout=StringIO())


def _accepted(where, target, context: ssl.SSLContext) -> bool:
    try:
        _sandboxd_answers(where, target, context)
    except (ssl.SSLError, ConnectionError):
        return False
    return True


def test_rotation_steps_accept_every_rows_credentials_until_a_later_row_retires_them(
    prepared, owner, template, monkeypatch
):
    """rotatenode's four steps, one at a time (the caller's waits left out): after each, which
    rows' credentials the relay accepts. Trust: R0 (the row before) and R1 (both CAs, the old client
    certificate) get in, and so does the new client certificate. Client: R2 (the new client
    certificate) too. Serve, for a relay whose image is not the current source's (replaced, not
    reloaded): R0 is refused (its CA alone does not verify the new server certificate: the grace
    before this step), R1 and R2 get in. End: the old client certificate is refused (R1), R2 and R4
    get in. The node stays placeable; a command runs after each step."""
    engine, node, ready = prepared
    sandbox = _sandbox_on(node, owner, template, ready, "steps")
    where, sandboxd_at = (engine.address, node.relay_port), (_address(engine, sandbox), sandboxd_client.PORT)
    r0, before = _context(node), Node.objects.get(pk=node.pk)
    minted = nodes._relay_minted(node)
    relay_before = json.loads(engine.docker("inspect", RELAY_NAME))[0]["Id"]

    # The steps under the node's relay lock, as node_relay_rotate runs them (each checks it holds it).
    with nodes._relay_lock(node, holder="rotation"):
        trusted = nodes.node_relay_trust(node=node, minted=minted)
        node.refresh_from_db()
        assert node.relay_ca.count("BEGIN CERTIFICATE") == 2 and node.relay_cert != minted["relay_cert"]
        assert trusted.relay_reloaded and not trusted.relay_started and node.relay_image  # placeable
        assert json.loads(engine.docker("inspect", RELAY_NAME))[0]["Id"] == relay_before
        r1 = _context(node)
        new_client = client_context(ca=node.relay_ca, cert=minted["relay_cert"], key=decrypt(minted["relay_key"]))
        assert all(_accepted(where, sandboxd_at, context) for context in (r0, r1, new_client))
        assert sandbox_exec(sandbox=sandbox, command="echo trust").stdout == "trust\n"

        nodes.node_relay_client(node=node, minted=minted)
        node.refresh_from_db()
        assert node.relay_cert == minted["relay_cert"] and node.relay_ca.count("BEGIN CERTIFICATE") == 2
        r2 = _context(node)
        assert all(_accepted(where, sandboxd_at, context) for context in (r0, r1, r2))
        entry = AuditEntry.objects.get(action="node.relay_rotated")
        assert entry.changes["client_certificate"]["new"] == nodes.relay_fingerprint(minted["relay_cert"])
        assert sandbox_exec(sandbox=sandbox, command="echo client").stdout == "client\n"

        monkeypatch.setattr(sandboxd, "relay_current", lambda: "vibebox/sandboxd-relay:older")  # it cannot reload
        served = nodes.node_relay_serve(node=node, minted=minted)
        monkeypatch.undo()
        node.refresh_from_db()
        assert served.relay_started and json.loads(engine.docker("inspect", RELAY_NAME))[0]["Id"] != relay_before
        assert node.relay_server_cert == minted["relay_server_cert"] and node.relay_image
        assert not _accepted(where, sandboxd_at, r0)  # the old CA alone: the new server certificate fails
        assert _accepted(where, sandboxd_at, r1) and _accepted(where, sandboxd_at, r2)
        assert sandbox_exec(sandbox=sandbox, command="echo serve").stdout == "serve\n"

        ended = nodes.node_relay_end(node=node, minted=minted, before=before)
        node.refresh_from_db()
        assert ended.relay_reloaded and node.relay_ca == minted["relay_ca"] and node.relay_image
        assert not _accepted(where, sandboxd_at, r1)  # the old client certificate
        assert _accepted(where, sandboxd_at, r2) and _accepted(where, sandboxd_at, _context(node))
        assert sandbox_exec(sandbox=sandbox, command="echo end").stdout == "end\n"


@pytest.mark.django_db(transaction=True)  # the rotation runs in a thread of its own
def test_a_node_sync_and_a_rotation_never_interleave(prepared, settings):
    """A node sync during a rotation is refused (relay_busy) and writes nothing; a rotation that
    finds a prepare holding the node's relay lock waits for it, then runs. Each time the relay ends
    with the rotation's files (read back from the running relay)."""
    settings.VIBEBOX_NODE_ROTATION_GRACE = 5  # the rotation holds the lock that long at least
    Template.objects.update(is_active=False)  # the sync ships no template image
    engine, node, _ = prepared
    stale = Node.objects.get(pk=node.pk)  # a sync's row, read before the rotation

    def rotate(done: dict):
        try:
            done["rotated"] = nodes.node_relay_rotate(name="node-b")
        except BaseException as exc:
            done["error"] = exc
        finally:
            db_connection.close()

    done = {}
    rotation = threading.Thread(target=rotate, args=(done,), daemon=True)
    rotation.start()
    while Node.objects.get(pk=node.pk).relay_ca == stale.relay_ca and rotation.is_alive():
        time.sleep(0.1)  # until step 1 wrote the row
    synced = nodes_images_sync(name="node-b")
    with pytest.raises(errors.ValidationFailed) as busy:
        node_prepare(node=stale)
    rotation.join()
    assert "error" not in done, done
    assert "being rotated" in synced["node-b"]["error"] and busy.value.details["reason"] == "relay_busy"
    _relay_files_are_the_rows(engine, node)

    # A prepare holds the lock (it read the row under it: the rotation's last one): the rotation
    # waits for it, and the row is unchanged until the prepare lets go.
    before = Node.objects.get(pk=node.pk)
    done = {}
    with nodes._relay_lock(node, holder="prepare"):
        rotation = threading.Thread(target=rotate, args=(done,), daemon=True)
        rotation.start()
        node_prepare(node=stale, held=True)  # writes the row's files as they are (stale is read again)
        time.sleep(1)
        assert Node.objects.get(pk=node.pk).relay_ca == before.relay_ca and rotation.is_alive()
    rotation.join()
    assert "error" not in done, done
    node.refresh_from_db()
    assert node.relay_ca != before.relay_ca and done["rotated"].old == nodes.relay_fingerprint(before.relay_cert)
    _relay_files_are_the_rows(engine, node)


def _relay_files_are_the_rows(engine, node: Node) -> None:
    """The files the running relay reads are the node's row's credentials."""
    node.refresh_from_db()
    for name, pem in (("ca.pem", node.relay_ca), ("cert.pem", node.relay_server_cert)):
        assert engine.docker("exec", RELAY_NAME, "cat", f"/tls/{name}") == pem, name


def test_removenode_takes_away_the_relay_its_rules_and_vibeboxs_containers(prepared, owner, template):
    engine, node, ready = prepared
    sandbox = _sandbox_on(node, owner, template, ready, "live")
    assert any("-j VIBEBOX-" in line for line in _chains(engine))  # the bridge's rules, through the relay

    with pytest.raises(CommandError, match=r"still holds 1 sandbox\(es\).*--force"):
        call_command("removenode", "node-b", stdout=StringIO())
    assert get_driver(node).inspect(sandbox.container_name).status == "running"  # nothing changed
    assert json.loads(engine.docker("inspect", RELAY_NAME))[0]["State"]["Running"]

    out = StringIO()
    call_command("removenode", "node-b", "--force", stdout=out)
    assert out.getvalue().startswith("node node-b removed: 1 container(s), "), out.getvalue()
    assert not Node.objects.exists()
    sandbox.refresh_from_db()
    assert (sandbox.status, sandbox.status_reason, sandbox.node_id) == ("error", "node removed", None)
    names = engine.docker("ps", "-a", "--format", "{{.Names}}").split()
    assert sandbox.container_name not in names and RELAY_NAME not in names
    volumes = engine.docker("volume", "ls", "--format", "{{.Name}}").split()
    assert RELAY_VOLUME not in volumes and sandbox.volume_name not in volumes
    assert ready.volume in volumes  # sandboxd's stays, as do the images
    assert network_name() not in engine.docker("network", "ls", "--format", "{{.Name}}").split()
    assert _chains(engine) == []  # the isolation rules went (through the relay, before it)
    entry = AuditEntry.objects.get(action="node.removed")
    assert entry.changes["cleaned"] is True and entry.changes["containers"] == 1 and entry.changes["force"]


def test_removenode_of_a_down_node_says_what_is_left(docker_nodes):
    node = add_node(docker_nodes[0], "node-a")
    Node.objects.filter(pk=node.pk).update(state=Node.State.DOWN)
    out, err = StringIO(), StringIO()
    call_command("removenode", "node-a", stdout=out, stderr=err)
    assert out.getvalue().strip() == "node node-a removed" and not Node.objects.exists()
    assert "not cleaned up (the node is down)" in err.getvalue() and f"docker rm -f {RELAY_NAME}" in err.getvalue()
    assert AuditEntry.objects.get(action="node.removed").changes["cleaned"] is False


def test_destroy_takes_the_status_before_from_the_row_it_locks(owner, template):
    """The instance says running; its row says unreachable (the node went down meanwhile): the
    destroy goes by the row, leaves it destroying for reconcile and never dials the node."""
    node = Node.objects.create(
        name="gone", docker_url="tcp://127.0.0.1:1", tls_ca="", tls_cert="", tls_key="", relay_image="x"
    )  # nothing listens there: a call would fail, not wait
    sandbox = Sandbox.objects.get(pk=sandbox_row(owner, template, name="stale", node=node).pk)
    Sandbox.objects.filter(pk=sandbox.pk).update(status="unreachable")
    assert sandbox.status == "running"  # stale
    assert sandbox_destroy(sandbox=sandbox).status == "destroying"
    assert Sandbox.objects.get(pk=sandbox.pk).status == "destroying"


def test_a_create_from_a_snapshot_on_a_draining_node_ships_its_image(
    prepared, owner, template, settings, eager_celery, django_capture_on_commit_callbacks
):
    """The snapshot's node drained: the create goes to the local engine, the snapshot's image
    streamed there from the node; the workspace comes from the archive as always. Deleting the
    snapshot removes the copy too (the node's image in a task after the commit)."""
    settings.VIBEBOX_DEFAULT_DISK = None
    _engine, node, ready = prepared
    placement.placement_caches_clear()
    source = _sandbox_on(node, owner, template, ready, "source")
    sandbox_exec(sandbox=source, command="echo kept > /workspace/note.txt")
    snapshot = snapshot_create(sandbox=source)
    assert snapshot.node_id == node.pk and not get_driver().image_exists(snapshot.image)
    Node.objects.filter(pk=node.pk).update(state=Node.State.DRAINING)
    copy = sandbox_create(owner=owner, template=None, snapshot=Snapshot.objects.get(pk=snapshot.pk))
    try:
        assert copy.node_id is None and copy.status == "running"
        assert get_driver().image_exists(snapshot.image)  # shipped from the node
        assert sandbox_exec(sandbox=copy, command="cat /workspace/note.txt").stdout == "kept\n"
    finally:
        sandbox_destroy(sandbox=copy)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        snapshot_delete(snapshot=Snapshot.objects.get(pk=snapshot.pk))
    # In the request: the row, the archive and the local copy; the node's image is the task's.
    assert not Snapshot.objects.filter(pk=snapshot.pk).exists() and not archive_path(snapshot).exists()
    assert not get_driver().image_exists(snapshot.image)  # the copy went with it
    assert get_driver(node).image_exists(snapshot.image) and len(callbacks) == 1
    callbacks[0]()  # the task, sent after the commit (eager here)
    assert not get_driver(node).image_exists(snapshot.image)


def test_a_deleted_snapshots_image_on_a_down_node_goes_when_the_node_returns(
    prepared, owner, template, settings, eager_celery, django_capture_on_commit_callbacks
):
    """The node is down when the snapshot is deleted: the request and the task leave it alone; the
    health check that finds it back reconciles it, and the image of the snapshot that no longer
    exists goes (this instance's only: another instance's snapshot image there stays)."""
    engine, node, ready = prepared
    source = _sandbox_on(node, owner, template, ready, "source")
    snapshot = snapshot_create(sandbox=source)
    kept = snapshot_create(sandbox=source)  # still a snapshot: its image stays
    # Another instance's snapshot image on the node, whose snapshot this database does not know: not ours.
    other = "vibebox/snapshot-another:gone"
    labels = {"vibebox.managed": "1", "vibebox.instance": "another", "vibebox.snapshot-id": "snp_another"}
    engine.docker("commit", *(f"--change=LABEL {k}={v}" for k, v in labels.items()), source.container_name, other)
    Node.objects.filter(pk=node.pk).update(state=Node.State.DOWN)
    with django_capture_on_commit_callbacks(execute=True):
        snapshot_delete(snapshot=Snapshot.objects.get(pk=snapshot.pk))
    assert get_driver(node).image_exists(snapshot.image)  # down: not dialled, the copy stays
    settings.VIBEBOX_STUCK_AFTER = 0  # its image is older than that: not one being taken
    assert node_check(node=node) == "healthy"  # back: reconciled
    assert not get_driver(node).image_exists(snapshot.image)
    assert get_driver(node).image_exists(kept.image) and get_driver(node).image_exists(other)
    with django_capture_on_commit_callbacks(execute=True):
        snapshot_delete(snapshot=Snapshot.objects.get(pk=kept.pk))
    assert not get_driver(node).image_exists(kept.image)  # a healthy node's: by the task at once


def test_a_node_with_an_older_relay_is_not_placeable_until_its_check_prepares_it_again(
    prepared, eager_celery, django_capture_on_commit_callbacks
):
    """A node prepared with a relay image other than the one this source builds (an older
    sandboxd: no back links, no preview port ranges) is not placeable; its health check sends the
    node sync, whose node_prepare records the current relay (the relay, whose image and arguments
    did not change here, is left running). A ship-only prepare (rotatenode's first pass) leaves
    the relay and its record alone."""
    engine, node, _ = prepared
    Template.objects.update(is_active=False)  # the sync ships no template image
    relay = json.loads(engine.docker("inspect", RELAY_NAME))[0]["Id"]
    placement.placement_caches_clear()
    assert placement.placeable(node) and node.relay_image == sandboxd.relay_current()
    assert "node-b" in [c.name for c in placement.placement_candidates(image=base_image()).engines]

    older = "vibebox/sandboxd-relay:000000000000"
    Node.objects.filter(pk=node.pk).update(relay_image=older)
    node.refresh_from_db()
    assert not placement.placeable(node)
    assert [c.name for c in placement.placement_candidates(image=base_image()).engines] == ["local"]
    shipped = node_prepare(node=node, relay=False)  # ships only: the relay is not looked at
    assert not shipped.relay_started and shipped.image.sent == 0
    assert Node.objects.get(pk=node.pk).relay_image == older

    cache.delete(f"node-relay-stale:{node.pk}:{sandboxd.relay_current()}")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert node_check(node=node) == "healthy"
    assert len(callbacks) == 1  # the node sync, run here (eager)
    node.refresh_from_db()
    assert node.relay_image == sandboxd.relay_current() and placement.placeable(node)
    assert json.loads(engine.docker("inspect", RELAY_NAME))[0]["Id"] == relay
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        node_check(node=node)
    assert callbacks == []  # current: nothing sent


def test_the_relay_lock_fails_closed_when_redis_is_unreachable(settings):
    """No lock, no relay files: with the cache's Redis unreachable (nothing listens at its port) a
    prepare's relay part or a rotation is refused (relay_lock_unavailable) before anything is done."""
    node = Node.objects.create(name="lockless", docker_url="tcp://127.0.0.1:1", tls_ca="", tls_cert="", tls_key="")
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    for holder in ("prepare", "rotation"):
        with pytest.raises(errors.RuntimeFailure) as failed, nodes._relay_lock(node, holder=holder):
            pytest.fail("the lock was taken without Redis")
        assert failed.value.details == {"reason": "relay_lock_unavailable", "node": "lockless"}


def test_a_holder_whose_relay_lock_lapsed_writes_nothing():
    """The check a holder makes right before it writes the relay's files: its own token still in
    the cache, else relay_busy (a prepare that ran past the lapse, or whose key Redis lost)."""
    node = Node.objects.create(name="lapsed", docker_url="tcp://127.0.0.1:1", tls_ca="", tls_cert="", tls_key="")
    with pytest.raises(errors.ValidationFailed):  # outside the lock: never held
        nodes._relay_lock_still_held(node)
    with nodes._relay_lock(node, holder="prepare"):
        nodes._relay_lock_still_held(node)  # held: no error
        cache.delete(f"node-relay-lock:{node.pk}")  # lapsed (or lost in a Redis restart)
        cache.add(f"node-relay-lock:{node.pk}", "prepare:another", timeout=60)  # and taken by another
        with pytest.raises(errors.ValidationFailed) as lost:
            nodes._relay_lock_still_held(node)
        assert lost.value.details == {"reason": "relay_busy", "node": "lapsed"}
    assert cache.get(f"node-relay-lock:{node.pk}") == "prepare:another"  # the other holder's is left
    cache.delete(f"node-relay-lock:{node.pk}")
