"""The billing app's answers to the apps below (connected in BillingConfig.ready())."""

from django.dispatch import receiver

from apps.orgs.models import Organization
from apps.sandboxes.signals import work_requested

from . import quotas

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


# ---- end of quotas ----
