"""Snapshots: a sandbox's filesystem, taken consistently, restorable in place or into a new sandbox.

A snapshot is two things taken while the sandbox is frozen (docker pause, so no process writes
meanwhile): the container committed as an image (everything outside the volumes) and a tar of
the workspace volume (which a commit leaves out), kept in VIBEBOX_SNAPSHOT_DIR. Memory, running
processes and /tmp (a tmpfs) are not part of a snapshot.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from vibebox import exceptions as errors

from . import events, quotas, states
from .models import Sandbox, Snapshot, Status
from .runtime import get_driver
from .specs import base_labels

logger = logging.getLogger(__name__)
SNAPSHOT_FROM = {Status.RUNNING, Status.PAUSED, Status.STOPPED}
CHUNK = 1024 * 1024


def archive_path(snapshot: Snapshot) -> Path:
    return Path(settings.VIBEBOX_SNAPSHOT_DIR) / f"{snapshot.id}.tar"


def image_tag(snapshot: Snapshot) -> str:
    return f"{settings.VIBEBOX_IMAGE_PREFIX}/snapshot-{settings.VIBEBOX_INSTANCE}:{snapshot.id}"


def _save_workspace(container: str, target: Path) -> int:
    """Streams the workspace volume's tar to `target` (atomically); answers its size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    chunks, _ = get_driver().get_archive(container, "/workspace")
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    size = 0
    try:
        with os.fdopen(descriptor, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
    return size


def _read(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def restore_workspace(container: str, snapshot: Snapshot) -> None:
    """Writes the snapshot's workspace into a started container's (fresh) workspace volume."""
    path = archive_path(snapshot)
    if not path.exists():
        raise errors.RuntimeFailure("The snapshot's workspace archive is missing.", details={"snapshot": snapshot.id})
    get_driver().put_archive(container, "/", _read(path))


def snapshot_create(*, sandbox: Sandbox, name: str = "") -> Snapshot:
    """Freezes the sandbox (if it runs), commits its container and copies its workspace, thaws it."""
    if sandbox.status not in SNAPSHOT_FROM:
        raise errors.SandboxStateConflict(
            f"Cannot snapshot a sandbox that is {sandbox.status}.",
            details={"status": sandbox.status, "allowedFrom": sorted(SNAPSHOT_FROM)},
        )
    quotas.check_snapshot(sandbox.owner)  # count, and bytes already at the limit: before taking anything
    driver = get_driver()
    snapshot = Snapshot(owner=sandbox.owner, sandbox=sandbox, sandbox_name=sandbox.name, template=sandbox.template)
    snapshot.name = name or f"{sandbox.name}-{timezone.now():%Y%m%d-%H%M%S}"
    snapshot.image = image_tag(snapshot)
    freeze = sandbox.status == Status.RUNNING
    if freeze:
        driver.pause(sandbox.container_name)
    try:
        labels = {**base_labels(), "vibebox.snapshot-id": snapshot.id}
        snapshot.image_bytes = driver.commit(sandbox.container_name, image=snapshot.image, labels=labels)
        snapshot.workspace_bytes = _save_workspace(sandbox.container_name, archive_path(snapshot))
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
            quotas.check_snapshot(sandbox.owner)
            quotas.check_snapshot(sandbox.owner, size=snapshot.size)
            snapshot.save(force_insert=True)
    except BaseException:
        _remove_data(snapshot)
        raise
    events.publish(sandbox=sandbox, type="sandbox.snapshotted", data={"snapshot": snapshot.id, "name": snapshot.name})
    return snapshot


def _remove_data(snapshot: Snapshot) -> None:
    try:
        get_driver().image_remove(snapshot.image)
    except errors.ApplicationError as exc:
        logger.warning("could not remove snapshot image %s: %s", snapshot.image, exc.message)
    archive_path(snapshot).unlink(missing_ok=True)


def snapshot_delete(*, snapshot: Snapshot) -> None:
    """Removes the snapshot (sandboxes created from it keep running)."""
    _remove_data(snapshot)
    snapshot.delete()


def snapshot_restore(*, sandbox: Sandbox, snapshot: Snapshot) -> Sandbox:
    """Rolls the sandbox back in place: its container and workspace are replaced by the snapshot's
    (same id, name, settings and environment variables); a stopped sandbox stays stopped."""
    from .services import _spec  # the sandbox's own container spec

    before = states.claim(sandbox, SNAPSHOT_FROM, Status.STARTING, "restore")
    driver = get_driver()
    try:
        driver.remove(sandbox.container_name, volume=sandbox.volume_name)
        sandbox.image = snapshot.image
        info = driver.create(_spec(sandbox))
        info = driver.start(sandbox.container_name)
        restore_workspace(sandbox.container_name, snapshot)
        if before == Status.STOPPED:
            info = driver.stop(sandbox.container_name, settings.VIBEBOX_STOP_TIMEOUT)
    except errors.ApplicationError as exc:
        states.move(sandbox, {Status.STARTING}, Status.ERROR, status_reason=f"restore failed: {exc.message}"[:500])
        raise
    now = timezone.now()
    states.move(
        sandbox,
        {Status.STARTING},
        Status.STOPPED if before == Status.STOPPED else Status.RUNNING,
        image=snapshot.image,
        container_id=info.id,
        paused_at=None,
        status_reason="",
        **({"stopped_at": now} if before == Status.STOPPED else {"started_at": now}),
    )
    events.publish(sandbox=sandbox, type="sandbox.restored", data={"snapshot": snapshot.id})
    return sandbox
