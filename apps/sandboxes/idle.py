"""When a sandbox was last used (API calls on it, commands, file transfers, terminal input).

Written at most every PRECISION, so a busy sandbox costs no extra database write per request.
Auto-pause (reconcile.py) pauses running sandboxes idle for longer than their `autoPause`.
"""

import datetime as dt

from django.utils import timezone

from .models import Sandbox

PRECISION = dt.timedelta(seconds=10)


def touch(sandbox: Sandbox) -> None:
    now = timezone.now()
    if sandbox.last_activity_at is None or now - sandbox.last_activity_at > PRECISION:
        Sandbox.objects.filter(pk=sandbox.pk).update(last_activity_at=now)
        sandbox.last_activity_at = now


def idle_since(sandbox: Sandbox) -> dt.datetime | None:
    return sandbox.last_activity_at or sandbox.started_at or sandbox.created_at


def touch_id(sandbox_id: str) -> None:
    """For callers holding only the id (terminal sessions, which throttle on their own)."""
    Sandbox.objects.filter(pk=sandbox_id).update(last_activity_at=timezone.now())
