"""Nodes (docs/nodes.md): Docker engines beside the local one, reached over TCP with mutual TLS.

A node is registered only after its engine answered with the given certificates, and refused
when it answers without any (anyone reaching it would be root on it). The health check marks a
node down after VIBEBOX_NODE_DOWN_AFTER failed checks in a row and healthy again when it answers;
a draining node is checked but keeps its state (an operator's choice). A down node's running and
paused sandboxes are `unreachable`; when it answers again it is reconciled (sandbox_reconcile with
the node): each follows its container there.

Images reach a node from the local engine, streamed from one engine's `docker save` into the
other's `docker load` (no registry is assumed); node_prepare ships sandboxd's image and makes its
volume there, as sandboxd.build does locally.
"""

import contextlib
import dataclasses
import datetime
import ipaddress
import logging
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import record
from apps.marketplace.catalog import base_image
from apps.orgs.labels import check_labels
from vibebox import exceptions as errors
from vibebox.celery import app as celery_app
from vibebox.crypto import decrypt, encrypt

from .. import events, sandboxd, states
from ..models import Node, Sandbox, Snapshot, Status
from ..runtime import (
    DAEMON_BINARY,
    DAEMON_MOUNT,
    NodeConnection,
    NodeEngine,
    RelaySpec,
    forget_node_driver,
    get_driver,
    node_driver,
)
from ..runtime import relay as relay_client
from ..runtime.base import NODE_CLIENT_REFUSED, NODE_NO_CLIENT_AUTH
from ..runtime.sandboxd_client import PORT as DAEMON_PORT
from ..specs import base_labels, network_name
from .shipping import ShippedImage, image_stream
from .snapshots import archive_path

logger = logging.getLogger(__name__)

SYNC_TASK = "apps.sandboxes.tasks.sync_node_images"  # by name: tasks.py imports this module
LOCAL_NODE = "local"  # the implicit default node: this host's engine (no row)
NODE_REMOVED = "node removed"  # the status reason of a sandbox whose node was removed (--force)
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RELAY_PORT = 2377  # the relay's default port on a node (addnode --relay-port)
RELAY_NAME = "vibebox-relay"  # its container on the node
RELAY_VOLUME = "vibebox-relay-tls"  # its certificate, key and client CA, mounted read-only
RELAY_MOUNT = "/tls"
RELAY_DNS_FILES = ("/etc/docker/daemon.json", "/run/systemd/resolve/resolv.conf")  # the node's, read-only
RELAY_ANSWER_SECONDS = 30.0  # for a relay just started to answer over mutual TLS
RELAY_RELOAD_SECONDS = 10.0  # for a relay sent SIGHUP to answer with its new files (then it is replaced)
RELAY_VALID_DAYS = 3650  # its credentials (minted once per node; rotatenode mints new ones)
# One writer of a node's relay files at a time (_relay_lock): a prepare waits this long for another
# prepare (or a rotation for a prepare) to end; a prepare that finds a rotation does not wait.
RELAY_LOCK_WAIT = 120.0
RELAY_LOCK_SECONDS = 600  # a prepare's lock lapses after this (a worker killed while it held it)


def _refused(message: str, field: str) -> errors.ApplicationError:
    return errors.ValidationFailed(message, details={"field": field})


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or not port or parts.path not in ("", "/") or parts.query:
        raise _refused(f"The node's URL must be tcp://HOST:PORT (got {url!r}).", "url")
    return f"tcp://{parts.netloc}"


def _check_pem(ca: str, cert: str, key: str) -> None:
    try:
        x509.load_pem_x509_certificates(ca.encode())
    except ValueError:
        raise _refused("The CA file (--tlscacert) holds no PEM certificate.", "tlscacert") from None
    if bool(cert) != bool(key):
        raise _refused("A client certificate needs its key: give both --tlscert and --tlskey.", "tlscert")
    if cert:
        try:
            x509.load_pem_x509_certificate(cert.encode())
        except ValueError:
            raise _refused("The client certificate file (--tlscert) holds no PEM certificate.", "tlscert") from None
        try:
            load_pem_private_key(key.encode(), password=None)
        except (ValueError, TypeError):
            raise _refused(
                "The client key file (--tlskey) holds no PEM private key (or one with a passphrase).", "tlskey"
            ) from None


def node_engine_look(connection: NodeConnection) -> NodeEngine:
    """What the engine at `connection` says about itself, through a driver that is not kept."""
    driver = node_driver(connection, timeout=settings.VIBEBOX_NODE_CHECK_TIMEOUT)
    try:
        return driver.node_engine()
    finally:
        driver.close()


def _requires_client_certificates(connection: NodeConnection) -> None:
    """Refuses an engine that answers a client without a certificate."""
    try:
        node_engine_look(NodeConnection(url=connection.url, ca=connection.ca))
    except errors.RuntimeUnavailable as exc:
        if exc.details.get("reason") == NODE_CLIENT_REFUSED:
            return
        raise
    raise errors.ValidationFailed(
        f"The engine at {connection.url} answers clients without a certificate (anyone who reaches it is "
        "root on that host): run dockerd with --tlsverify.",
        details={"reason": NODE_NO_CLIENT_AUTH, "node": connection.url},
    )


def node_add(
    *,
    name: str,
    docker_url: str,
    ca: str,
    cert: str = "",
    key: str = "",
    labels: dict[str, str] | None = None,
    relay_port: int = RELAY_PORT,
) -> Node:
    """Registers a node once its engine answered over mutual TLS; nothing is saved otherwise.
    `relay_port`: where the node's relay will listen (node_prepare starts it)."""
    if not NAME_RE.match(name) or name == LOCAL_NODE:
        raise _refused(
            f"A node's name is 1-63 lowercase letters, digits and dashes, not {LOCAL_NODE!r} (got {name!r}).", "name"
        )
    if not 1 <= relay_port <= 65535:
        raise _refused(f"The relay's port is 1-65535 (got {relay_port}).", "relay_port")
    if Node.objects.filter(name=name).exists():
        raise _refused(f"A node named {name!r} is registered already.", "name")
    labels = check_labels(labels or {}, field="label")
    url = _check_url(docker_url)
    _check_pem(ca, cert, key)
    connection = NodeConnection(url=url, ca=ca, cert=cert, key=key)
    if not cert:
        _requires_client_certificates(connection)  # refuses an engine that answers without one
        raise _refused(f"The engine at {url} requires a client certificate: give --tlscert and --tlskey.", "tlscert")
    engine = node_engine_look(connection)
    _requires_client_certificates(connection)
    try:
        with transaction.atomic():
            node = Node.objects.create(
                name=name,
                docker_url=url,
                tls_ca=ca,
                tls_cert=cert,
                tls_key=encrypt(key),
                labels=labels or {},
                relay_port=relay_port,
                last_seen=timezone.now(),
                engine_version=engine.version,
                memory=engine.memory,
                cpus=engine.cpus,
            )
    except IntegrityError:
        raise _refused(f"A node named {name!r} is registered already.", "name") from None
    logger.info("node %s added: %s, Docker %s, %d CPUs", name, url, engine.version, engine.cpus)
    nodes_images_sync_soon(name=node.name)  # sandboxd, its relay and the template images, off addnode's check
    return node


def node_holdings(node: Node) -> tuple[list[Sandbox], list[Snapshot]]:
    """What keeps a node from being removed: its sandboxes that are not destroyed, its snapshots."""
    sandboxes = list(Sandbox.objects.filter(node=node, status__in=states.ALIVE).order_by("created_at"))
    return sandboxes, list(Snapshot.objects.filter(node=node).order_by("created_at"))


@dataclass(frozen=True)
class RemovedNode:
    """What node_remove did on the node's engine: `reached` (False: it was down or did not answer,
    `error` says why, and what VibeBox had made there stays); VibeBox's containers there
    (`containers`: sandboxes' and pooled ones) and their workspaces removed, the sandbox network and
    the isolation rules its relay wrote, then the relay and its files."""

    name: str
    reached: bool
    containers: int = 0
    volumes: int = 0
    error: str = ""


def node_remove(*, name: str, force: bool = False) -> RemovedNode:
    """Forgets a node, and takes away what VibeBox made on its engine when it answers
    (node_clean_up). Refused while a sandbox that is not destroyed, or a snapshot, is on it,
    unless `force`: such sandboxes are then `error` ("node removed"; a destroy of one then only
    ends its row; their containers and workspaces on the node go with the clean-up) and such
    snapshots are deleted (their image was on that engine), each with an audit entry. Destroyed
    sandboxes' rows forget the node."""
    with transaction.atomic():
        node = Node.objects.select_for_update().filter(name=name).first()
        if node is None:
            raise errors.NotFound(f"No node is named {name!r}.")
        sandboxes, snaps = node_holdings(node)
        if (sandboxes or snaps) and not force:
            raise errors.ValidationFailed(
                f"Node {name!r} still holds {len(sandboxes)} sandbox(es) and {len(snaps)} snapshot(s): destroy or "
                "delete them first, or remove it with --force (its sandboxes become error and their containers are "
                "removed from the node, its snapshots are deleted).",
                details={
                    "reason": "node_in_use",
                    "node": name,
                    "sandboxes": [s.pk for s in sandboxes[:20]],
                    "snapshots": [s.pk for s in snaps[:20]],
                },
            )
        for sandbox in sandboxes:
            # Off the node too: a destroy of it then finds no container on the local engine and ends.
            states.move(sandbox, states.ALIVE, Status.ERROR, status_reason=NODE_REMOVED, node=None)
            record("sandbox.node_removed", target=sandbox, changes={"node": name, "status": Status.ERROR})
            events.publish(sandbox=sandbox, type="sandbox.error", data={"reason": NODE_REMOVED})
        for snapshot in snaps:
            record("snapshot.deleted", target=snapshot, changes={"name": snapshot.name, "reason": NODE_REMOVED})
            archive_path(snapshot).unlink(missing_ok=True)
            snapshot.delete()
        Sandbox.objects.filter(node=node, status=Status.DESTROYED).update(node=None)
        pk = node.pk
        node.delete()  # its pooled rows go with it (CASCADE); their containers with the clean-up
        node.pk = pk  # the driver below is the removed row's (its connection, its relay's credentials)
    # After the commit: no create is placed there any more while its engine is cleaned (and an engine
    # that does not answer holds no lock).
    removed = node_clean_up(node) if node.state != Node.State.DOWN else _not_reached(node, f"the node is {node.state}")
    forget_node_driver(node.pk)
    with transaction.atomic():
        record(
            "node.removed",
            target=node,
            changes={
                "docker_url": node.docker_url,
                "force": force,
                "sandboxes": [s.pk for s in sandboxes],
                "snapshots": [s.pk for s in snaps],
                "cleaned": removed.reached,
                "containers": removed.containers,
                **({"error": removed.error} if removed.error else {}),
            },
        )
    logger.warning(
        "node %s removed%s; %s",
        name,
        f" (forced: {len(sandboxes)} sandboxes, {len(snaps)} snapshots)" if force else "",
        f"{removed.containers} container(s) and its relay removed there" if removed.reached else removed.error,
    )
    return removed


def _not_reached(node: Node, why: str) -> RemovedNode:
    return RemovedNode(
        name=node.name,
        reached=False,
        error=f"not cleaned up ({why}): on the node, `docker rm -f {RELAY_NAME}`, `docker volume rm "
        f"{RELAY_VOLUME}`, and VibeBox's containers (label vibebox.instance={settings.VIBEBOX_INSTANCE}); a "
        "reboot drops the relay's iptables rules",
    )


def node_clean_up(node: Node) -> RemovedNode:
    """What VibeBox made on a node's engine, gone (node_remove): this instance's containers there
    (sandboxes, pooled ones) and their volumes, the sandbox network with the isolation rules the
    relay wrote for its bridge (removed through the relay, so first), then the relay's container and
    its files. Images and sandboxd's volume stay (a node added again starts from them). An engine
    that does not answer: a RemovedNode that says what is left."""
    driver = get_driver(node)
    try:
        labels = base_labels()
        containers = driver.list_containers(labels)
        for container in containers:
            driver.remove(container.name)
        volumes = driver.list_volumes(labels)
        for volume in volumes:
            driver.remove_volume(volume)
        if node.relay_ca:
            driver.remove_network(network_name())  # the rules through the relay's firewall agent
        driver.relay_remove(RELAY_NAME, RELAY_VOLUME)
    except (errors.ApplicationError, OSError) as exc:
        message = exc.message if isinstance(exc, errors.ApplicationError) else f"{type(exc).__name__}: {exc}"
        logger.warning("node %s removed, but its engine was not cleaned up: %s", node.name, message)
        return _not_reached(node, message[:300])
    return RemovedNode(name=node.name, reached=True, containers=len(containers), volumes=len(volumes))


def node_state_set(*, name: str, state: str) -> Node:
    """An operator drains a node (it takes no new sandboxes) or puts it back (healthy; the next
    check marks it down if it does not answer)."""
    if state not in (Node.State.DRAINING, Node.State.HEALTHY):
        raise _refused("A node is set to draining or healthy; down is for the health check to say.", "state")
    updated = Node.objects.filter(name=name).update(state=state, failures=0)
    if not updated:
        raise errors.NotFound(f"No node is named {name!r}.")
    return Node.objects.get(name=name)


def node_check(*, node: Node) -> str:
    """One health check of `node`: its engine answers (engine info refreshed, a down node is
    healthy again) or not (one more failure; at VIBEBOX_NODE_DOWN_AFTER a healthy node is down).
    Answers the node's state after the check.

    While the node is down (each check, so a sandbox a request moved meanwhile is not missed), its
    running and paused sandboxes become `unreachable`; a node that answers again is reconciled
    here, under the health pass's lock (its sandboxes follow their containers)."""
    rows = Node.objects.filter(pk=node.pk)
    returned = False
    try:
        engine = node_engine_look(node.connection())
    except errors.ApplicationError as exc:
        rows.update(failures=F("failures") + 1, last_error=exc.message[:1000])
        if rows.filter(state=Node.State.HEALTHY, failures__gte=settings.VIBEBOX_NODE_DOWN_AFTER).update(
            state=Node.State.DOWN
        ):
            logger.warning("node %s is down: %s", node.name, exc.message)
    else:
        rows.update(
            failures=0,
            last_seen=timezone.now(),
            last_error="",
            engine_version=engine.version,
            memory=engine.memory,
            cpus=engine.cpus,
        )
        if rows.filter(state=Node.State.DOWN).update(state=Node.State.HEALTHY):
            logger.warning("node %s is back: healthy", node.name)
            returned = True
    node.refresh_from_db()
    if node.state == Node.State.DOWN:
        node_sandboxes_unreachable(node=node)
    elif returned:
        from ..reconcile import sandbox_reconcile  # it calls the services: imported late, no cycle

        try:
            report = sandbox_reconcile(node=node)
        except Exception:  # the other nodes are still checked; the next full pass reconciles this one
            logger.exception("node %s is back, but its reconcile failed", node.name)
        else:
            logger.warning("node %s reconciled on its return: %s", node.name, report.as_dict() or "nothing to do")
        nodes_images_sync_soon(name=node.name)  # what it missed while down (publications, sandboxd)
    elif node_relay_stale(node):
        _stale_sync_soon(node)
    return node.state


def node_relay_stale(node: Node) -> bool:
    """Whether the node was prepared with a relay image other than the current one (another
    sandboxd source: sandboxd.relay_current): it is not placeable until prepared again."""
    return bool(node.relay_image) and node.relay_image != sandboxd.relay_current()


def _stale_sync_soon(node: Node) -> None:
    """The node sync (node_prepare first) for a healthy node whose relay is stale, sent by its health
    check at most once per VIBEBOX_NODE_IMAGE_SYNC_INTERVAL for a given current image (a prepare
    that fails is tried again by the next one, or by beat's sync), not at every check."""
    if node.state != Node.State.HEALTHY:
        return
    key = f"node-relay-stale:{node.pk}:{sandboxd.relay_current()}"
    if cache.add(key, 1, timeout=max(1, int(settings.VIBEBOX_NODE_IMAGE_SYNC_INTERVAL))):
        logger.warning(
            "node %s runs relay %s, not %s: not placeable until prepared again (sent)",
            node.name,
            node.relay_image,
            sandboxd.relay_current(),
        )
        nodes_images_sync_soon(name=node.name)


def node_sandboxes_unreachable(*, node: Node) -> list[str]:
    """The down node's running and paused sandboxes become `unreachable` ("node down"), each
    through states.move with a `sandbox.unreachable` event. Answers their ids."""
    moved = []
    for sandbox in Sandbox.objects.filter(node=node, status__in=states.UNREACHABLE_FROM).select_related("node"):
        with transaction.atomic():  # the move and its event's receivers (webhooks, the meter's mark) together
            if states.move(sandbox, states.UNREACHABLE_FROM, Status.UNREACHABLE, status_reason=states.NODE_DOWN):
                events.publish(sandbox=sandbox, type="sandbox.unreachable", data={"reason": states.NODE_DOWN})
                moved.append(sandbox.pk)
    if moved:
        logger.warning("node %s is down: %d sandbox(es) unreachable", node.name, len(moved))
    return moved


def nodes_images_sync_soon(*, name: str | None = None) -> None:
    """Sends the node images sync (tasks.sync_node_images: services/node_images.py) after the
    current transaction commits (what it ships must be committed), when a healthy node is there to
    receive anything (no node: no task, one query)."""
    nodes = Node.objects.filter(state=Node.State.HEALTHY)
    if name is not None:
        nodes = nodes.filter(name=name)
    if nodes.exists():
        transaction.on_commit(lambda: celery_app.signature(SYNC_TASK, kwargs={"node_name": name}).delay())


def nodes_check() -> dict[str, str]:
    """Every registered node checked once (Celery beat's check_nodes): name -> state."""
    return {node.name: node_check(node=node) for node in Node.objects.all()}


@dataclass(frozen=True)
class PreparedNode:
    """A node after node_prepare: sandboxd's image there, and its volume (`volume_made`: made by
    this call, not found in place); its relay (`relay_started`: started or replaced by this call,
    not found running as it should; `relay_reloaded`: the same relay told to read its changed
    files) on `relay_port`, allowed to open sandboxd on `subnets`."""

    image: ShippedImage
    volume: str
    volume_made: bool
    relay_started: bool = False
    relay_reloaded: bool = False
    relay_port: int = 0
    subnets: tuple[str, ...] = ()


def _healthy(node: Node) -> Node:
    """The node's row as it is now, refused unless healthy (a draining node takes nothing new,
    a down one cannot be reached)."""
    node = Node.objects.filter(pk=node.pk).first() or node
    if node.state != Node.State.HEALTHY:
        raise errors.ValidationFailed(
            f"Node {node.name!r} is {node.state}: images are shipped only to a healthy node.",
            details={"reason": "node_not_healthy", "node": node.name, "state": node.state},
        )
    return node


def node_ship_image(*, node: Node, tag: str) -> ShippedImage:
    """The local engine's image `tag` on the node's engine, streamed from the local `docker save`
    into the node's `docker load` (never held whole), then checked: the node must have the tag with
    the same image id. Idempotent: nothing is sent when the node has the tag with that id already.
    Refused unless the node is healthy."""
    return _ship(_healthy(node), tag)


def _ship(node: Node, tag: str) -> ShippedImage:
    """node_ship_image for a node whose row was just read and found healthy."""
    return image_stream(tag, source=None, target=node)


@dataclass(frozen=True)
class _Proof:
    """What a relay must do once it has read its files (a rotation's step): accept `accepted` (a
    CONNECT it refuses itself, 403) and, when given, refuse `refused` at the handshake."""

    accepted: ssl.SSLContext
    refused: ssl.SSLContext | None = None


def node_prepare(*, node: Node, relay: bool = True, held: bool = False, proof: _Proof | None = None) -> PreparedNode:
    """What a node needs before sandboxes run there: sandboxd's image shipped, sandboxd's volume
    made from it under the same name as on the local engine (the way sandboxd.build makes it
    locally), the sandbox network made as on the local engine, the node's relay running (its
    image, sandboxd's binary with iptables, shipped; credentials minted the first time) and
    answering over mutual TLS, and the network's firewall rules written through it; then the
    relay's image (tag) is recorded (placement.placeable compares it with the current one).
    Idempotent. sandboxd and the relay's image are built locally first if they are not.

    `relay=False` ships only (sandboxd's image and volume, the relay's image): the relay, the
    network, its rules and the recorded image are left as they are (node_relay_rotate's first
    pass, before the new credentials).

    The relay's part runs under the node's relay lock (_relay_lock), its row read again once the
    lock is held: a prepare (a node sync, `shipimage --sandboxd`) never writes files from a row a
    rotation has changed since. One that finds a rotation running is refused (`relay_busy`: the
    next sync prepares it); one that finds another prepare waits for it. `held`: the caller (a
    rotation's step) holds the lock; `proof`: what the relay must do once it has read its files
    (a reloaded relay that does not is replaced)."""
    node = _healthy(node)  # read once, passed on
    volume = sandboxd.volume_for_sandboxes()
    base = base_image()
    image = _ship(node, sandboxd.image(base))
    remote = get_driver(node)
    made = not remote.volume_exists(volume)
    labels = {"vibebox.sandboxd": sandboxd.digest(base)}  # as sandboxd.build labels it locally
    remote.volume_from_image(volume, image=image.tag, path=DAEMON_MOUNT, labels=labels)
    relay_image = _ship(node, sandboxd.relay_build())  # sandboxd's binary with iptables: --firewall
    if not relay:
        logger.info("node %s: sandboxd %s and the relay's image %s shipped", node.name, image.tag, relay_image.tag)
        return PreparedNode(image=image, volume=volume, volume_made=made, relay_port=node.relay_port)
    if held:
        return _relay_prepare(node, image, volume, made, relay_image, proof=proof)
    with _relay_lock(node, holder="prepare"):
        return _relay_prepare(node, image, volume, made, relay_image, proof=proof)


def _relay_prepare(
    node: Node, image: ShippedImage, volume: str, made: bool, relay_image: ShippedImage, *, proof: _Proof | None
) -> PreparedNode:
    """node_prepare's relay part, under the node's relay lock: the row is read again here (what a
    rotation wrote before this prepare got the lock), so the files written are the row's as it is."""
    node = _healthy(node)
    node = _relay_credentials(node)
    remote = get_driver(node)  # its connection now carries the relay's client credentials
    network = network_name()
    # The network first (the relay is told its subnets), isolated once the relay runs: the node's
    # firewall rules go through it (runtime/firewall_remote.py).
    remote.ensure_network(network, base_labels(), isolate=False)
    subnets = tuple(remote.network_subnets(network))
    if not subnets:
        raise errors.RuntimeFailure(f"The sandbox network {network} on node {node.name!r} has no subnet.")
    try:
        spec = _relay_spec(node, relay_image.tag, subnets)
        spec = dataclasses.replace(spec, command=spec.command + _back_args(remote.network_gateway(network)))
        _relay_lock_still_held(node)  # the files are the row's as read under the lock
        outcome = remote.relay_ensure(spec)
        if outcome == "reloaded":
            try:
                _relay_answers(node, seconds=RELAY_RELOAD_SECONDS, proof=proof)
            except errors.RuntimeFailure as exc:
                # Its files refused (the relay logs why and keeps the old ones) or the signal lost:
                # replaced as a relay that cannot reload is.
                logger.warning("node %s: the relay did not reload (%s), replacing it", node.name, exc)
                outcome = remote.relay_ensure(spec, replace=True)
        if outcome != "reloaded":
            _relay_answers(node, proof=proof)
        remote.ensure_network(network, base_labels())
    except Exception:
        # A relay replaced but not answering, or a network left unisolated: not placeable until a
        # later prepare succeeds (placement.placeable reads relay_image).
        Node.objects.filter(pk=node.pk).update(relay_image="")
        raise
    # Placeable (its source's digest) only if the row is still the one its files were written from.
    written = {f: getattr(node, f) for f in ("relay_ca", "relay_cert", "relay_server_cert")}
    if not Node.objects.filter(pk=node.pk, **written).update(relay_image=relay_image.tag):
        logger.warning("node %s: its relay credentials changed during this prepare; the next one records it", node.name)
    logger.info(
        "node %s prepared: sandboxd %s, volume %s%s, relay on port %d %s (allowed %s)",
        node.name,
        image.tag,
        volume,
        " made" if made else "",
        node.relay_port,
        {"running": "running already"}.get(outcome, outcome),
        ",".join(subnets),
    )
    return PreparedNode(
        image=image,
        volume=volume,
        volume_made=made,
        relay_started=outcome == "started",
        relay_reloaded=outcome == "reloaded",
        relay_port=node.relay_port,
        subnets=subnets,
    )


def _relay_spec(node: Node, image: str, subnets: tuple[str, ...]) -> RelaySpec:
    files = {
        "ca.pem": node.relay_ca.encode(),
        "cert.pem": node.relay_server_cert.encode(),
        "key.pem": decrypt(node.relay_server_key).encode(),
    }
    command = (
        "relay",
        "--listen", f":{node.relay_port}",
        "--cert", f"{RELAY_MOUNT}/cert.pem",
        "--key", f"{RELAY_MOUNT}/key.pem",
        "--client-ca", f"{RELAY_MOUNT}/ca.pem",
        "--allow", ",".join(subnets),
        "--ports", "1-65535",  # sandboxd's and any port a preview opens; never the node's own addresses
        "--firewall",  # the node's bridge rules (runtime/firewall_remote.py)
    )  # fmt: skip
    return RelaySpec(
        name=RELAY_NAME,
        image=image,
        entrypoint=(DAEMON_BINARY,),
        command=command,
        volume=RELAY_VOLUME,
        mount=RELAY_MOUNT,
        files=files,
        labels={"vibebox.relay": "1"},  # not vibebox.managed: no sandbox, reconcile leaves it alone
        cap_add=("NET_ADMIN", "NET_RAW"),  # iptables on the node's host (--firewall), nothing else
        # Where Docker's containers get their DNS servers from, for the firewall agent's resolvers
        # (sandboxd/internal/relay/resolvers.go reads them under /host); absent ones are left out.
        host_files=tuple((path, f"/host{path}") for path in RELAY_DNS_FILES),
        # Relays from this source read their files again on SIGHUP; one from an older image is
        # replaced (its image id differs from this one's, so relay_ensure replaces it anyway).
        reloads=image == sandboxd.relay_current(),
    )


def _back_args(gateway: str) -> tuple[str, ...]:
    """The relay's back links (docs/nodes.md, "The server's services from a node"): the model
    gateway and the egress proxy for the node's sandboxes, on its bridge's gateway at the ports
    they have here (the node's bridge rules open those ports: RelayRunner.model_gateway)."""
    if settings.VIBEBOX_NODE_BACK_LINKS <= 0:
        return ()
    services = {"gateway": settings.VIBEBOX_GATEWAY_PORT, "egress": settings.VIBEBOX_EGRESS_PROXY_PORT}
    back = ",".join(f"{name}={gateway}:{port}" for name, port in services.items() if port)
    return ("--back", back) if back else ()


def _relay_host(node: Node) -> str:
    return urlsplit(node.docker_url).hostname or ""


def _relay_credentials(node: Node) -> Node:
    """The node's relay credentials, minted once (docs/nodes.md, "The relay: sandboxd on a node");
    node_relay_rotate mints new ones. Keys are stored encrypted; the relay's key leaves this server
    only through the node's engine API."""
    if node.relay_ca:
        return node
    # Conditional: two prepares at once keep the first one's credentials.
    Node.objects.filter(pk=node.pk, relay_ca="").update(**_relay_minted(node))
    node = Node.objects.get(pk=node.pk)
    logger.info("node %s: relay credentials minted (SAN %s)", node.name, _relay_host(node))
    return node


def _relay_minted(node: Node) -> dict[str, str]:
    """New relay credentials for `node`, as Node fields: a CA of the node's own (its key is used here
    and dropped), the relay's server certificate naming the node's host (an IP SAN for an address, a
    DNS SAN for a name), and this server's client certificate."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A name of its own per CA, and key identifiers: during a rotation the relay and this server
    # hold the old and the new CA at once, and OpenSSL finds an issuer by its name (then its key id).
    ca_name = _cn(f"vibebox relay CA {node.name} {now:%Y%m%d} {secrets.token_hex(4)}")
    ca = (
        _certificate(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    issuer = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    host = _relay_host(node)
    try:
        san = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = (
        _certificate(_cn(f"vibebox relay {node.name}"), ca.subject, server_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(issuer, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client = (
        _certificate(_cn("vibebox server"), ca.subject, client_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(issuer, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return {
        "relay_ca": _pem(ca),
        "relay_server_cert": _pem(server),
        "relay_server_key": encrypt(_key_pem(server_key)),
        "relay_cert": _pem(client),
        "relay_key": encrypt(_key_pem(client_key)),
    }


def relay_fingerprint(pem: str) -> str:
    """A certificate's SHA-256 fingerprint (hex), as audit entries and `rotatenode` name it."""
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex() if pem else ""


@dataclass(frozen=True)
class RotatedRelay:
    """A node's relay after node_relay_rotate: the client certificates' fingerprints before and after."""

    node: str
    old: str
    new: str
    prepared: PreparedNode
    reloaded: bool = False  # every step reloaded the same relay (none replaced it)


def node_relay_rotate(*, name: str) -> RotatedRelay:
    """New relay credentials for a healthy, prepared node (docs/nodes.md, "Rotating the relay's
    credentials"): a new CA, server certificate and client certificate are minted, and the row and
    the relay are moved to them in four steps such that the relay, at every moment, accepts the
    credentials of every row a process may still hold. A process presents the row's client
    certificate and verifies the relay's server certificate against the row's CA list (`relay_ca`);
    the relay trusts the CAs of its `ca.pem` for client certificates. So a row's credentials get in
    while the relay's server certificate is signed by a CA of the row, and the row's client
    certificate by a CA the relay trusts. The steps (R0: the row before; each writes the row, then,
    where the relay's files change, reloads the relay and proves it has read them):
    1. trust (node_relay_trust): R1 = the new CA added before the old one(s) in `relay_ca`; the
       relay reloaded: it trusts both CAs and still presents the old server certificate, which R0's
       and R1's CA lists verify. Proved: the new client certificate (not in any row yet) gets in;
    2. client (node_relay_client): R2 = the new client certificate and key (audited,
       `node.relay_rotated`); the relay's files are unchanged (it trusts the new CA since step 1);
    3. serve (node_relay_serve): R3 = the new server certificate and key (the CA list still both:
       processes' connections are unchanged, no driver or context changes); the relay reloaded
       presents it. R0 cannot verify it (the old CA alone, and the old CA's key is gone: nothing
       can be signed for both), so this step waits until VIBEBOX_NODE_ROTATION_GRACE has passed
       since R1 was written: every process has read the row again by then. R1 to R3 verify it
       (their lists hold the new CA). Proved: the new CA alone verifies the relay;
    4. end (node_relay_end): R4 = the new CA alone; the relay reloaded trusts it alone: the old
       client certificate (R0's, R1's) is refused from then on. It waits until the grace has passed
       since R2 was written. R2 to R4 get in. Proved: the old client certificate is refused.
    The whole rotation holds the node's relay lock (_relay_lock): a node sync's prepare meanwhile is
    refused (`relay_busy`) rather than write files from a row it read before a step; a rotation
    waits for a prepare that holds it. A relay from an older image, or one that does not prove a
    step within RELAY_RELOAD_SECONDS, is replaced instead (its tunnels cut; a connection tried
    while it restarts is refused and tried again by sandboxd's calls, _call_daemon). A process
    picks up the credentials with the node's row (a driver is kept per node and connection); one
    that keeps a row longer than the grace (an operation that began before step 1 and makes a new
    connection to the relay after step 3) is refused. The node stays placeable throughout; a step
    that fails leaves it unplaceable until a later prepare succeeds, and the row where that step
    left it (rotatenode again starts from it)."""
    node = Node.objects.filter(name=name).first()
    if node is None:
        raise errors.NotFound(f"No node is named {name!r}.")
    if node.state != Node.State.HEALTHY:
        raise errors.ValidationFailed(
            f"Node {name!r} is {node.state}: its relay can be replaced only while it is healthy.",
            details={"reason": "node_not_healthy", "node": name, "state": node.state},
        )
    if not node.relay_ca:
        raise errors.ValidationFailed(
            f"Node {name!r} has no relay yet (nothing to rotate): prepare it (manage.py shipimage {name} --sandboxd).",
            details={"reason": "node_no_relay", "node": name},
        )
    # Images shipped and built first, with the old credentials still in force: the relay's restarts
    # are then short. Only shipped: the relay and the network's rules are the next steps'.
    node_prepare(node=node, relay=False)
    minted = _relay_minted(node)
    grace = settings.VIBEBOX_NODE_ROTATION_GRACE
    with _relay_lock(node, holder="rotation", seconds=int(3 * grace) + RELAY_LOCK_SECONDS):
        node = _healthy(node)  # the row as it is under the lock (a prepare may have minted or changed it)
        before = node
        trusted = node_relay_trust(node=node, minted=minted)
        r1 = time.monotonic()  # R1 was written before this
        node_relay_client(node=node, minted=minted)
        r2 = time.monotonic()
        _wait_until(r1 + grace)
        served = node_relay_serve(node=node, minted=minted)
        _wait_until(r2 + grace)
        prepared = node_relay_end(node=node, minted=minted, before=before)
    old, new = relay_fingerprint(before.relay_cert), relay_fingerprint(minted["relay_cert"])
    reloaded = trusted.relay_reloaded and served.relay_reloaded and prepared.relay_reloaded
    logger.warning(
        "node %s: relay credentials rotated (client certificate %s -> %s), relay %s",
        name,
        old[:16],
        new[:16],
        "reloaded" if reloaded else "replaced",
    )
    return RotatedRelay(node=name, old=old, new=new, prepared=prepared, reloaded=reloaded)


def _wait_until(moment: float) -> None:
    """Sleeps until time.monotonic() is `moment` (a rotation's grace)."""
    time.sleep(max(0.0, moment - time.monotonic()))


def _minted_context(minted: dict[str, str], *, ca: str, cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client context with `ca`, and the minted client certificate unless `cert` and `key` are given."""
    return relay_client.client_context(
        ca=ca, cert=cert or minted["relay_cert"], key=key or decrypt(minted["relay_key"])
    )


def node_relay_trust(*, node: Node, minted: dict[str, str]) -> PreparedNode:
    """Rotation's step 1 (node_relay_rotate; the caller holds the relay lock): the new CA stored
    before the CA list the row has (`relay_ca` then holds the PEMs of both; kept whole: after a
    rotation cut short it may be a bundle whose older CA signed the server certificate still in
    use), client and server certificates unchanged; the relay reloaded with it (node_prepare) and
    proved to accept the new client certificate, which no row holds yet."""
    node = Node.objects.get(pk=node.pk)
    bundle = minted["relay_ca"] + node.relay_ca  # PEMs end with a newline
    Node.objects.filter(pk=node.pk).update(relay_ca=bundle)
    proof = _Proof(accepted=_minted_context(minted, ca=bundle))
    return node_prepare(node=Node.objects.get(pk=node.pk), held=True, proof=proof)


def node_relay_client(*, node: Node, minted: dict[str, str]) -> None:
    """Rotation's step 2: the new client certificate and key in the row, audited
    (`node.relay_rotated`: the old and new client certificates' fingerprints); the relay's files are
    unchanged (it trusts the new CA since step 1): it is checked to answer with the row."""
    node = Node.objects.get(pk=node.pk)
    old, new = relay_fingerprint(node.relay_cert), relay_fingerprint(minted["relay_cert"])
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(relay_cert=minted["relay_cert"], relay_key=minted["relay_key"])
        record("node.relay_rotated", target=node, changes={"client_certificate": {"old": old, "new": new}})
    try:
        _relay_answers(Node.objects.get(pk=node.pk), seconds=RELAY_RELOAD_SECONDS)
    except errors.RuntimeFailure:
        Node.objects.filter(pk=node.pk).update(relay_image="")  # not placeable until prepared again
        raise


def node_relay_serve(*, node: Node, minted: dict[str, str]) -> PreparedNode:
    """Rotation's step 3: the new server certificate and key in the row (its CA list still both),
    the relay reloaded with them and proved to present the new one (the new CA alone verifies it).
    Every row from step 1 on verifies it; the row from before the rotation does not (the caller
    waits VIBEBOX_NODE_ROTATION_GRACE after step 1 first)."""
    Node.objects.filter(pk=node.pk).update(
        relay_server_cert=minted["relay_server_cert"], relay_server_key=minted["relay_server_key"]
    )
    proof = _Proof(accepted=_minted_context(minted, ca=minted["relay_ca"]))
    return node_prepare(node=Node.objects.get(pk=node.pk), held=True, proof=proof)


def node_relay_end(*, node: Node, minted: dict[str, str], before: Node) -> PreparedNode:
    """Rotation's last step: the new CA alone in the row, the relay reloaded with it and proved to
    refuse the client certificate of `before` (the row before the rotation) at the handshake. Rows
    from step 2 on get in; the caller waits VIBEBOX_NODE_ROTATION_GRACE after step 2 first."""
    Node.objects.filter(pk=node.pk).update(relay_ca=minted["relay_ca"])
    refused = _minted_context(minted, ca=minted["relay_ca"], cert=before.relay_cert, key=decrypt(before.relay_key))
    proof = _Proof(accepted=_minted_context(minted, ca=minted["relay_ca"]), refused=refused)
    return node_prepare(node=Node.objects.get(pk=node.pk), held=True, proof=proof)


def _cn(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key, now) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=RELAY_VALID_DAYS))
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _relay_answers(node: Node, *, seconds: float = RELAY_ANSWER_SECONDS, proof: _Proof | None = None) -> None:
    """The relay answers over mutual TLS: a CONNECT to an address it must refuse (loopback) is
    refused by the relay itself (403), which proves the handshake both ways and the relay's
    reading; nothing is opened. Waits up to `seconds` for a relay just started (or reloaded: the
    row's credentials get in only once it has read its new files). With a `proof`, its `accepted`
    context is used instead of the row's, and its `refused` one must fail the handshake (a rotation's
    step: what proves the relay has read the files, where the row's credentials would get in before)."""
    context = proof.accepted if proof is not None else relay_client.node_context(node.connection())
    where = (_relay_host(node), node.relay_port)
    deadline = time.monotonic() + seconds
    while True:
        failure = _relay_refuses_itself(where, context)
        if not failure and proof is not None and proof.refused is not None:
            try:
                relay_client.tunnel(where, ("127.0.0.1", DAEMON_PORT), context=proof.refused, timeout=5).close()
            except ConnectionRefusedError as exc:  # not listening (a relay restarting): not a refusal
                failure = f"{type(exc).__name__}: {exc}"
            except (ssl.SSLError, ConnectionError):
                return  # refused at the handshake (TLS 1.3: at the first read after it, or closed)
            except relay_client.RelayRefused:
                failure = "it still accepts the client certificate it must refuse"
            except OSError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                failure = "it opened a tunnel to loopback"
        if not failure:
            return
        if time.monotonic() > deadline:
            raise errors.RuntimeFailure(
                f"The relay of node {node.name!r} does not answer at {where[0]}:{where[1]}: {failure}"[:500],
                details={"reason": "relay_unavailable", "node": node.name},
            )
        time.sleep(0.2)


def _relay_refuses_itself(where: tuple[str, int], context: ssl.SSLContext) -> str:
    """Empty when the relay at `where` refuses a CONNECT to loopback itself (403) for `context`,
    else why not."""
    try:
        relay_client.tunnel(where, ("127.0.0.1", DAEMON_PORT), context=context, timeout=5).close()
    except relay_client.RelayRefused as exc:
        return "" if exc.status == 403 else f"{exc.status} {exc.message}"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "it opened a tunnel to loopback"


@contextlib.contextmanager
def _relay_lock(node: Node, *, holder: str, seconds: int = RELAY_LOCK_SECONDS):
    """The node's relay lock (a cache key, as tasks.single_pass's): whoever holds it reads the row
    and writes the relay's files; nobody else does. `holder`: "prepare" (node_prepare) or
    "rotation" (node_relay_rotate, which holds it through all its steps and waits). A prepare that
    finds a rotation is refused at once (`relay_busy`), so a sync never writes files from a row the
    rotation is changing; anything else waits up to RELAY_LOCK_WAIT for the holder. The lock lapses
    after `seconds` (a process killed while it held it)."""
    key, token = f"node-relay-lock:{node.pk}", f"{holder}:{secrets.token_hex(8)}"
    deadline = time.monotonic() + RELAY_LOCK_WAIT
    while not _cache_call(node, cache.add, key, token, timeout=seconds):
        other = str(_cache_call(node, cache.get, key) or "")
        rotating = other.startswith("rotation:")
        if rotating and holder == "rotation":
            why = "another rotation of its relay (rotatenode) is running"
        elif rotating:
            why = "its relay's credentials are being rotated (rotatenode): the next sync prepares it"
        elif time.monotonic() > deadline:
            why = f"another prepare of its relay held it for {RELAY_LOCK_WAIT:.0f} s"
        else:
            time.sleep(0.2)
            continue
        raise errors.ValidationFailed(
            f"Node {node.name!r}: {why}.", details={"reason": "relay_busy", "node": node.name}
        )
    _held_locks.__dict__[node.pk] = (key, token)
    try:
        yield
    finally:
        _held_locks.__dict__.pop(node.pk, None)
        with contextlib.suppress(redis.RedisError):  # unreachable: the lock lapses on its own
            if cache.get(key) == token:  # not a later holder's (ours lapsed)
                cache.delete(key)


_held_locks = threading.local()  # node pk -> (key, token) of the relay lock this thread holds


def _relay_lock_still_held(node: Node) -> None:
    """Raised `relay_busy` unless this thread still holds the node's relay lock: a prepare that ran
    past the lock's lapse, or whose key Redis lost in a restart, writes no relay files (another
    holder may have written newer ones)."""
    key, token = _held_locks.__dict__.get(node.pk, ("", ""))
    if not token or _cache_call(node, cache.get, key) != token:
        raise errors.ValidationFailed(
            f"Node {node.name!r}: its relay lock lapsed or was lost while this prepare ran; the next sync prepares it.",
            details={"reason": "relay_busy", "node": node.name},
        )


def _cache_call(node: Node, call, *args, **kwargs):
    """A call to the cache for the relay lock: Redis unreachable fails the prepare or rotation (never
    a write of the relay's files without the lock)."""
    try:
        return call(*args, **kwargs)
    except redis.RedisError as exc:
        raise errors.RuntimeFailure(
            f"Node {node.name!r}: the relay lock cannot be taken (Redis: {type(exc).__name__}); try again.",
            details={"reason": "relay_lock_unavailable", "node": node.name},
        ) from None
