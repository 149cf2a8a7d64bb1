"""Reading an organization's audit log."""

from datetime import datetime

from django.db.models import Q, QuerySet

from .models import AuditEntry


def entry_list(
    *,
    org_id: str,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Newest first. `actor`: a username or an API key id; `action`: exact, or a family when it
    ends with "." or "*" (`sandbox.` / `sandbox.*`); `target`: an id, or `type:id`."""
    qs = AuditEntry.objects.filter(org_id=org_id).order_by("-seq")
    if actor:
        qs = qs.filter(Q(actor=actor) | Q(key_id=actor))
    if action:
        family = action.rstrip("*")
        qs = qs.filter(action__startswith=family) if family.endswith(".") else qs.filter(action=action)
    if target:
        kind, _, ident = target.rpartition(":")
        qs = qs.filter(target_id=ident, **({"target_type": kind} if kind else {}))
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    return qs
