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
- `node_pick` (inside the transaction, before the row's insert): the candidate with the most free
  memory, counted from the database in one aggregate query: the engine's memory, minus the memory
  limits of its sandboxes that hold memory, minus VIBEBOX_NODE_MEMORY_RESERVE. Ties go to the
  fewest sandboxes, then to the name (the local engine is `local`). The chosen node's row is locked
  (`select_for_update`; the local engine, which has no row, an advisory lock on PostgreSQL) and its
  use counted again before it is answered. No candidate with room: 503 no_capacity.

Constraints until later steps of phase 2 exist:
- a create from a snapshot goes to the snapshot's node (its image is there; shipping it elsewhere
  at create is not built);
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
_local_memory: int | None = None  # the local engine's MemTotal, read once per process
_images: dict[int | None, tuple[float, frozenset[str] | None]] = {}  # node pk (None: local) -> (when, tags)


def placeable(node: Node) -> bool:
    """Whether a node may take new sandboxes. The one place that says so: healthy, and prepared
    (node_prepare recorded its relay's image once the relay answered: sandboxd there is reachable
    and its sandbox network isolated through it)."""
    return node.state == Node.State.HEALTHY and bool(node.relay_image)


@dataclass(frozen=True)
class Candidate:
    node: Node | None  # None: the local engine
    memory: int  # bytes, the engine's MemTotal

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


def placement_caches_clear() -> None:
    """Forgets the engines' memory and image lists (tests; an operator's change is seen after the TTL)."""
    global _local_memory
    with _lock:
        _local_memory = None
        _images.clear()


def _local_engine_memory() -> int:
    global _local_memory
    if _local_memory is None:
        memory = get_driver().node_engine().memory
        with _lock:
            _local_memory = memory
    return _local_memory


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
    *, image: str, snapshot=None, policy: dict | None = None, disk: int | None = None
) -> Candidates:
    """The engines that may take a new sandbox of `image` (before the create's transaction: it
    may call engines). `snapshot`: a create from it goes to its node; `policy`: the sandbox's
    effective egress policy (one that needs rules of its own goes where they can be enforced);
    `disk`: its disk size, which only an engine that enforces one may take (the local engine's
    support was checked by the create)."""
    nodes = list(Node.objects.all())  # no rows: the fast path, this query only
    if not nodes:
        return Candidates(anywhere=True)
    local = Candidate(node=None, memory=_local_engine_memory())
    nodes = [n for n in nodes if placeable(n) and (not disk or _enforces_disk(n))]
    if policy is not None and restricted(policy):  # a sandbox's own rules: nodes whose firewall can hold them
        nodes = [n for n in nodes if _enforces_egress(n, policy)]
        if snapshot is not None and snapshot.node_id is not None and all(n.pk != snapshot.node_id for n in nodes):
            raise errors.EgressUnavailable(
                "This restricted egress policy cannot be enforced on the engine the snapshot is on."
            )
        if not nodes:
            return Candidates(engines=(local,), why="egress")
    if snapshot is not None:
        # Its image is on its node only (shipping it at create is a later step).
        if snapshot.node_id is None:
            return Candidates(engines=(local,), why="snapshot")
        engines = tuple(Candidate(node=n, memory=n.memory) for n in nodes if n.pk == snapshot.node_id)
        return Candidates(engines=engines, why="snapshot")
    engines = [local, *(Candidate(node=n, memory=n.memory) for n in nodes)]
    having = []
    for engine in engines:
        tags = engine_images(engine.node)
        if (tags is None and engine.node is None) or (tags is not None and image in tags):
            having.append(engine)  # the local engine whose listing failed: its own error comes at create
    if not having:  # nowhere yet: the local engine, where images are built (never wait for a transfer)
        return Candidates(engines=(local,), why="image")
    return Candidates(engines=tuple(having))


def _use(engines: tuple[Candidate, ...]) -> dict[int | None, tuple[int, int]]:
    """node pk (None: local) -> (memory limits held, sandboxes holding it): one aggregate query."""
    where = Q(node_id__in=[e.node.pk for e in engines if e.node is not None])
    if any(e.node is None for e in engines):
        where |= Q(node__isnull=True)
    rows = (
        Sandbox.objects.filter(where, status__in=HOLDING)
        .order_by()
        .values("node_id")
        .annotate(used=Sum("memory"), count=Count("id"))
    )
    return {row["node_id"]: (int(row["used"] or 0), row["count"]) for row in rows}


def _free(engine: Candidate, used: int) -> int:
    return engine.memory - used - int(engine.memory * settings.VIBEBOX_NODE_MEMORY_RESERVE)


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
        locked += [Candidate(node=node, memory=node.memory) for node in rows if placeable(node)]
    return locked


def _key(engine: Candidate) -> int | None:
    return engine.node.pk if engine.node is not None else None


def node_pick(candidates: Candidates, *, memory: int) -> Node | None:
    """The node a new sandbox with a `memory` limit goes to (None: the local engine); call inside
    the transaction that writes its row. 503 no_capacity when no candidate has room."""
    if candidates.anywhere:
        return None
    engines = _lock_engines(candidates.engines)  # then counted once, under the locks
    use = _use(tuple(engines)) if engines else {}
    free = {e.name: _free(e, use.get(_key(e), (0, 0))[0]) for e in engines}
    # Most free memory first; ties: fewest sandboxes, then the name.
    ranked = sorted(engines, key=lambda e: (-free[e.name], use.get(_key(e), (0, 0))[1], e.name))
    if ranked and free[ranked[0].name] >= memory:
        return ranked[0].node
    # The engines and their free memory go to the log, not to the caller (a tenant sees no node).
    logger.warning("placement: no room for %d bytes (%s): free %s", memory, candidates.why or "any engine", free)
    raise errors.NoCapacity(
        "No engine has room for this sandbox right now"
        + {
            "snapshot": " (a create from a snapshot runs where the snapshot is)",
            "egress": " (a sandbox with a restricted egress policy runs only where it can be enforced)",
        }.get(candidates.why, "")
        + "; try again later, or ask for less memory.",
        details={"memory": memory},
    )
