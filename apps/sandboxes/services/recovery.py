"""Recover: a sandbox in `error` made usable again (docs/api.md, "Recover"; docs/operations.md,
"Backups").

A sandbox is in `error` when its container went away behind VibeBox's back (deleted by hand, an
engine that lost its data, a restore onto a fresh machine: reconcile's "container vanished"), or
when its container is there but a move could not be settled. Recover looks first:
- the container is there: the row follows it (running, paused or stopped), nothing is made;
- it is not: a new container is made from the row (its template, image, resources and settings,
  as a create makes it) and left `stopped`, so that a start asks the organization's quotas as any
  start does. Its workspace comes back from where a restore put it: the workspace volume itself,
  or, for a sandbox with a disk limit (its workspace in the container's layer), the volume
  `<id>-workspace` that `manage.py restore --volumes` wrote, copied into the new container and
  removed. With neither, the workspace is empty, and the status reason says so.

The recorded image may be gone (a fresh machine builds the templates again; an older version's
tag is not rebuilt): a template's sandbox then gets the template's current image, and the status
reason says that too. A snapshot's image (a sandbox created from one) has no such stand-in:
`409 sandbox_unrecoverable` (restore the backup with `--snapshots`).
"""

import contextlib
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from vibebox import exceptions as errors

from .. import events, states
from ..models import Sandbox, Status
from ..runtime import ContainerInfo, RuntimeDriver, driver_for
from ..specs import sandbox_spec
from . import network
from .snapshots import is_snapshot_image

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024


def sandbox_recover(*, sandbox: Sandbox) -> Sandbox:
    states.claim(sandbox, states.RECOVER_FROM, Status.STARTING, "recover")
    try:
        driver = driver_for(sandbox)
        found = driver.inspect(sandbox.container_name)
        if found is not None:
            to, how, fields = states.of_container(found), "found", {"container_id": found.id, "status_reason": ""}
            if to == Status.RUNNING:  # its egress rules, which went with the error's clean-up
                network.network_apply(sandbox)
        else:
            to, how, fields = Status.STOPPED, "made", _remake(sandbox, driver)
    except BaseException:
        # Back to `error` with the reason it had: what stopped the recover is the exception's.
        states.move(sandbox, {Status.STARTING}, Status.ERROR)
        raise
    with transaction.atomic():  # the move, its entry and its webhook deliveries together
        paused_at = (sandbox.paused_at or timezone.now()) if to == Status.PAUSED else None
        moved = states.move(sandbox, {Status.STARTING}, to, paused_at=paused_at, **fields)
        if moved:
            record("sandbox.recovered", target=sandbox, changes={"container": how, "status": to})
            events.publish(sandbox=sandbox, type="sandbox.recovered", data={"container": how})
    # Lost to a destroy meanwhile: what was made here goes too. Lost to reconcile (a recover it
    # took for stuck), the row follows the container as reconcile found it: nothing is removed.
    if not moved and how == "made" and sandbox.status in (Status.DESTROYING, Status.DESTROYED):
        with contextlib.suppress(errors.ApplicationError):
            driver.remove(sandbox.container_name, volume=sandbox.volume_name)
    return sandbox


def _image(sandbox: Sandbox, driver: RuntimeDriver) -> tuple[str, str]:
    """The image to make the container from, and a note when it is not the recorded one."""
    if driver.image_exists(sandbox.image):
        return sandbox.image, ""
    current = sandbox.template.image
    if is_snapshot_image(sandbox.image) or not current or not driver.image_exists(current):
        raise errors.SandboxUnrecoverable(
            "The sandbox's image is not in its engine (a snapshot's image comes back with `restore --snapshots`).",
            details={"sandbox": sandbox.id, "reason": "image_missing", "image": sandbox.image},
        )
    return current, f"; its template's current image {current} (its own, {sandbox.image}, is gone)"


def _remake(sandbox: Sandbox, driver: RuntimeDriver) -> dict:
    image, note = _image(sandbox, driver)
    sandbox.image = image
    spec = sandbox_spec(sandbox)
    restored = driver.volume_exists(sandbox.volume_name)  # before create, which makes a missing one
    info = driver.create(spec)
    if spec.volume:
        workspace = "its workspace volume" if restored else "an empty workspace (its volume is gone)"
    elif restored:
        # A long copy must not look stuck to reconcile (VIBEBOX_STUCK_AFTER counts from updated_at).
        Sandbox.objects.filter(pk=sandbox.pk, status=Status.STARTING).update(updated_at=timezone.now())
        try:
            _copy_in(driver, sandbox.volume_name, info)
        except BaseException as exc:
            # The half-made container goes (a next recover would "find" it and copy nothing); the
            # restored volume stays for that next recover.
            with contextlib.suppress(errors.ApplicationError):
                driver.remove(info.name)
            if isinstance(exc, OSError):  # the server's scratch space (a full disk)
                raise errors.RuntimeFailure(f"Could not copy the restored workspace: {exc}") from None
            raise
        workspace = "its workspace copied from the restored volume"
    else:
        workspace = "an empty workspace (no copy of it was restored)"
    return {
        "container_id": info.id,
        "image": image,
        "stopped_at": timezone.now(),
        "status_reason": f"recovered: a new container with {workspace}{note}"[:500],
    }


def _copy_in(driver: RuntimeDriver, volume: str, container: ContainerInfo) -> None:
    """The restored volume's files into the new container's layer (a disk-limited workspace lives
    there, where the limit applies), then the volume goes: it was only the backup's carrier."""
    with tempfile.TemporaryDirectory(dir=settings.DATA_DIR, prefix=".recover-") as folder:  # beside restores
        path = Path(folder) / "workspace.tar"
        driver.volume_export(volume, path)  # a tar of workspace/...
        with path.open("rb") as data:
            driver.put_archive(container.name, "/", iter(lambda: data.read(CHUNK), b""))
    with contextlib.suppress(errors.ApplicationError):
        driver.remove_volume(volume)
