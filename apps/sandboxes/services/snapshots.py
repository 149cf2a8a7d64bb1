"""Snapshots: a sandbox's filesystem, taken consistently, restorable in place or into a new sandbox.

A snapshot is two things taken while the sandbox is frozen (docker pause, so no process writes
meanwhile): the container committed as an image (everything outside the volumes) and a tar of
the workspace volume (which a commit leaves out), kept in VIBEBOX_SNAPSHOT_DIR. Memory, running
processes and /tmp (a tmpfs) are not part of a snapshot.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.labels import labels_merge
from vibebox import exceptions as errors
from vibebox.celery import app as celery_app
from vibebox.ids import random_id

from .. import events, quotas, states
from ..models import Node, Sandbox, Snapshot, Status
from ..runtime import ImageInfo, driver_for, get_driver
from ..specs import base_labels, sandbox_spec
from . import network, placement
from .lifecycle import announce_leaving, claim_checked
from .shipping import snapshot_image_ship

logger = logging.getLogger(__name__)
COPIES_TASK = "apps.sandboxes.tasks.remove_snapshot_copies"  # by name: tasks.py imports this module
SNAPSHOT_FROM = {Status.RUNNING, Status.PAUSED, Status.STOPPED}
CHUNK = 1024 * 1024


def archive_path(snapshot: Snapshot) -> Path:
    return Path(settings.VIBEBOX_SNAPSHOT_DIR) / f"{snapshot.id}.tar"


def _image_prefix() -> str:
    return f"{settings.VIBEBOX_IMAGE_PREFIX}/snapshot-"


def image_tag(snapshot: Snapshot) -> str:
    return f"{_image_prefix()}{settings.VIBEBOX_INSTANCE}:{snapshot.id}"


def is_snapshot_image(tag: str) -> bool:
    """Whether `tag` names a snapshot's image, of any instance (a restored database may carry another's)."""
    return tag.startswith(_image_prefix())


def _save_workspace(sandbox: Sandbox, target: Path) -> tuple[int, str]:
    """Streams the workspace volume's tar to `target` (atomically); answers its size and digest."""
    target.parent.mkdir(parents=True, exist_ok=True)
    chunks, _ = driver_for(sandbox).get_archive(sandbox.container_name, "/workspace")
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    size, digest = 0, hashlib.sha256()
    try:
        with os.fdopen(descriptor, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fsync(out.fileno())  # a snapshot is a promise: on disk before the row says it exists
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
    return size, digest.hexdigest()


def _read(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def _archive_intact(path: Path, snapshot: Snapshot) -> bool:
    """Same size and digest as when it was taken (older snapshots have no digest: a tar that reads)."""
    try:
        if path.stat().st_size != snapshot.workspace_bytes:
            return False
        if snapshot.workspace_sha256:
            digest = hashlib.sha256()
            for chunk in _read(path):
                digest.update(chunk)
            return hmac.compare_digest(digest.hexdigest(), snapshot.workspace_sha256)
        with path.open("rb") as handle, tarfile.open(fileobj=handle, mode="r|") as archive:
            return archive.next() is not None
    except (OSError, tarfile.TarError):
        return False


def check_usable(snapshot: Snapshot) -> None:
    """Refuses (409 snapshot_unusable) a snapshot whose image or workspace archive is gone or
    damaged, before anything of a sandbox is touched."""
    if snapshot.node_id is not None and snapshot.node.state == Node.State.DOWN:  # not dialled: it would wait
        raise errors.RuntimeUnavailable(
            "The engine that holds this snapshot's image is not answering; try again later.",
            details={"reason": "snapshot_engine_down"},
        )
    path = archive_path(snapshot)
    reason = ""
    if not driver_for(snapshot).image_exists(snapshot.image):
        reason = "image_missing"
    elif not path.is_file():
        reason = "archive_missing"
    else:
        reason = "" if _archive_intact(path, snapshot) else "archive_damaged"
    if reason:
        raise errors.SnapshotUnusable(details={"snapshot": snapshot.id, "reason": reason})


def restore_workspace(sandbox: Sandbox, snapshot: Snapshot) -> None:
    """Writes the snapshot's workspace into a started container's (fresh) workspace."""
    path = archive_path(snapshot)
    try:
        chunks = _read(path)
        driver_for(sandbox).put_archive(sandbox.container_name, "/", chunks)
    except OSError:
        raise errors.SnapshotUnusable(details={"snapshot": snapshot.id, "reason": "archive_unreadable"}) from None


def snapshot_create(*, sandbox: Sandbox, name: str = "") -> Snapshot:
    """Freezes the sandbox (if it runs), commits its container and copies its workspace, thaws it."""
    states.require_reachable(sandbox)
    if sandbox.status not in SNAPSHOT_FROM:
        raise errors.SandboxStateConflict(
            f"Cannot snapshot a sandbox that is {sandbox.status}.",
            details={"status": sandbox.status, "allowedFrom": sorted(SNAPSHOT_FROM)},
        )
    quotas.check_snapshot(sandbox.owner)  # count, and bytes already at the limit: before taking anything
    quotas.request_work(org_id=sandbox.org_id, action="snapshot", sandbox=sandbox, user=sandbox.owner, snapshots=1)
    driver = driver_for(sandbox)
    snapshot = Snapshot(
        owner=sandbox.owner,
        org_id=sandbox.org_id,
        sandbox=sandbox,
        sandbox_name=sandbox.name,
        template=sandbox.template,
        node_id=sandbox.node_id,  # the image is committed on the sandbox's engine
        node_labels=sandbox.node_labels,  # a create or restore from it runs only where they are
    )
    snapshot.name = name or f"{sandbox.name}-{timezone.now():%Y%m%d-%H%M%S}"
    snapshot.image = image_tag(snapshot)
    freeze = sandbox.status == Status.RUNNING
    if freeze:
        driver.pause(sandbox.container_name)
    try:
        labels = {**base_labels(), "vibebox.snapshot-id": snapshot.id}
        snapshot.image_bytes = driver.commit(sandbox.container_name, image=snapshot.image, labels=labels)
        snapshot.workspace_bytes, snapshot.workspace_sha256 = _save_workspace(sandbox, archive_path(snapshot))
    except BaseException:
        _remove_data(snapshot)
        raise
    finally:
        if freeze:
            driver.unpause(sandbox.container_name)
    try:
        with transaction.atomic():
            # Again with its size, under the owner's lock: concurrent snapshots cannot both fit.
            get_user_model().objects.select_for_update().filter(pk=sandbox.owner_id).first()
            quotas.lock_org(sandbox.org_id)
            quotas.check_snapshot(sandbox.owner)
            quotas.check_snapshot(sandbox.owner, size=snapshot.size)
            quotas.request_work(
                org_id=sandbox.org_id, action="snapshot", sandbox=sandbox, user=sandbox.owner, snapshots=1
            )
            snapshot.save(force_insert=True)
            record(
                "snapshot.created",
                target=snapshot,
                changes={"sandbox": sandbox.id, "name": snapshot.name, "size": snapshot.size},
            )
            # The row, its entry and its webhook deliveries together.
            events.publish(
                sandbox=sandbox, type="sandbox.snapshotted", data={"snapshot": snapshot.id, "name": snapshot.name}
            )
    except BaseException:
        _remove_data(snapshot)
        raise
    return snapshot


def _remove_data(snapshot: Snapshot) -> None:
    """A snapshot that failed half-way: its image on its engine (the sandbox's: no copy exists yet)
    and its archive."""
    try:
        driver_for(snapshot).image_remove(snapshot.image)  # nothing when it is not there
    except errors.ApplicationError as exc:  # reconcile removes a lost snapshot image later
        logger.warning("could not remove snapshot image %s: %s", snapshot.image, exc.message)
    archive_path(snapshot).unlink(missing_ok=True)


def snapshot_delete(*, snapshot: Snapshot) -> None:
    """Removes the snapshot (sandboxes created from it keep running). In the request: its archive,
    its image on the local engine (its own, or a copy a create or restore shipped there), its row
    and audit entry. Its image on the nodes (its own when it was taken on one, and the copies
    shipped there: shipping.snapshot_image_ship) goes after the commit, in a task
    (tasks.remove_snapshot_copies, retried), so a slow node never holds the request; a node that is
    down then loses it when it returns (reconcile's lost snapshot images, per engine). With no node
    registered: one query more than before nodes, no task."""
    try:
        get_driver().image_remove(snapshot.image)  # nothing when it is not there
    except errors.ApplicationError as exc:  # reconcile removes a lost snapshot image later
        logger.warning("could not remove snapshot image %s: %s", snapshot.image, exc.message)
    archive_path(snapshot).unlink(missing_ok=True)
    image = snapshot.image
    with transaction.atomic():
        record("snapshot.deleted", target=snapshot, changes={"name": snapshot.name})
        snapshot.delete()
        if Node.objects.exists():
            # robust: a broker that is down does not turn the done delete into a 500 (the nodes'
            # copies then go with reconcile's sweep of lost snapshot images, per engine)
            transaction.on_commit(
                lambda: celery_app.signature(COPIES_TASK, kwargs={"image": image}).delay(), robust=True
            )


@dataclass(frozen=True)
class RemovedCopies:
    """What snapshot_copies_remove did: the nodes it removed the image from (or found without it),
    the ones it could not (name -> why: the task tries them again), and those it left alone because
    they are down (reconcile removes it there when they return)."""

    image: str
    removed: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    down: tuple[str, ...] = ()


def snapshot_copies_remove(*, image: str, nodes: list[str] | None = None) -> RemovedCopies:
    """A deleted snapshot's image (`image`: its tag, this instance's) off every registered node (or
    the ones named) that is not down. One node's failure does not stop the others."""
    removed, failed, down = [], {}, []
    rows = Node.objects.order_by("name")
    if nodes is not None:
        rows = rows.filter(name__in=nodes)
    for node in rows:
        if node.state == Node.State.DOWN:  # not dialled: its reconcile on return removes it
            down.append(node.name)
            continue
        try:
            get_driver(node).image_remove(image)  # nothing when it is not there
        except errors.ApplicationError as exc:
            logger.warning("could not remove snapshot image %s from node %s: %s", image, node.name, exc.message)
            failed[node.name] = exc.message
        else:
            removed.append(node.name)
    return RemovedCopies(image=image, removed=tuple(removed), failed=failed, down=tuple(down))


def lost_snapshot_images(*, node: Node | None, older_than: float) -> list[ImageInfo]:
    """The snapshot images on an engine (`node`; None: the local engine) whose snapshot row is gone
    (a deleted snapshot whose copy was on a node that was down or failed, a snapshot that failed
    half-way, a deleted database), created before `older_than` (a timestamp: a snapshot being
    taken has its image before its row). Only this instance's: its labels (vibebox.managed,
    vibebox.instance) and a snapshot id."""
    images = [i for i in get_driver(node).list_images(base_labels()) if i.labels.get("vibebox.snapshot-id")]
    known = set(
        Snapshot.objects.filter(pk__in=[i.labels["vibebox.snapshot-id"] for i in images]).values_list("pk", flat=True)
    )
    return [i for i in images if i.labels["vibebox.snapshot-id"] not in known and i.created < older_than]


def snapshot_restore(*, sandbox: Sandbox, snapshot: Snapshot) -> Sandbox:
    """Rolls the sandbox back in place: its container and workspace are replaced by the snapshot's
    (same id, name, settings and environment variables); a stopped sandbox stays stopped.

    Nothing of the sandbox is lost when a restore fails: the snapshot is checked first, the old
    container is renamed aside (running, paused or stopped as it was, its workspace untouched),
    the new one is built under the sandbox's name with a new workspace, and the old one is removed
    only once the new one is ready. On failure the new one goes and the old one gets its name back."""
    check_usable(snapshot)
    # Its node labels: the sandbox's engine must have them (400 no_matching_node), and it keeps them.
    placement.require_labels(sandbox.node, snapshot.node_labels)
    labels = labels_merge(("sandbox", sandbox.node_labels), ("snapshot", snapshot.node_labels))
    # A paused or stopped sandbox's restore starts a container: its organization's quotas and
    # budget are asked first, as a start or resume is (a budget-paused sandbox stays paused).
    before = claim_checked(sandbox, SNAPSHOT_FROM, Status.STARTING, "restore")
    announce_leaving(sandbox, before)  # the old container's counters end with it
    driver = driver_for(sandbox)
    old_volume = sandbox.volume_name
    aside = f"{sandbox.container_name}-replaced"
    try:
        driver.rename(sandbox.container_name, aside)
    except errors.ApplicationError:
        states.move(sandbox, {Status.STARTING}, before)
        raise
    new = Sandbox(**{f.attname: getattr(sandbox, f.attname) for f in Sandbox._meta.concrete_fields})
    new.image = snapshot.image
    new.workspace_volume = f"{sandbox.id}-workspace-{random_id('', 8).lower()}"
    spec = sandbox_spec(new)
    try:
        if snapshot.node_id != sandbox.node_id:  # another sandbox's snapshot, taken on another engine
            snapshot_image_ship(snapshot=snapshot, node=sandbox.node)
        try:
            info = driver.create(spec)
        except errors.TemplateUnavailable:  # the image went after the check
            raise errors.SnapshotUnusable(details={"snapshot": snapshot.id, "reason": "image_missing"}) from None
        info = driver.start(sandbox.container_name)
        # The new container's address gets the sandbox's egress policy; the old one's keeps it.
        network.network_apply(sandbox, keep_previous=True)
        restore_workspace(sandbox, snapshot)
        if before == Status.STOPPED:
            info = driver.stop(sandbox.container_name, settings.VIBEBOX_STOP_TIMEOUT)
            network.network_release(sandbox)
    except BaseException as exc:
        _roll_back(sandbox, aside, spec.volume, before, exc)
        raise
    now = timezone.now()
    moved = states.move(
        sandbox,
        {Status.STARTING},
        Status.STOPPED if before == Status.STOPPED else Status.RUNNING,
        image=snapshot.image,
        container_id=info.id,
        workspace_volume=new.workspace_volume if spec.volume else "",
        paused_at=None,
        status_reason="",
        node_labels=labels,
        **({"stopped_at": now} if before == Status.STOPPED else {"started_at": now}),
    )
    _remove_replaced(sandbox, aside, old_volume)
    if moved:
        record("sandbox.restored", target=sandbox, changes={"snapshot": snapshot.id})
        events.publish(sandbox=sandbox, type="sandbox.restored", data={"snapshot": snapshot.id})
    return sandbox


def _roll_back(sandbox: Sandbox, aside: str, volume: str | None, before: str, exc: BaseException) -> None:
    """A failed restore: the new container and workspace go, the old container gets its name back."""
    driver = driver_for(sandbox)
    try:
        driver.remove(sandbox.container_name, volume=volume)
        driver.rename(aside, sandbox.container_name)
    except errors.ApplicationError as failure:
        # The engine failed again: the row stays `starting` with the old container set aside, and
        # reconcile rolls back once the engine answers (restore_roll_back).
        reason = f"restore failed; rolling back when the engine answers ({failure.message})"
        states.move(sandbox, {Status.STARTING}, Status.STARTING, status_reason=reason[:500])
        logger.error("sandbox %s: %s", sandbox.id, reason)
        return
    message = getattr(exc, "message", None) or type(exc).__name__
    states.move(sandbox, {Status.STARTING}, before)
    logger.warning("sandbox %s: restore failed and was rolled back: %s", sandbox.id, message)


def restore_roll_back(sandbox: Sandbox, aside) -> None:
    """Reconcile's end of a restore its server never finished: the container set aside (an
    engine ContainerInfo) is the sandbox again, in the state it is in."""
    _roll_back(
        sandbox,
        aside.name,
        None,
        states.of_container(aside),
        errors.RuntimeFailure("the server stopped during a restore"),
    )


def _remove_replaced(sandbox: Sandbox, aside: str, volume: str | None) -> None:
    try:
        driver_for(sandbox).remove(aside, volume=volume)
    except errors.ApplicationError as exc:  # reconcile removes a left-over `-replaced` container
        logger.warning("could not remove replaced container %s: %s", aside, exc.message)
