"""What billing does when the apps below announce something (connected in BillingConfig.ready()):
the meter's samples at lifecycle changes, and the quota check of every request for work."""

import logging

from django.db import transaction
from django.dispatch import receiver

from apps.orgs.models import Organization
from apps.sandboxes.signals import sandbox_event, sandbox_leaving, work_requested

from . import metering, quotas

logger = logging.getLogger(__name__)

# Events after which the meter marks the new state (counters from the new boot, or the start of a
# paused or stopped span).
SAMPLED_AFTER = {
    "sandbox.created",
    "sandbox.started",
    "sandbox.restarted",
    "sandbox.resumed",
    "sandbox.stopped",
    "sandbox.paused",
    "sandbox.restored",  # a snapshot's container replaced the sandbox's
}


@receiver(sandbox_leaving, dispatch_uid="billing.meter.leaving")
def sample_before_leaving(sender, sandbox, state, **kwargs):
    """The counters' tail, before a stop, restart, destroy or snapshot restore ends or resets them;
    recorded in the state the sandbox is leaving (a pause's tail: metering._running_until)."""
    metering.sample(sandbox, state=state)


@receiver(sandbox_event, dispatch_uid="billing.meter.after")
def sample_after_change(sender, sandbox, type, **kwargs):
    """A sample once the change is committed (the event is sent inside its transaction): a running
    or paused sandbox's by the background sampler (metering.sample_soon: the engine's stats take up
    to a second, which a create or start no longer waits for), a stopped one's at once."""
    if type not in SAMPLED_AFTER:
        return
    transaction.on_commit(lambda: metering.sample_soon(sandbox), robust=True)


# ---- quotas (apps/billing/quotas.py): every request for work is checked ----


@receiver(work_requested, dispatch_uid="billing.quotas.work_requested")
def _work_requested(sender, org_id, action, sandbox=None, running=0, cpu=0, memory=0, disk=0, snapshots=0, **kwargs):
    """Refuses (402 quota_exceeded) work past the organization's quotas or budget, or while its
    payment state is frozen; the sender lets the error through and does nothing."""
    org = sandbox.org if sandbox is not None and sandbox.org_id == org_id else Organization.objects.get(pk=org_id)
    request = quotas.Request(
        action=action, running=running, cpu=cpu, memory=memory, disk=disk, snapshots=snapshots, sandbox=sandbox
    )
    quotas.check(org, request)
