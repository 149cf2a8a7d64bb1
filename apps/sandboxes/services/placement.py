"""Placement (docs/nodes.md, "Placement"): the engine a new sandbox goes to, chosen once, while its
row is written in `creating` state (intent first: a retry goes to the same node).

Two steps, so that no engine is called while the create's transaction holds its locks:
- `placement_candidates` (before the transaction): the engines that may take the sandbox. With no
  node registered it is one query and nothing else: every create goes to the local engine, as it
  always did, and nothing is counted. Otherwise the local engine (its memory read once per
  process) and every placeable node (for a sandbox with a disk size, one whose engine enforces
  it), kept if their engine has the image (each engine's list of
  template images is kept VIBEBOX_NODE_IMAGES_TTL per process; a node whose listing fails is
  skipped). If none has it, the local engine (where images are built).
  A create's node labels (its `nodeLabels` merged with its template's, its organization's and its
  snapshot's: sandbox_create) keep only the engines that have them all (the local engine's:
  VIBEBOX_LOCAL_NODE_LABELS); none has them at all: 400 no_matching_node. The sandbox keeps them
  (`Sandbox.node_labels`), and its snapshots too: a restore elsewhere checks them (engine_has).
- `node_pick` (inside the transaction, before the row's insert): of the candidates with room for
  the sandbox's memory and CPUs, the one with the most free memory, counted from the database in
  one aggregate query: the engine's memory, minus the memory limits of its sandboxes that hold
  memory, minus VIBEBOX_NODE_MEMORY_RESERVE; its CPUs times VIBEBOX_NODE_CPU_OVERCOMMIT minus the
  CPUs those sandboxes ask for. Ties go to the fewest sandboxes, then to the name (the local
  engine is `local`). The chosen node's row is locked
  (`select_for_update`; the local engine, which has no row, an advisory lock on PostgreSQL) and its
  use counted again before it is answered. No candidate with room: 503 no_capacity.

Constraints until later steps of phase 2 exist:
- a create from a snapshot goes to the snapshot's engine when it has room (its image is there),
  else to another, the image shipped there by the create (services/shipping.py); never while the
  snapshot's node is down (its image cannot be read);
- a sandbox whose egress policy needs rules of its own (apps.orgs.network.restricted) goes to the
  local engine or a node whose relay's firewall agent has iptables (its rules are written there
  through the relay); one whose policy goes through the egress proxy only where that proxy is
  reachable (services.network.node_proxy_reachable);

Warm pools are per engine (services/pools.py): the create takes from the picked engine's pool
only, after the pick. Pooled containers are not counted in an engine's free memory.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, Sum

from apps.orgs.network import proxied, restricted
from vibebox import exceptions as errors

from .. import sandboxd
from ..models import Node, Sandbox, Status
from ..runtime import get_driver, node_driver
from . import network

logger = logging.getLogger(__name__)

LOCAL = "local"  # the local engine's name in placement (services.nodes.LOCAL_NODE)
# A sandbox in these states holds its memory limit on its engine (a stopped one holds none).
# (An unreachable one still runs there, and a stopping one until it has stopped.)
HOLDING = (Status.CREATING, Status.STARTING, Status.RUNNING, Status.PAUSED, Status.STOPPING, Status.UNREACHABLE)
# The images placement looks for: template images (built-in and marketplace), as built here.
IMAGE_LABELS = {"vibebox.managed-image": "1"}

_lock = threading.Lock()
_local_engine: tuple[int, int] | None = None  # the local engine's (MemTotal, CPUs), read once per process
_images: dict[int | None, tuple[float, frozenset[str] | None]] = {}  # node pk (None: local) -> (when, tags)


def placeable(node: Node) -> bool:
    """Whether a node may take new sandboxes. The one place that says so: healthy, and prepared
    with the current relay (node_prepare recorded its relay's image once the relay answered:
    sandboxd there is reachable and its sandbox network isolated through it). A node whose relay
    is from an older image (another sandboxd source) lacks what came since (back links, preview
    port ranges): not placeable until prepared again, which its next health check sends
    (services/nodes.py, node_check). No engine call: the current image's tag comes from the source."""
    current = sandboxd.relay_current()  # kept per process
    return node.state == Node.State.HEALTHY and bool(node.relay_image) and node.relay_image == current


def _matches(have, wanted: dict[str, str]) -> bool:
    """Whether an engine's labels (a node's row, VIBEBOX_LOCAL_NODE_LABELS) hold every wanted one."""
    return isinstance(have, dict) and all(have.get(key) == value for key, value in wanted.items())


def engine_has(node: Node | None, labels: dict[str, str]) -> bool:
    """Whether the engine (a node, None: the local engine) has every one of the labels."""
    return _matches(node.labels if node is not None else settings.VIBEBOX_LOCAL_NODE_LABELS, labels)


def require_labels(node: Node | None, labels: dict[str, str] | None) -> None:
    """400 no_matching_node when the engine a sandbox is bound to (a restore's: the sandbox's) has
    not every one of the labels (a snapshot's: it runs only where they are)."""
    if labels and not engine_has(node, labels):
        raise _no_match(labels, "bound")


@dataclass(frozen=True)
class Candidate:
    node: Node | None  # None: the local engine
    memory: int  # bytes, the engine's MemTotal
    cpus: int = 0  # the engine's CPUs (0: not known, not counted)

    @property
    def name(self) -> str:
        return self.node.name if self.node is not None else LOCAL


@dataclass(frozen=True)
class Candidates:
    """What placement_candidates found; `anywhere`: no node is registered (the local engine,
    nothing counted). `why`: what narrowed the candidates (named in a no_capacity error)."""

    engines: tuple[Candidate, ...] = ()
    anywhere: bool = False
    why: str = ""
    # A snapshot's create: its engine's key (node pk, None: local), taken first when it has room;
    # the other engines then get the snapshot's image shipped (services/shipping.py).
    home: tuple[int | None, ...] = ()


def placement_caches_clear() -> None:
    """Forgets the engines' memory and image lists (tests; an operator's change is seen after the TTL)."""
    global _local_engine
    with _lock:
        _local_engine = None
        _images.clear()


def _local() -> Candidate:
    """The local engine as a candidate (its memory and CPUs read once per process)."""
    global _local_engine
    if _local_engine is None:
        engine = get_driver().node_engine()
        with _lock:
            _local_engine = (engine.memory, engine.cpus)
    return Candidate(node=None, memory=_local_engine[0], cpus=_local_engine[1])


def _of(node: Node) -> Candidate:
    return Candidate(node=node, memory=node.memory, cpus=node.cpus)


def engine_images(node: Node | None) -> frozenset[str] | None:
    """The template images (tags) on the node's engine (None: the local engine), kept for
    VIBEBOX_NODE_IMAGES_TTL; None when the engine could not list them within
    VIBEBOX_NODE_CHECK_TIMEOUT (kept as long, so a node that is away costs one failed call per TTL,
    not one per create)."""
    key = node.pk if node is not None else None
    now = time.monotonic()
    cached = _images.get(key)
    if cached is not None and now - cached[0] < settings.VIBEBOX_NODE_IMAGES_TTL:
        return cached[1]
    try:
        if node is None:
            tags = frozenset(image.tag for image in get_driver().list_images(IMAGE_LABELS))
        else:  # with the health check's short timeout: a node that is away must not hold a create long
            driver = node_driver(node.connection(), timeout=settings.VIBEBOX_NODE_CHECK_TIMEOUT)
            try:
                tags = frozenset(image.tag for image in driver.list_images(IMAGE_LABELS))
            finally:
                driver.close()
    except errors.ApplicationError as exc:
        logger.warning("placement: could not list the images of %s: %s", node.name if node else LOCAL, exc.message)
        tags = None
    with _lock:
        _images[key] = (now, tags)
    return tags


def _enforces_disk(node: Node) -> bool:
    """Whether the node's engine enforces a container's disk size (its driver keeps the answer a
    few minutes: runtime/docker.py engine_info); a node that cannot say is skipped."""
    try:
        return get_driver(node).engine_info().supports_disk_limit
    except errors.ApplicationError as exc:
        logger.warning("placement: could not look at node %s: %s", node.name, exc.message)
        return False


def _enforces_egress(node: Node, policy: dict) -> bool:
    """Whether a restricted egress policy can be enforced on the node: its relay's firewall agent
    has iptables (asked through the relay, kept a few minutes by its runner) and, for a policy
    that goes through the egress proxy, the node's sandboxes can reach that proxy."""
    if proxied(policy) and not network.node_proxy_reachable():
        return False
    return get_driver(node).egress_available()


def placement_candidates(
    *,
    image: str,
    snapshot=None,
    policy: dict | None = None,
    disk: int | None = None,
    labels: dict[str, str] | None = None,
) -> Candidates:
    """The engines that may take a new sandbox of `image` (before the create's transaction: it
    may call engines). `snapshot`: a create from it goes to its node; `policy`: the sandbox's
    effective egress policy (one that needs rules of its own goes where they can be enforced);
    `disk`: its disk size, which only an engine that enforces one may take (the local engine's
    support was checked by the create); `labels` (a create's merged node labels: sandbox_create): only an engine
    that has every one of them (the local engine's: VIBEBOX_LOCAL_NODE_LABELS). 400
    no_matching_node when no engine has them, whatever its state, or when the rule that binds the
    create (its snapshot's engine, the local engine for a restricted policy) names one without them."""
    nodes = registered = list(Node.objects.all())  # no rows: the fast path, this query only
    local_ok = not labels or _matches(settings.VIBEBOX_LOCAL_NODE_LABELS, labels)
    if labels and not local_ok and not any(_matches(n.labels, labels) for n in nodes):
        raise _no_match(labels, "")
    if not nodes:
        return Candidates(anywhere=True)
    if labels:
        nodes = [n for n in nodes if _matches(n.labels, labels)]
    nodes = [n for n in nodes if placeable(n) and (not disk or _enforces_disk(n))]
    if policy is not None and restricted(policy):  # a sandbox's own rules: nodes whose firewall can hold them
        nodes = [n for n in nodes if _enforces_egress(n, policy)]
        if snapshot is not None and snapshot.node_id is not None and all(n.pk != snapshot.node_id for n in nodes):
            raise errors.EgressUnavailable(
                "This restricted egress policy cannot be enforced on the engine the snapshot is on."
            )
        if not nodes:
            if not local_ok:
                raise _no_match(labels, "egress")
            return Candidates(engines=(_local(),), why="egress")
    if snapshot is not None:
        # Its image is on its engine: that one first; any other (with the labels) when it is full
        # or not placeable but answers (draining), the image then shipped there from it
        # (sandbox_create). A down engine's image cannot be read: its create waits for it.
        others = [*([_local()] if local_ok else []), *(_of(n) for n in nodes)]
        home = [e for e in others if _key(e) == snapshot.node_id]
        if any(n.pk == snapshot.node_id and n.state == Node.State.DOWN for n in registered):
            others = []
        rest = [e for e in others if _key(e) != snapshot.node_id]
        return Candidates(engines=(*home, *rest), why="snapshot", home=(snapshot.node_id,) if home else ())
    if not local_ok and not nodes:  # the engines with the labels take nothing now: 503 no_capacity
        return Candidates(engines=(), why="labels")
    engines = [*([_local()] if local_ok else []), *(_of(n) for n in nodes)]
    having = []
    for engine in engines:
        tags = engine_images(engine.node)
        if (tags is None and engine.node is None) or (tags is not None and image in tags):
            having.append(engine)  # the local engine whose listing failed: its own error comes at create
    if not having:  # nowhere yet: the local engine, where images are built (never wait for a transfer)
        if not local_ok:  # the labelled nodes get it from the next sync: 503 no_capacity meanwhile
            return Candidates(engines=(), why="image")
        return Candidates(engines=(_local(),), why="image")
    return Candidates(engines=tuple(having), why="labels" if labels else "")


def _no_match(labels: dict[str, str], why: str) -> errors.ApplicationError:
    """400 no_matching_node; a tenant is told which rule bound the create, never a node."""
    because = {
        "egress": " (a sandbox with a restricted egress policy runs only where it can be enforced: no engine with "
        "these labels can)",
        "bound": " (the engine this sandbox runs on has not them)",
    }.get(why, "")
    return errors.NoMatchingNode(
        f"No engine of this server has the node labels {labels}{because}.", details={"nodeLabels": labels}
    )


def _use(engines: tuple[Candidate, ...]) -> dict[int | None, tuple[int, int, float]]:
    """node pk (None: local) -> (memory limits held, sandboxes holding it, CPUs they ask for): one
    aggregate query."""
    where = Q(node_id__in=[e.node.pk for e in engines if e.node is not None])
    if any(e.node is None for e in engines):
        where |= Q(node__isnull=True)
    rows = (
        Sandbox.objects.filter(where, status__in=HOLDING)
        .order_by()
        .values("node_id")
        .annotate(used=Sum("memory"), count=Count("id"), cpu=Sum("cpu"))
    )
    return {row["node_id"]: (int(row["used"] or 0), row["count"], float(row["cpu"] or 0)) for row in rows}


def _free(engine: Candidate, used: int) -> int:
    return engine.memory - used - int(engine.memory * settings.VIBEBOX_NODE_MEMORY_RESERVE)


def _free_cpu(engine: Candidate, used: float) -> float:
    """The CPUs the engine's sandboxes may still ask for (an engine whose CPUs are not known: no limit)."""
    if not engine.cpus:
        return float("inf")
    return engine.cpus * settings.VIBEBOX_NODE_CPU_OVERCOMMIT - used


def _lock_engines(engines: tuple[Candidate, ...]) -> list[Candidate]:
    """The engines locked for the rest of the transaction, always in one order (the local engine's
    advisory lock, then the node rows by pk, in one query): two creates never each hold a lock the
    other waits for (PostgreSQL would abort one of them). Each node as its row is now; one no
    longer placeable (drained or down meanwhile) is left out."""
    locked = []
    if any(e.node is None for e in engines):
        if connection.vendor == "postgresql":  # no row to lock; SQLite runs one write transaction at a time
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["vibebox.placement:local"])
        locked.append(next(e for e in engines if e.node is None))
    wanted = [e.node.pk for e in engines if e.node is not None]
    if wanted:
        rows = Node.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
        locked += [_of(node) for node in rows if placeable(node)]
    return locked


def _key(engine: Candidate) -> int | None:
    return engine.node.pk if engine.node is not None else None


def node_pick(candidates: Candidates, *, memory: int, cpu: float = 0.0) -> Node | None:
    """The node a new sandbox with a `memory` limit and `cpu` CPUs goes to (None: the local
    engine); call inside the transaction that writes its row. 503 no_capacity when no candidate
    has room for both."""
    if candidates.anywhere:
        return None
    engines = _lock_engines(candidates.engines)  # then counted once, under the locks
    use = _use(tuple(engines)) if engines else {}
    held = {e.name: use.get(_key(e), (0, 0, 0.0)) for e in engines}
    free = {e.name: _free(e, held[e.name][0]) for e in engines}
    free_cpu = {e.name: _free_cpu(e, held[e.name][2]) for e in engines}
    # Of those with room for both, the most free memory first; ties: fewest sandboxes, then the name.
    fitting = [e for e in engines if free[e.name] >= memory and free_cpu[e.name] >= cpu]
    # A snapshot's own engine first (its image is there); the others rank as usual.
    ranked = sorted(fitting, key=lambda e: (_key(e) not in candidates.home, -free[e.name], held[e.name][1], e.name))
    if ranked:
        return ranked[0].node
    # The engines and their free memory go to the log, not to the caller (a tenant sees no node).
    logger.warning(
        "placement: no room for %d bytes and %s CPUs (%s): free %s, CPUs %s",
        memory,
        cpu,
        candidates.why or "any engine",
        free,
        free_cpu,
    )
    raise errors.NoCapacity(
        "No engine has room for this sandbox right now"
        + {
            "snapshot": " (a create from a snapshot runs where the snapshot is, or where its image can be shipped "
            "from there)",
            "egress": " (a sandbox with a restricted egress policy runs only where it can be enforced)",
            "labels": " (among the engines with the node labels asked for)",
            "image": " (the template's image is not yet on an engine with the node labels asked for)",
        }.get(candidates.why, "")
        + "; try again later, or ask for less memory or fewer CPUs.",
        details={"memory": memory, "cpu": cpu},
    )
