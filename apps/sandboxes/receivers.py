"""What the sandboxes app does when lower apps announce something (connected in SandboxesConfig.ready)."""

from django.conf import settings
from django.dispatch import receiver

from apps.keys.signals import api_key_revoked
from apps.marketplace.signals import submission_queued, template_published
from apps.orgs.signals import member_removing, org_deleting, org_erasing
from vibebox import exceptions as errors

from .models import Sandbox, Snapshot, Status
from .services.create import sandbox_destroy, sandboxes_destroy_ephemeral_of_key
from .services.grants import grants_of_member_delete
from .services.nodes import nodes_images_sync_soon
from .services.snapshots import snapshot_delete
from .tasks import validate_submission


@receiver(api_key_revoked, dispatch_uid="sandboxes.destroy_ephemeral_of_key")
def _destroy_ephemeral_of_key(*, key, **_) -> None:
    """The ephemeral sandboxes a key created go with it."""
    sandboxes_destroy_ephemeral_of_key(key_id=key.pk)


@receiver(org_deleting, dispatch_uid="sandboxes.org_deleting")
def _org_deleting(*, org, **_) -> None:
    """An organization goes only once its sandboxes are destroyed and its snapshots deleted; the
    rows of destroyed sandboxes (with their executions) go with it."""
    live = Sandbox.objects.filter(org=org).exclude(status=Status.DESTROYED).count()
    snapshots = Snapshot.objects.filter(org=org).count()
    if live or snapshots:
        raise errors.OrgNotEmpty(
            "Destroy the organization's sandboxes and delete its snapshots first.",
            details={"sandboxes": live, "snapshots": snapshots},
        )
    Sandbox.objects.filter(org=org).delete()


@receiver(org_erasing, dispatch_uid="sandboxes.org_erasing")
def _org_erasing(*, org, check=False, **_) -> set[str] | None:
    """Erasure on request: every sandbox of the organization is destroyed (container, workspace,
    its keys) and every snapshot deleted (image and archive), each with its audit entry; an
    engine error stops the erasure (409/503 to the caller, who retries)."""
    if check:
        return {Sandbox._meta.label_lower, Snapshot._meta.label_lower}
    for sandbox in Sandbox.objects.filter(org=org).exclude(status=Status.DESTROYED):
        sandbox_destroy(sandbox=sandbox)
    for snapshot in Snapshot.objects.filter(org=org):
        snapshot_delete(snapshot=snapshot)


@receiver(member_removing, dispatch_uid="sandboxes.member_removing")
def _member_removing(*, org, user, **_) -> None:
    """A member who leaves loses the grants given to them on the organization's sandboxes (those
    through teams end as they leave the teams)."""
    grants_of_member_delete(org=org, user=user)


@receiver(submission_queued, dispatch_uid="sandboxes.submission_queued")
def _submission_queued(*, submission, **_) -> None:
    """A template submission waits for its validation (sent after its commit): the worker runs it."""
    if settings.VIBEBOX_TEMPLATE_PIPELINE_DISPATCH:
        validate_submission.delay(submission.pk)


@receiver(template_published, dispatch_uid="sandboxes.template_published")
def _template_published(**_) -> None:
    """A template's new image (a built-in's build, a marketplace version) goes out to the nodes
    ahead of the creates placed there (services/node_images.py); nothing when no node is registered."""
    nodes_images_sync_soon()
