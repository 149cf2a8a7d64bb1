"""What billing does when the apps below announce something (connected in BillingConfig.ready()):
the meter's samples at lifecycle changes, and the quota check of every request for work."""

import logging
from datetime import timedelta

from django.db import transaction
from django.dispatch import receiver

from apps.orgs.models import Organization
from apps.sandboxes.models import Status
from apps.sandboxes.signals import sandbox_event, sandbox_leaving, work_requested

from . import metering, quotas
from .models import MeterSample

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
    "sandbox.reachable",  # its node answered again: the sandbox follows its container there
    "sandbox.recovered",  # out of error: its container found, or a new one made (stopped)
}


@receiver(sandbox_leaving, dispatch_uid="billing.meter.leaving")
def sample_before_leaving(sender, sandbox, state, **kwargs):
    """The counters' tail, before a stop, restart, destroy or snapshot restore ends or resets them;
    recorded in the state the sandbox is leaving (a pause's tail: metering._running_until)."""
    metering.sample(sandbox, state=state)


@receiver(sandbox_event, dispatch_uid="billing.meter.unreachable")
def mark_unreachable(sender, sandbox, type, **kwargs):
    """A sandbox whose node is down cannot be read: a sample in state `unreachable`, dated just after
    its last sample (the last thing known of it), so the rollup counts nothing from there until the
    first reading after the node's return: no running, paused, memory or workspace time (the
    counters are the last read ones, so that reading adds only what the container really used). No
    mark without an earlier sample: no baseline."""
    if type != "sandbox.unreachable":
        return
    last = MeterSample.objects.filter(sandbox=sandbox).order_by("-taken_at").first()
    if last is None:
        return
    MeterSample.objects.create(
        sandbox=sandbox,
        org_id=sandbox.org_id,
        taken_at=last.taken_at + timedelta(microseconds=1),
        state=Status.UNREACHABLE,
        boot=last.boot,
        cpu_ns=last.cpu_ns,
        memory_bytes=last.memory_bytes,
        net_rx_bytes=last.net_rx_bytes,
        net_tx_bytes=last.net_tx_bytes,
        workspace_bytes=last.workspace_bytes,
    )


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
