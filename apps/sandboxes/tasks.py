"""The periodic passes Celery beat sends (CELERY_BEAT_SCHEDULE in vibebox/settings.py).

Beat sends a pass every interval whether or not the last one has finished, and the worker runs
several tasks at once: two reconcile passes working on the same sandboxes made each other fail
("removal of container ... is already in progress"). Each pass therefore holds a lock in Redis,
and a pass that finds it held does nothing (the next interval brings another)."""

import contextlib
import secrets

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from vibebox import exceptions as errors

from .images import templates_sync
from .reconcile import sandbox_reconcile
from .selectors import node_get
from .services.git_hooks import git_hook_run
from .services.node_images import nodes_images_sync
from .services.nodes import node_prepare, node_ship_image, nodes_check
from .services.pools import pools_maintain
from .services.snapshots import snapshot_copies_remove
from .submissions import submission_validate, submissions_interrupted


@contextlib.contextmanager
def single_pass(name: str):
    """Yields whether this pass got the lock `name`. The lock lapses after VIBEBOX_STUCK_AFTER, so
    a worker killed mid-pass delays the next passes by that much at most."""
    key, token = f"periodic-pass:{name}", secrets.token_hex(16)
    held = cache.add(key, token, timeout=max(1, int(settings.VIBEBOX_STUCK_AFTER)))
    try:
        yield held
    finally:
        if held and cache.get(key) == token:  # not a later pass's lock (ours lapsed)
            cache.delete(key)


@shared_task(ignore_result=True)
def reconcile_sandboxes() -> dict:
    """Celery beat runs this every VIBEBOX_RECONCILE_INTERVAL (default a minute)."""
    with single_pass("reconcile") as held:
        if not held:
            return {"skipped": "another reconcile pass is running"}
        return sandbox_reconcile().as_dict()


@shared_task(ignore_result=True)
def check_nodes() -> dict:
    """Celery beat runs this every VIBEBOX_NODE_CHECK_INTERVAL: each registered node's engine is
    checked; one that stops answering is marked down, and healthy again when it answers."""
    with single_pass("check-nodes") as held:
        if not held:
            return {"skipped": "another node check is running"}
        return nodes_check()


@shared_task(ignore_result=True)
def maintain_pools() -> dict:
    """Celery beat runs this every VIBEBOX_POOL_INTERVAL: health checks, then refills warm pools."""
    with single_pass("pools") as held:
        if not held:
            return {"skipped": "another warm-pool pass is running"}
        return pools_maintain()


@shared_task(ignore_result=True)
def reap_submissions() -> dict:
    """Celery beat runs this every VIBEBOX_RECONCILE_INTERVAL: template submissions whose worker
    died mid-validation fail, and leftover build networks and images go (submissions_interrupted)."""
    with single_pass("submissions") as held:
        if not held:
            return {"skipped": "another submissions pass is running"}
        return submissions_interrupted()


TEMPLATE_BUILD_LOCK_SECONDS = 3 * 3600


@shared_task(ignore_result=True)
def build_templates(names: list[str] | None = None) -> dict:
    """Builds the built-in templates' missing images, one at a time, recording each one's build
    state and progress (GET /api/v1/templates shows it). `make run` sends it for the templates
    the warm pools do not need; a second one sent meanwhile does nothing."""
    key, token = "template-builds", secrets.token_hex(16)
    if not cache.add(key, token, timeout=TEMPLATE_BUILD_LOCK_SECONDS):
        return {"skipped": "another template build is running"}
    try:
        templates = templates_sync(build=True, only=names or None)
        return {"built": [t.name for t in templates]}
    except errors.ApplicationError as exc:
        return {"failed": exc.details.get("templates", []), "message": exc.message}
    finally:
        if cache.get(key) == token:
            cache.delete(key)


@shared_task(ignore_result=True)
def validate_submission(submission_id: str) -> str | None:
    """The marketplace's validation pipeline for one submission (apps/sandboxes/submissions.py),
    sent when it is queued. A redelivered task finds it no longer queued and does nothing."""
    return submission_validate(submission_id)


@shared_task(ignore_result=True)
def git_hook_pull(delivery_pk: int) -> str | None:
    """Queued when an auto-pull webhook's push is accepted (services/git_hooks.py)."""
    delivery = git_hook_run(delivery_pk=delivery_pk)
    return delivery.status if delivery else None


@shared_task(ignore_result=True)
def ship_image(node_name: str, tag: str) -> dict:
    """Streams a local image to a node (services/nodes.py, node_ship_image): idempotent, so a
    redelivered task sends nothing the node has. On the `builds` queue, with the image builds."""
    shipped = node_ship_image(node=node_get(name=node_name), tag=tag)
    return {"node": node_name, "image": shipped.tag, "id": shipped.image_id, "sent": shipped.sent}


@shared_task(ignore_result=True)
def prepare_node(node_name: str) -> dict:
    """sandboxd's image and volume on a node (services/nodes.py, node_prepare): idempotent."""
    prepared = node_prepare(node=node_get(name=node_name))
    return {"node": node_name, "volume": prepared.volume, "sent": prepared.image.sent}


@shared_task(bind=True, ignore_result=True, max_retries=40)
def sync_node_images(self, node_name: str | None = None) -> dict:
    """Every healthy node (or the one named) prepared and given every template image it lacks
    (services/node_images.py): sent when a template is published or a node added or back, and by
    beat every VIBEBOX_NODE_IMAGE_SYNC_INTERVAL. On the `builds` queue; one pass at a time. A
    named node's pass (just added, or back) that finds another running waits for it (every 30 s)
    rather than for beat's next pass: the node is placeable only once prepared."""
    with single_pass("node-images") as held:
        if not held:
            if node_name is not None:
                raise self.retry(countdown=30)
            return {"skipped": "another node images pass is running"}
        return nodes_images_sync(name=node_name)


@shared_task(bind=True, ignore_result=True, max_retries=5)
def remove_snapshot_copies(self, image: str, node_names: list[str] | None = None) -> dict:
    """A deleted snapshot's image off the nodes (services/snapshots.py, snapshot_delete: sent after
    the commit when a node is registered). The nodes that failed are tried again (5 times, a minute
    apart); a node that is down loses it when it returns (reconcile's lost snapshot images)."""
    done = snapshot_copies_remove(image=image, nodes=node_names)
    if done.failed:
        raise self.retry(kwargs={"image": image, "node_names": sorted(done.failed)}, countdown=60)
    return {"image": image, "removed": list(done.removed), "down": list(done.down)}
