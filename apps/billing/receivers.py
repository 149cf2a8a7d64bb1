"""What billing does when the sandboxes app announces something (connected in apps.py ready())."""

import logging

from django.db import transaction
from django.dispatch import receiver

from apps.sandboxes.signals import sandbox_event, sandbox_leaving

from . import metering

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
    """The counters' tail, before a stop, restart, pause, destroy or snapshot restore ends or
    resets them; recorded in the state the sandbox is leaving."""
    metering.sample(sandbox, state=state)


@receiver(sandbox_event, dispatch_uid="billing.meter.after")
def sample_after_change(sender, sandbox, type, **kwargs):
    """A sample once the change is committed (the event is sent inside its transaction)."""
    if type not in SAMPLED_AFTER:
        return
    transaction.on_commit(lambda: metering.sample(sandbox), robust=True)
