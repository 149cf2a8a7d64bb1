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

import dataclasses
import datetime
import ipaddress
import logging
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

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


def node_prepare(*, node: Node, relay: bool = True) -> PreparedNode:
    """What a node needs before sandboxes run there: sandboxd's image shipped, sandboxd's volume
    made from it under the same name as on the local engine (the way sandboxd.build makes it
    locally), the sandbox network made as on the local engine, the node's relay running (its
    image, sandboxd's binary with iptables, shipped; credentials minted the first time) and
    answering over mutual TLS, and the network's firewall rules written through it; then the
    relay's image (tag) is recorded (placement.placeable compares it with the current one).
    Idempotent. sandboxd and the relay's image are built locally first if they are not.

    `relay=False` ships only (sandboxd's image and volume, the relay's image): the relay, the
    network, its rules and the recorded image are left as they are (node_relay_rotate's first
    pass, before the new credentials)."""
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
        outcome = remote.relay_ensure(spec)
        if outcome == "reloaded":
            try:
                _relay_answers(node, seconds=RELAY_RELOAD_SECONDS)
            except errors.RuntimeFailure as exc:
                # Its files refused (the relay logs why and keeps the old ones) or the signal lost:
                # replaced as a relay that cannot reload is.
                logger.warning("node %s: the relay did not reload (%s), replacing it", node.name, exc)
                outcome = remote.relay_ensure(spec, replace=True)
        if outcome != "reloaded":
            _relay_answers(node)
        remote.ensure_network(network, base_labels())
    except Exception:
        # A relay replaced but not answering, or a network left unisolated: not placeable until a
        # later prepare succeeds (placement.placeable reads relay_image).
        Node.objects.filter(pk=node.pk).update(relay_image="")
        raise
    Node.objects.filter(pk=node.pk).update(relay_image=relay_image.tag)  # its source's digest: placeable
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
    reloaded: bool = False  # both steps reloaded the same relay (none replaced it)


def node_relay_rotate(*, name: str) -> RotatedRelay:
    """New relay credentials for a healthy, prepared node (docs/nodes.md, "Rotating the relay's
    credentials"): a new CA, server certificate and client certificate are minted, and the relay is
    switched to them in two steps, so that no call is refused for its credentials meanwhile:
    1. the overlap: the relay trusts the old and the new CA for client certificates and still
       presents its old server certificate; the row holds the new client certificate and both CAs
       (so a process that has the old row, or the new one, completes a handshake with the relay
       before, during and after the switch);
    2. the end: the relay trusts the new CA only and presents the new server certificate; the row
       holds the new CA only. The old client certificate is refused from then on.
    Each step writes the relay's new files into its volume and has the relay read them again
    (SIGHUP, relay_ensure): the same container, its open tunnels not cut, new handshakes with the
    new files. A relay from an older image, or one that does not answer with its new files, is
    replaced instead: tunnels open through it are cut, and a connection tried while it restarts is
    refused and tried again by sandboxd's calls (runtime/sandboxd_calls.py, _call_daemon). Every
    process picks up the credentials with the node's row (a driver is kept per connection). Audited
    (`node.relay_rotated`, the client certificates' fingerprints). The node is unplaceable from the
    new credentials until the relay answers with them; one that does not stays so until a later
    prepare succeeds."""
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
    old = relay_fingerprint(node.relay_cert)
    # Images shipped and built first, with the old credentials still in force: the relay's restarts
    # are then short. Only shipped: the relay and the network's rules are the next steps'.
    node_prepare(node=node, relay=False)
    minted = _relay_minted(node)
    overlap = node_relay_overlap(node=node, minted=minted)
    node = Node.objects.get(pk=node.pk)
    new = relay_fingerprint(node.relay_cert)
    prepared = node_relay_switch(node=node, minted=minted)
    reloaded = overlap.relay_reloaded and prepared.relay_reloaded
    logger.warning(
        "node %s: relay credentials rotated (client certificate %s -> %s), relay %s",
        name,
        old[:16],
        new[:16],
        "reloaded" if reloaded else "replaced",
    )
    return RotatedRelay(node=name, old=old, new=new, prepared=prepared, reloaded=reloaded)


def node_relay_overlap(*, node: Node, minted: dict[str, str]) -> PreparedNode:
    """Rotation's first step (node_relay_rotate): the new client certificate stored with both CAs
    (the new one first; `relay_ca` holds the two PEMs), the relay's server certificate kept, and the
    relay reloaded (or replaced: node_prepare) with them: it accepts the old and the new client
    certificate, and both the old CA and the bundle verify its server certificate. (The old
    `relay_ca` is kept whole: after a rotation cut short it may be a bundle whose older CA signed
    the server certificate still in use.) Audited here."""
    old = relay_fingerprint(node.relay_cert)
    with transaction.atomic():
        # Unplaceable until the relay answers with the new credentials (node_prepare sets it again).
        Node.objects.filter(pk=node.pk).update(
            relay_ca=minted["relay_ca"] + node.relay_ca,  # PEMs end with a newline
            relay_cert=minted["relay_cert"],
            relay_key=minted["relay_key"],
            relay_image="",
        )
        new = relay_fingerprint(minted["relay_cert"])
        record("node.relay_rotated", target=node, changes={"client_certificate": {"old": old, "new": new}})
    forget_node_driver(node.pk)  # this process's driver holds the old client context
    return node_prepare(node=Node.objects.get(pk=node.pk))


def node_relay_switch(*, node: Node, minted: dict[str, str]) -> PreparedNode:
    """Rotation's last step: the new CA alone and the new server certificate, the relay reloaded (or
    replaced) with them. A process that still has the overlap's row verifies the new server certificate (its
    bundle holds the new CA) and its client certificate is the new one."""
    Node.objects.filter(pk=node.pk).update(
        relay_ca=minted["relay_ca"],
        relay_server_cert=minted["relay_server_cert"],
        relay_server_key=minted["relay_server_key"],
        relay_image="",
    )
    forget_node_driver(node.pk)
    return node_prepare(node=Node.objects.get(pk=node.pk))


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


def _relay_answers(node: Node, *, seconds: float = RELAY_ANSWER_SECONDS) -> None:
    """The relay answers over mutual TLS: a CONNECT to an address it must refuse (loopback) is
    refused by the relay itself (403), which proves the handshake both ways and the relay's
    reading; nothing is opened. Waits up to `seconds` for a relay just started (or reloaded: the
    row's credentials get in only once it has read its new files)."""
    connection = node.connection()
    context = relay_client.node_context(connection)
    where = (_relay_host(node), node.relay_port)
    deadline = time.monotonic() + seconds
    while True:
        try:
            relay_client.tunnel(where, ("127.0.0.1", DAEMON_PORT), context=context, timeout=5).close()
        except relay_client.RelayRefused as exc:
            if exc.status == 403:
                return
            failure = f"{exc.status} {exc.message}"
        except OSError as exc:
            failure = f"{type(exc).__name__}: {exc}"
        else:
            failure = "it opened a tunnel to loopback"
        if time.monotonic() > deadline:
            raise errors.RuntimeFailure(
                f"The relay of node {node.name!r} does not answer at {where[0]}:{where[1]}: {failure}"[:500],
                details={"reason": "relay_unavailable", "node": node.name},
            )
        time.sleep(0.2)
