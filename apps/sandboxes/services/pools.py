"""Warm pools: started, hardened, unassigned containers per template, taken by creates.

- A pooled container is made exactly like a sandbox's (same spec, same hardening) with the
  label `vibebox.pool=<template>` and an empty owner; its row (`PooledContainer`) is written
  before the container exists, and its id becomes the id of the sandbox that takes it, so
  container and volume names never change.
- A pool is keyed by template and resources (cpu, memory): every template in
  VIBEBOX_POOL_SIZES gets a pool with the default resources, operators add others in the admin.
  A create that matches a pool (template, cpu, memory, started, no disk limit) takes the oldest
  ready container with one conditional delete in the create's transaction: no container start
  on the request path. Ownership lives in the database; the pool label stays on the container.
- Refilled right after each take (a background thread of the process that took) and every
  VIBEBOX_POOL_INTERVAL by Celery beat (`maintain_pools`), which also health-checks pooled
  containers (a no-op exec) and replaces bad ones, and removes containers of outdated images.
- The target size follows demand: the number of creates of the template in the last
  VIBEBOX_POOL_DEMAND_WINDOW, kept between the pool's min and max sizes.
- Per engine (docs/nodes.md, "Per-node warm pools"): a pool's size applies on each placeable
  engine, the local one and every `placement.placeable` node (unless VIBEBOX_POOL_NODES is off),
  each with its own demand (the creates placed there). A node's pooled containers are made through
  its driver as its sandboxes are (its sandbox network, sandboxd from its volume, health checks
  through its relay), and a create takes only from the pool of the engine placement picked. A
  node that is not placeable (down, draining, not prepared) gets no fill: its rows are dropped
  (its containers removed when it answers; a down node is not asked, reconcile removes them when
  it returns, as no row knows them any more).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from apps.marketplace.models import Template
from vibebox import exceptions as errors
from vibebox import metrics, tracing
from vibebox.units import format_size

from ..models import Node, PooledContainer, Sandbox, WarmPool
from ..runtime import ExecRequest, get_driver
from ..specs import base_labels, container_spec, network_name
from .placement import engine_images, placeable

logger = logging.getLogger(__name__)
HEALTH_TIMEOUT = 10
HEALTH_ID = "pool-health"


def pool_labels(container_id: str, template: Template) -> dict[str, str]:
    return {
        **base_labels(),
        "vibebox.sandbox-id": container_id,
        "vibebox.owner": "",
        "vibebox.template": template.name,
        "vibebox.pool": template.name,
    }


def pool_get(template: Template) -> WarmPool | None:
    """The template's pool with the default resources; created from VIBEBOX_POOL_SIZES the first
    time it is asked for."""
    defaults = {"cpu": settings.VIBEBOX_DEFAULT_CPU, "memory": settings.VIBEBOX_DEFAULT_MEMORY}
    pool = WarmPool.objects.filter(template=template, **defaults).first()
    # VIBEBOX_POOL_SIZES may name the template or one of its aliases (python-3 is python-3.13's).
    configured = next((n for n in [template.name, *(template.aliases or [])] if n in settings.VIBEBOX_POOL_SIZES), None)
    if pool is None and configured is not None:
        size = settings.VIBEBOX_POOL_SIZES[configured]
        pool, _ = WarmPool.objects.get_or_create(
            template=template,
            **defaults,
            defaults={"min_size": size, "target_size": size, "max_size": max(size, settings.VIBEBOX_POOL_MAX_SIZE)},
        )
    return pool


def pool_label(pool: WarmPool) -> str:
    """The template's name, plus the resources when they are not the defaults."""
    if pool.cpu == settings.VIBEBOX_DEFAULT_CPU and pool.memory == settings.VIBEBOX_DEFAULT_MEMORY:
        return pool.template.name
    return f"{pool.template.name}:{pool.cpu:g}cpu:{format_size(pool.memory)}"


def poolable(*, auto_start: bool, disk: int | None) -> bool:
    """Pooled containers are running and have no disk limit."""
    return settings.VIBEBOX_POOL_ENABLED and auto_start and not disk


def pool_for(template: Template, *, cpu: float, memory: int) -> WarmPool | None:
    pools = WarmPool.objects.select_related("template")
    return pools.filter(template=template, cpu=cpu, memory=memory, enabled=True).first()


def _engine_name(node: Node | None) -> str:
    return node.name if node is not None else "local"


@tracing.traced("pool.claim")
def pool_claim(pool: WarmPool | None, *, image: str = "", node: Node | None = None) -> PooledContainer | None:
    """Takes the oldest ready container of `image` (the image the create resolved: a bare name's
    newest version, a pin's version; default the pool's current image) on the engine placement
    picked (`node`, None: the local engine), never one of another image or engine (call inside the
    create's transaction). Counts a hit or a miss."""
    if pool is None:
        return None
    template = pool.template
    ready = PooledContainer.objects.filter(
        pool=pool, node=node, status=PooledContainer.Status.READY, image=image or template.image
    )
    # Creates compete for the oldest container: on PostgreSQL each locks the row it takes and the
    # others skip locked rows, so a concurrent create takes the next container at once instead of
    # waiting for the first create's transaction to end (and then finding its row gone). SQLite
    # ignores the lock: its IMMEDIATE transactions already run one create at a time.
    candidate = ready.order_by("ready_at").select_for_update(skip_locked=True).first()
    # Conditional all the same: a row locked by us cannot change under us, but a backend without
    # row locks has only this to stop two creates taking one container.
    if (
        candidate is not None
        and (PooledContainer.objects.filter(pk=candidate.pk, status=PooledContainer.Status.READY).delete()[0])
    ):
        transaction.on_commit(lambda: _count(pool, hit=True))
        return candidate
    transaction.on_commit(lambda: _count(pool, hit=False))
    return None


def _count(pool: WarmPool, *, hit: bool) -> None:
    """A claim's hit or miss, counted once its create commits: outside the create's transaction,
    where the pool row's lock would make every concurrent create wait for this one."""
    field = "hits" if hit else "misses"
    WarmPool.objects.filter(pk=pool.pk).update(**{field: F(field) + 1})
    (metrics.POOL_HITS if hit else metrics.POOL_MISSES).labels(pool.template.name).inc()


def _target(pool: WarmPool, now, node: Node | None = None) -> int:
    """The pool's target on one engine: the creates placed there in the demand window, between
    the pool's min and max (each engine follows its own demand)."""
    window = now - timezone.timedelta(seconds=settings.VIBEBOX_POOL_DEMAND_WINDOW)
    demand = Sandbox.objects.filter(
        template_id=pool.template_id, cpu=pool.cpu, memory=pool.memory, created_at__gte=window, node=node
    ).count()
    return max(pool.min_size, min(pool.max_size, demand))


def _reserve(pool: WarmPool, template: Template, node: Node | None = None) -> list[PooledContainer]:
    """Writes the rows of the containers the pool is missing on one engine (intent first), under a
    row lock. `target_size` records the local engine's target."""
    with transaction.atomic():
        locked = WarmPool.objects.select_for_update().get(pk=pool.pk)
        target = _target(locked, timezone.now(), node)
        if node is None and target != locked.target_size:
            WarmPool.objects.filter(pk=pool.pk).update(target_size=target)
        have = PooledContainer.objects.filter(pool=pool, node=node, image=template.image).count()
        return [
            PooledContainer.objects.create(pool=pool, node=node, image=template.image)
            for _ in range(max(0, target - have))
        ]


def _start_one(row: PooledContainer, pool: WarmPool) -> bool:
    template = pool.template
    driver = get_driver(row.node)
    started = time.monotonic()
    spec = container_spec(
        name=row.id,
        template=template,
        image=row.image,
        labels=pool_labels(row.id, template),
        cpu=pool.cpu,
        memory=pool.memory,
        disk=None,
    )
    try:
        driver.ensure_network(network_name(), base_labels())
        driver.create(spec)
        info = driver.start(row.id)
        _health_check(row.id, row.node)
    except BaseException as exc:
        _discard(row)
        if not isinstance(exc, errors.ApplicationError):
            raise
        logger.warning(
            "warm pool %s: could not start a container on %s: %s", template.name, _engine_name(row.node), exc.message
        )
        return False
    ready_ms = int((time.monotonic() - started) * 1000)
    updated = PooledContainer.objects.filter(pk=row.pk, status=PooledContainer.Status.CREATING).update(
        status=PooledContainer.Status.READY, container_id=info.id, ready_at=timezone.now(), ready_ms=ready_ms
    )
    if not updated:  # drained meanwhile
        _remove_container(row.id, row.node)
        return False
    WarmPool.objects.filter(pk=row.pool_id).update(last_ready_ms=ready_ms)
    return True


def _health_check(name: str, node: Node | None = None) -> None:
    request = ExecRequest(argv=("true",), exec_id=HEALTH_ID, timeout=HEALTH_TIMEOUT, output_limit=1024)
    result = get_driver(node).exec(name, request)  # a node's: through its relay
    if result.exit_code != 0:
        raise errors.RuntimeFailure(f"health check exited {result.exit_code}")


def _remove_container(name: str, node: Node | None = None) -> None:
    try:
        get_driver(node).remove(name, volume=f"{name}-workspace")
    except errors.ApplicationError as exc:  # reconciliation removes it later by label
        logger.warning("could not remove pooled container %s on %s: %s", name, _engine_name(node), exc.message)


def _discard(row: PooledContainer) -> None:
    _remove_container(row.id, row.node)
    PooledContainer.objects.filter(pk=row.pk).delete()


def pool_fill(pool: WarmPool | None, *, node: Node | None = None) -> int:
    """Brings a pool up to its target on one engine (`node`, None: the local engine); answers
    how many containers were started."""
    if pool is None or not pool.enabled or not settings.VIBEBOX_POOL_ENABLED:
        return 0
    if node is not None and not (settings.VIBEBOX_POOL_NODES and placeable(node)):
        return 0  # drained, down or unprepared meanwhile: pools_maintain drops its rows
    if node is not None and pool.template.image not in (engine_images(node) or ()):
        return 0  # the image is not there yet (the node sync ships it): nothing to start from
    return sum(_start_one(row, pool) for row in _reserve(pool, pool.template, node))


def pool_check(pool: WarmPool | None, *, node: Node | None = None) -> int:
    """Removes one engine's pooled containers of outdated images, those stuck in `creating`
    (their maker died) and those failing a health check; answers how many failed (pool_fill
    replaces them)."""
    if pool is None:
        return 0
    template = pool.template
    bad = 0
    stuck = timezone.now() - timezone.timedelta(seconds=settings.VIBEBOX_STUCK_AFTER)
    mine = PooledContainer.objects.filter(pool=pool, node=node).select_related("node")
    stale = mine.exclude(image=template.image)
    stale |= mine.filter(status=PooledContainer.Status.CREATING, created_at__lt=stuck)
    for row in stale:
        _discard(row)
    for row in mine.filter(status=PooledContainer.Status.READY):
        try:
            _health_check(row.id, node)
        except errors.ApplicationError as exc:
            logger.warning("warm pool %s: %s failed its health check: %s", template.name, row.id, exc.message)
            if PooledContainer.objects.filter(pk=row.pk, status=PooledContainer.Status.READY).delete()[0]:
                _remove_container(row.id, node)
                bad += 1
    if bad:
        WarmPool.objects.filter(pk=pool.pk).update(replaced=F("replaced") + bad)
    return bad


def pool_drain(pool: WarmPool | None = None, *, node: Node | None = None, ask: bool = True) -> int:
    """Removes every pooled container (of one pool, or all; of every engine, or of `node` alone);
    answers how many rows went. `ask=False`: rows only, the engine is not asked (a down node:
    reconcile removes the containers when it returns, since no row knows them any more)."""
    rows = PooledContainer.objects.select_related("node")
    if pool is not None:
        rows = rows.filter(pool=pool)
    if node is not None:
        rows = rows.filter(node=node)
    count = 0
    for row in list(rows):
        if PooledContainer.objects.filter(pk=row.pk).delete()[0]:
            # A down node's containers are not asked for (a removal would wait on its timeout).
            if ask and (row.node is None or row.node.state != Node.State.DOWN):
                _remove_container(row.id, row.node)
            count += 1
    return count


def pool_engines() -> tuple[list[Node | None], list[Node]]:
    """(The engines pools are kept on: the local one and every placeable node, unless
    VIBEBOX_POOL_NODES is off; the other nodes, whose pooled containers are dropped.)"""
    nodes = list(Node.objects.all())
    keep = [n for n in nodes if placeable(n)] if settings.VIBEBOX_POOL_NODES else []
    return [None, *keep], [n for n in nodes if n not in keep]


def pools_maintain() -> dict[str, dict[str, int]]:
    """One pass over every pool on every placeable engine: health check, then refill (disabled
    pools are drained). A node that is not placeable has its pooled rows dropped (the containers
    removed if it answers; a down node's by reconcile when it returns). The report is keyed by
    pool, and by `pool@node` for a node's."""
    for template in Template.objects.filter(is_active=True).exclude(image=""):  # built ones
        pool_get(template)  # the default pools of VIBEBOX_POOL_SIZES exist
    engines, others = pool_engines()
    report = {}
    for node in others:
        dropped = pool_drain(node=node, ask=node.state != Node.State.DOWN)
        if dropped:
            report[f"@{node.name}"] = {"dropped": dropped}
    for pool in WarmPool.objects.select_related("template").order_by("template__name", "cpu", "memory"):
        if not pool.template.image:  # its first image is still building
            continue
        if not pool.enabled or not settings.VIBEBOX_POOL_ENABLED or not pool.template.is_active:
            report[pool_label(pool)] = {"drained": pool_drain(pool)}
            continue
        for node in engines:
            key = pool_label(pool) + (f"@{node.name}" if node is not None else "")
            try:
                report[key] = {"replaced": pool_check(pool, node=node), "started": pool_fill(pool, node=node)}
            except errors.ApplicationError as exc:  # one engine's trouble never stops the others'
                logger.warning("warm pool %s: %s", key, exc.message)
                report[key] = {"failed": 1}
    return report


_filling: set[tuple[int, int | None]] = set()
_filling_lock = threading.Lock()


def refill_soon(pool: WarmPool | None, node: Node | None = None) -> None:
    """Refills the pool on one engine (`node`, None: the local one) in a background thread of
    this process (one at a time per pool and engine)."""
    if pool is None or not settings.VIBEBOX_POOL_REFILL_AFTER_TAKE:
        return
    key = (pool.pk, node.pk if node is not None else None)
    with _filling_lock:
        if key in _filling:
            return
        _filling.add(key)

    def run() -> None:
        try:
            pool_fill(pool, node=node)
        except Exception:  # a failed refill is retried by the next maintain_pools
            logger.exception("warm pool %s: refill on %s failed", pool_label(pool), _engine_name(node))
        finally:
            with _filling_lock:
                _filling.discard(key)
            connections.close_all()  # this thread ends: its connections with it

    threading.Thread(target=run, daemon=True, name=f"pool-refill-{pool.pk}").start()


@dataclass(frozen=True)
class EnginePoolStats:
    """One pool on one engine (`engine`: a node's name, or `local`)."""

    engine: str
    size: int  # ready containers there
    creating: int


@dataclass(frozen=True)
class PoolStats:
    template: str
    cpu: float
    memory: int  # bytes
    enabled: bool  # and pools are on (VIBEBOX_POOL_ENABLED)
    size: int  # ready containers
    creating: int
    target_size: int
    min_size: int
    max_size: int
    hits: int
    misses: int
    hit_rate: float | None  # of the creates that asked the pool; None before any
    replaced: int  # containers replaced after failed health checks
    last_ready_ms: int | None
    # Per engine: the local one and every engine pools are kept on (pool_engines), then any other
    # engine that still has rows; `size` and `creating` above are their sums.
    engines: tuple[EnginePoolStats, ...] = ()


def pool_stats() -> list[PoolStats]:
    """Per pool: sizes (in all and per engine), hits, misses, replacements and time-to-ready (for
    GET /api/v1/pools)."""
    pools = WarmPool.objects.select_related("template").annotate(
        ready=Count("containers", filter=Q(containers__status=PooledContainer.Status.READY)),
        creating=Count("containers", filter=Q(containers__status=PooledContainer.Status.CREATING)),
    )
    kept = [_engine_name(node) for node in pool_engines()[0]]
    counts: dict[int, dict[str, dict[str, int]]] = {}  # pool pk -> engine -> status -> containers
    rows = PooledContainer.objects.order_by().values("pool_id", "node__name", "status").annotate(n=Count("id"))
    for row in rows:
        engine = counts.setdefault(row["pool_id"], {}).setdefault(row["node__name"] or "local", {})
        engine[row["status"]] = row["n"]
    stats = []
    for pool in pools.order_by("template__name", "cpu", "memory"):
        mine = counts.get(pool.pk, {})
        engines = tuple(
            EnginePoolStats(
                engine=name,
                size=mine.get(name, {}).get(PooledContainer.Status.READY, 0),
                creating=mine.get(name, {}).get(PooledContainer.Status.CREATING, 0),
            )
            for name in [*kept, *sorted(set(mine) - set(kept))]
        )
        taken = pool.hits + pool.misses
        stats.append(
            PoolStats(
                template=pool.template.name,
                cpu=pool.cpu,
                memory=pool.memory,
                enabled=pool.enabled and settings.VIBEBOX_POOL_ENABLED,
                size=pool.ready,
                creating=pool.creating,
                target_size=pool.target_size,
                min_size=pool.min_size,
                max_size=pool.max_size,
                hits=pool.hits,
                misses=pool.misses,
                hit_rate=round(pool.hits / taken, 3) if taken else None,
                replaced=pool.replaced,
                last_ready_ms=pool.last_ready_ms,
                engines=engines,
            )
        )
    return stats
