"""Reads for organizations. A user sees only the organizations they belong to: any other is a 404."""

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from vibebox import exceptions as errors

from . import tokens
from .models import Invitation, Membership, Organization, Role, Team
from .permissions import BUILTIN_ROLES


def org_list(*, user) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).distinct()


def org_get(*, user, slug: str) -> Organization:
    org = Organization.objects.filter(slug=slug, memberships__user=user).first()
    if org is None:
        raise errors.OrgNotFound(details={"org": slug})
    return org


def membership_get(*, org: Organization, user) -> Membership | None:
    return Membership.objects.filter(org=org, user=user).select_related("custom_role").first()


def member_list(*, org: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(org=org).select_related("user", "custom_role")


def member_get(*, org: Organization, id: int | str) -> Membership:
    membership = None
    if str(id).isdigit():
        membership = member_list(org=org).filter(pk=int(id)).first()
    if membership is None:
        raise errors.MemberNotFound(details={"member": str(id)[:64]})
    return membership


def role_permissions(role_name: str, custom_role=None) -> frozenset[str]:
    """What a role grants: a custom role's list, a built-in role's set; none (a team without a role)."""
    if custom_role is not None:
        return frozenset(custom_role.permissions)
    return BUILTIN_ROLES.get(role_name, frozenset())


def permissions_of(*, user, org: Organization) -> frozenset[str]:
    """The user's permissions in `org`: their role's united with their teams' (empty: not a member)."""
    return member_permissions(user=user, org=org) or frozenset()


def member_permissions(*, user, org: Organization) -> frozenset[str] | None:
    """The member's permissions in `org` (permissions_of); None when they are not a member."""
    membership = membership_get(org=org, user=user)
    if membership is None:
        return None
    granted = set(role_permissions(membership.role, membership.custom_role))
    for team in org.teams.filter(members=user).select_related("custom_role"):
        granted |= role_permissions(team.role, team.custom_role)
    return frozenset(granted)


def role_list(*, org: Organization) -> QuerySet[Role]:
    return Role.objects.filter(org=org)


def role_get(*, org: Organization, name: str) -> Role:
    role = Role.objects.filter(org=org, name=name).first()
    if role is None:
        raise errors.RoleNotFound(details={"role": name[:50]})
    return role


def team_list(*, org: Organization) -> QuerySet[Team]:
    return Team.objects.filter(org=org).select_related("custom_role").prefetch_related("members")


def team_get(*, org: Organization, name: str) -> Team:
    team = team_list(org=org).filter(name=name).first()
    if team is None:
        raise errors.TeamNotFound(details={"team": name[:50]})
    return team


def invitation_list(*, org: Organization) -> QuerySet[Invitation]:
    """The organization's pending invitations (expired ones included, until revoked or sent again)."""
    return Invitation.objects.filter(org=org, accepted_at__isnull=True, revoked_at__isnull=True).select_related(
        "custom_role", "invited_by"
    )


def invitation_get(*, org: Organization, id: str) -> Invitation:
    """A pending invitation of the organization by id (any other: 404 invitation_not_found)."""
    invitation = invitation_list(org=org).filter(pk=id).first()
    if invitation is None:
        raise errors.InvitationNotFound(details={"invitation": id[:64]})
    return invitation


def invitation_by_token(*, token: str) -> Invitation:
    """The invitation a signed link names, whatever its state (the caller checks it); a token not
    made here, or naming a revoked invitation or none, is a 404 invitation_not_found."""
    invitation_id = tokens.invitation_id(token)
    invitation = (
        Invitation.objects.filter(pk=invitation_id, revoked_at__isnull=True)
        .select_related("org", "custom_role", "invited_by")
        .first()
        if invitation_id
        else None
    )
    if invitation is None:
        raise errors.InvitationNotFound()
    return invitation


def masked_email(email: str) -> str:
    """j***@example.com: enough for its owner to recognise, not to read off the page."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def invitation_check(*, invitation: Invitation, user=None) -> None:
    """Whether `user` may accept the invitation now, else the error that says why: revoked (404),
    accepted (410), expired (410), sent to another address than the user's (403, unless
    VIBEBOX_INVITATION_ANY_EMAIL), or the user a member already (409). Without a user: whether
    anyone still may."""
    if invitation.revoked_at is not None:
        raise errors.InvitationNotFound()
    if invitation.accepted_at is not None:
        raise errors.InvitationAccepted()
    if timezone.now() >= invitation.expires_at:
        raise errors.InvitationExpired(details={"expiredAt": invitation.expires_at.isoformat()})
    if user is None:
        return
    if not settings.VIBEBOX_INVITATION_ANY_EMAIL and (user.email or "").lower() != invitation.email.lower():
        raise errors.InvitationEmailMismatch(
            f"This invitation was sent to {masked_email(invitation.email)}; sign in as the user with that "
            "email address to accept it.",
            details={"email": masked_email(invitation.email)},
        )
    if Membership.objects.filter(org=invitation.org, user=user).exists():
        raise errors.AlreadyMember(
            f"You are already a member of {invitation.org.slug}.", details={"org": invitation.org.slug}
        )
