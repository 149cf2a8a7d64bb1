"""Reads for organizations. A user sees only the organizations they belong to: any other is a 404."""

from django.db.models import QuerySet

from vibebox import exceptions as errors

from .models import Membership, Organization, Role, Team
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
    membership = membership_get(org=org, user=user)
    if membership is None:
        return frozenset()
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
