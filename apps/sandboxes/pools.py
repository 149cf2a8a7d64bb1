"""Warm pools: started, hardened, unassigned containers per template, taken by creates.

- A pooled container is made exactly like a sandbox's (same spec, same hardening) with the
  label `vibebox.pool=<template>` and an empty owner; its row (`PooledContainer`) is written
  before the container exists, and its id becomes the id of the sandbox that takes it, so
  container and volume names never change.
- A create that matches (template, default resources, started) takes the oldest ready container
  with one conditional delete in the create's transaction: no container start on the request
  path. Ownership lives in the database; the pool label stays on the container.
- Refilled right after each take (a background thread of the process that took) and every
  VIBEBOX_POOL_INTERVAL by Celery beat (`maintain_pools`), which also health-checks pooled
  containers (a no-op exec) and replaces bad ones, and removes containers of outdated images.
- The target size follows demand: the number of creates of the template in the last
  VIBEBOX_POOL_DEMAND_WINDOW, kept between the pool's min and max sizes.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from apps.marketplace.models import Template
from vibebox import exceptions as errors

from .models import PooledContainer, Sandbox, WarmPool
from .runtime import ExecRequest, get_driver
from .specs import base_labels, container_spec, network_name

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
    """The template's pool; created from VIBEBOX_POOL_SIZES the first time it is asked for."""
    pool = WarmPool.objects.filter(template=template).first()
    if pool is None and template.name in settings.VIBEBOX_POOL_SIZES:
        size = settings.VIBEBOX_POOL_SIZES[template.name]
        pool, _ = WarmPool.objects.get_or_create(
            template=template,
            defaults={"min_size": size, "target_size": size, "max_size": max(size, settings.VIBEBOX_POOL_MAX_SIZE)},
        )
    return pool


def poolable(*, auto_start: bool, cpu: float, memory: int, disk: int | None) -> bool:
    """Pooled containers have the default resources and are running."""
    return (
        settings.VIBEBOX_POOL_ENABLED
        and auto_start
        and not disk
        and cpu == settings.VIBEBOX_DEFAULT_CPU
        and memory == settings.VIBEBOX_DEFAULT_MEMORY
    )


def pool_claim(template: Template) -> PooledContainer | None:
    """Takes the oldest ready container of the template's current image (call inside the
    create's transaction). Counts a hit or a miss."""
    pool = WarmPool.objects.filter(template=template, enabled=True).only("pk").first()
    if pool is None:
        return None
    ready = PooledContainer.objects.filter(pool=pool, status=PooledContainer.Status.READY, image=template.image)
    for candidate in ready.order_by("ready_at")[:3]:
        # Conditional: of two creates racing for this container only one deletes the row.
        if PooledContainer.objects.filter(pk=candidate.pk, status=PooledContainer.Status.READY).delete()[0]:
            WarmPool.objects.filter(pk=pool.pk).update(hits=F("hits") + 1)
            return candidate
    WarmPool.objects.filter(pk=pool.pk).update(misses=F("misses") + 1)
    return None


def _target(pool: WarmPool, now) -> int:
    window = now - timezone.timedelta(seconds=settings.VIBEBOX_POOL_DEMAND_WINDOW)
    demand = Sandbox.objects.filter(template_id=pool.template_id, created_at__gte=window).count()
    return max(pool.min_size, min(pool.max_size, demand))


def _reserve(pool: WarmPool, template: Template) -> list[PooledContainer]:
    """Writes the rows of the containers the pool is missing (intent first), under a row lock."""
    with transaction.atomic():
        locked = WarmPool.objects.select_for_update().get(pk=pool.pk)
        target = _target(locked, timezone.now())
        if target != locked.target_size:
            WarmPool.objects.filter(pk=pool.pk).update(target_size=target)
        have = PooledContainer.objects.filter(pool=pool, image=template.image).count()
        return [PooledContainer.objects.create(pool=pool, image=template.image) for _ in range(max(0, target - have))]


def _start_one(row: PooledContainer, template: Template) -> bool:
    driver = get_driver()
    started = time.monotonic()
    spec = container_spec(
        name=row.id,
        template=template,
        image=row.image,
        labels=pool_labels(row.id, template),
        cpu=settings.VIBEBOX_DEFAULT_CPU,
        memory=settings.VIBEBOX_DEFAULT_MEMORY,
        disk=None,
    )
    try:
        driver.ensure_network(network_name(), base_labels())
        driver.create(spec)
        info = driver.start(row.id)
        _health_check(row.id)
    except BaseException as exc:
        _discard(row)
        if not isinstance(exc, errors.ApplicationError):
            raise
        logger.warning("warm pool %s: could not start a container: %s", template.name, exc.message)
        return False
    ready_ms = int((time.monotonic() - started) * 1000)
    updated = PooledContainer.objects.filter(pk=row.pk, status=PooledContainer.Status.CREATING).update(
        status=PooledContainer.Status.READY, container_id=info.id, ready_at=timezone.now(), ready_ms=ready_ms
    )
    if not updated:  # drained meanwhile
        _remove_container(row.id)
        return False
    WarmPool.objects.filter(pk=row.pool_id).update(last_ready_ms=ready_ms)
    return True


def _health_check(name: str) -> None:
    request = ExecRequest(argv=("true",), exec_id=HEALTH_ID, timeout=HEALTH_TIMEOUT, output_limit=1024)
    result = get_driver().exec(name, request)
    if result.exit_code != 0:
        raise errors.RuntimeFailure(f"health check exited {result.exit_code}")


def _remove_container(name: str) -> None:
    try:
        get_driver().remove(name, volume=f"{name}-workspace")
    except errors.ApplicationError as exc:  # reconciliation removes it later by label
        logger.warning("could not remove pooled container %s: %s", name, exc.message)


def _discard(row: PooledContainer) -> None:
    _remove_container(row.id)
    PooledContainer.objects.filter(pk=row.pk).delete()


def pool_fill(template: Template) -> int:
    """Brings the template's pool up to its target; answers how many containers were started."""
    pool = pool_get(template)
    if pool is None or not pool.enabled or not settings.VIBEBOX_POOL_ENABLED:
        return 0
    return sum(_start_one(row, template) for row in _reserve(pool, template))


def pool_check(template: Template) -> int:
    """Removes pooled containers of outdated images, those stuck in `creating` (their maker
    died) and those failing a health check; answers how many failed (pool_fill replaces them)."""
    pool = WarmPool.objects.filter(template=template).first()
    if pool is None:
        return 0
    bad = 0
    stuck = timezone.now() - timezone.timedelta(seconds=settings.VIBEBOX_STUCK_AFTER)
    stale = PooledContainer.objects.filter(pool=pool).exclude(image=template.image)
    stale |= PooledContainer.objects.filter(pool=pool, status=PooledContainer.Status.CREATING, created_at__lt=stuck)
    for row in stale:
        _discard(row)
    for row in PooledContainer.objects.filter(pool=pool, status=PooledContainer.Status.READY):
        try:
            _health_check(row.id)
        except errors.ApplicationError as exc:
            logger.warning("warm pool %s: %s failed its health check: %s", template.name, row.id, exc.message)
            if PooledContainer.objects.filter(pk=row.pk, status=PooledContainer.Status.READY).delete()[0]:
                _remove_container(row.id)
                bad += 1
    if bad:
        WarmPool.objects.filter(pk=pool.pk).update(replaced=F("replaced") + bad)
    return bad


def pool_drain(template: Template | None = None) -> int:
    """Removes every pooled container (of one template, or all); answers how many."""
    rows = (
        PooledContainer.objects.all() if template is None else PooledContainer.objects.filter(pool__template=template)
    )
    count = 0
    for row in list(rows):
        if PooledContainer.objects.filter(pk=row.pk).delete()[0]:
            _remove_container(row.id)
            count += 1
    return count


def pools_maintain() -> dict[str, dict[str, int]]:
    """One pass over every template: health check, then refill (disabled pools are drained)."""
    report = {}
    for template in Template.objects.filter(is_active=True):
        pool = pool_get(template)
        if pool is None:
            continue
        if not pool.enabled or not settings.VIBEBOX_POOL_ENABLED:
            report[template.name] = {"drained": pool_drain(template)}
            continue
        report[template.name] = {"replaced": pool_check(template), "started": pool_fill(template)}
    return report


_filling: set[str] = set()
_filling_lock = threading.Lock()


def refill_soon(template: Template) -> None:
    """Refills the pool in a background thread of this process (one at a time per template)."""
    if not settings.VIBEBOX_POOL_REFILL_AFTER_TAKE:
        return
    with _filling_lock:
        if template.name in _filling:
            return
        _filling.add(template.name)

    def run() -> None:
        try:
            pool_fill(template)
        except Exception:  # a failed refill is retried by the next maintain_pools
            logger.exception("warm pool %s: refill failed", template.name)
        finally:
            with _filling_lock:
                _filling.discard(template.name)
            close_old_connections()

    threading.Thread(target=run, daemon=True, name=f"pool-refill-{template.name}").start()


def pool_stats() -> list[dict]:
    """Per pool: sizes, hits, misses, replacements and time-to-ready (for GET /api/v1/pools)."""
    pools = WarmPool.objects.select_related("template").annotate(
        ready=Count("containers", filter=Q(containers__status=PooledContainer.Status.READY)),
        creating=Count("containers", filter=Q(containers__status=PooledContainer.Status.CREATING)),
    )
    stats = []
    for pool in pools.order_by("template__name"):
        taken = pool.hits + pool.misses
        stats.append(
            {
                "template": pool.template.name,
                "enabled": pool.enabled and settings.VIBEBOX_POOL_ENABLED,
                "size": pool.ready,
                "creating": pool.creating,
                "targetSize": pool.target_size,
                "minSize": pool.min_size,
                "maxSize": pool.max_size,
                "hits": pool.hits,
                "misses": pool.misses,
                "hitRate": round(pool.hits / taken, 3) if taken else None,
                "replaced": pool.replaced,
                "lastReadyMs": pool.last_ready_ms,
            }
        )
    return stats
