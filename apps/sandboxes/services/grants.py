"""Sharing one sandbox with a member or a team of its organization (SandboxGrant; what a grant
lets its holders do is selectors.check_access's). The views ask for MANAGE on the sandbox before
calling these, so whoever grants holds the top level and may give any level."""

from django.db import transaction

from apps.audit.services import record
from apps.orgs import selectors as org_selectors
from apps.orgs.models import Membership
from vibebox import exceptions as errors

from ..models import Sandbox, SandboxGrant


def _member_named(org, ref: str):
    """A member of `org` by username, else by email (case-insensitive): anyone else is a 404."""
    members = Membership.objects.filter(org=org, user__is_active=True).select_related("user")
    membership = members.filter(user__username=ref).first()
    if membership is None and "@" in ref:
        membership = members.filter(user__email__iexact=ref).order_by("user__username").first()
    if membership is None:
        raise errors.MemberNotFound(f"No member {ref!r} in {org.slug}.", details={"member": ref[:150]})
    return membership.user


def grant_set(
    *, sandbox: Sandbox, access: str, user_ref: str | None = None, team: str | None = None, by=None
) -> tuple[SandboxGrant, bool]:
    """Gives `access` on the sandbox to the member `user_ref` (username or email) or to the team
    named `team`; an existing grant to the same one changes level. (grant, created)."""
    if (user_ref is None) == (team is None):
        raise errors.ValidationFailed("Name a user or a team, not both.")
    if access not in SandboxGrant.Access.values:
        raise errors.ValidationFailed(f"access is one of {', '.join(SandboxGrant.Access.values)}.")
    if team is not None:
        target = {"team": org_selectors.team_get(org=sandbox.org, name=team)}
    else:
        target = {"user": _member_named(sandbox.org, user_ref)}
    with transaction.atomic():
        grant, created = SandboxGrant.objects.select_for_update().get_or_create(
            sandbox=sandbox, **target, defaults={"access": access, "created_by": by}
        )
        before = grant.access
        if not created and grant.access != access:
            grant.access = access
            grant.save(update_fields=["access"])
        if created or before != access:
            record(
                "grant.created" if created else "grant.updated",
                target=sandbox,
                changes={"grant": grant.pk, **_grantee(grant), "access": [before, access] if not created else access},
            )
    return grant, created


def _grantee(grant: SandboxGrant) -> dict:
    return {"team": grant.team.name} if grant.team_id else {"user": grant.user.get_username()}


def grant_delete(*, grant: SandboxGrant) -> None:
    with transaction.atomic():
        record(
            "grant.deleted",
            target=grant.sandbox,
            changes={"grant": grant.pk, **_grantee(grant), "access": grant.access},
        )
        grant.delete()


def grants_of_member_delete(*, org, user) -> int:
    """The member's own grants on the organization's sandboxes go when they leave it."""
    deleted, _ = SandboxGrant.objects.filter(user=user, sandbox__org=org).delete()
    return deleted
