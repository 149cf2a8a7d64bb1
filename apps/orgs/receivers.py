"""Sign-ins and sign-outs go into the audit log of every organization the user belongs to (a
member's admins see them); a failed sign-in for a name no one has goes into the platform's own
chain (org ""), which staff read in the admin."""

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from apps.audit.services import record

from .models import Membership
from .services import personal_org_ensure


def _record_everywhere(action: str, user, changes: dict | None = None, *, by_user: bool = True) -> None:
    """`by_user` False: the user is only the target (a failed sign-in: whoever tried is anonymous)."""
    org_ids = list(Membership.objects.filter(user=user).values_list("org_id", flat=True))
    if not org_ids:  # every user has an organization, made on first need: this may be it
        org_ids = [personal_org_ensure(user=user).pk]
    actor = user if by_user else None
    for org_id in org_ids:
        record(action, org_id=org_id, target_type="user", target_id=str(user.pk), changes=changes, user=actor)


@receiver(user_logged_in, dispatch_uid="orgs.audit_login")
def _logged_in(sender, request, user, **kwargs):
    backend = getattr(user, "backend", "") or ""
    _record_everywhere("login.succeeded", user, {"backend": backend.rsplit(".", 1)[-1]})


@receiver(user_logged_out, dispatch_uid="orgs.audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        _record_everywhere("logout", user)


@receiver(user_login_failed, dispatch_uid="orgs.audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    name = str((credentials or {}).get("username", ""))[:150]
    user = get_user_model().objects.filter(username=name).first() if name else None
    if user is None:
        record("login.failed", org_id="", target_type="user", changes={"username": name})
    else:
        _record_everywhere("login.failed", user, {"username": name}, by_user=False)
