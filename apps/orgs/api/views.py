from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from .. import selectors, services
from ..actors import actor_in
from ..models import Organization
from ..permissions import BUILTIN_ROLES
from .serializers import (
    MemberAddSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    OrganizationCreateSerializer,
    OrganizationSerializer,
    OrganizationUpdateSerializer,
    RoleCreateSerializer,
    RoleSerializer,
    RoleUpdateSerializer,
    TeamCreateSerializer,
    TeamMemberAddSerializer,
    TeamSerializer,
    TeamUpdateSerializer,
)

# The keys app's scope (apps/keys/scopes.py lists it; keys sit above orgs, so it is named here).
# Reading your organizations needs no scope; changing them needs it (and the permission).
ORGS_MANAGE = "orgs:manage"
READ_MANAGE = {"GET": [], "POST": [ORGS_MANAGE], "PATCH": [ORGS_MANAGE], "DELETE": [ORGS_MANAGE]}


def _key_org_id(request) -> str | None:
    """The organization the request's API key acts in; None for a signed-in user (a session)."""
    return getattr(request.auth, "org_id", None)


def _org(request, slug: str, permission: str | None = None) -> Organization:
    """The caller's organization by slug (a key acts only inside its own: any other is a 404),
    where the caller holds `permission` (else 403 naming it)."""
    org = selectors.org_get(user=request.user, slug=slug)
    key_org = _key_org_id(request)
    if key_org is not None and key_org != org.pk:
        raise errors.OrgNotFound(details={"org": slug})
    if permission is not None:
        actor_in(user=request.user, org=org).require(permission)
    return org


def _render(request, org: Organization) -> dict:
    membership = selectors.membership_get(org=org, user=request.user)
    org.role = membership.role_name if membership else ""
    org.permissions = sorted(selectors.permissions_of(user=request.user, org=org))
    return OrganizationSerializer(org).data


class OrgListView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_list", responses=OrganizationSerializer(many=True))
    def get(self, request):
        orgs = selectors.org_list(user=request.user)
        if _key_org_id(request) is not None:
            orgs = orgs.filter(pk=_key_org_id(request))
        return Response([_render(request, org) for org in orgs])

    @extend_schema(
        operation_id="orgs_create",
        request=OrganizationCreateSerializer,
        responses={201: OrganizationSerializer, **error_responses(409)},
        description="A new organization; the caller is its owner.",
    )
    def post(self, request):
        body = OrganizationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        org = services.org_create(user=request.user, **body.validated_data)
        return Response(_render(request, org), status=201)


class OrgDetailView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_retrieve", responses=OrganizationSerializer)
    def get(self, request, slug):
        return Response(_render(request, _org(request, slug)))

    @extend_schema(
        operation_id="orgs_update",
        request=OrganizationUpdateSerializer,
        responses={200: OrganizationSerializer, **error_responses(409)},
        description="Needs the org.manage permission.",
    )
    def patch(self, request, slug):
        org = _org(request, slug, "org.manage")
        body = OrganizationUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(_render(request, services.org_update(org=org, **body.validated_data)))

    @extend_schema(
        operation_id="orgs_destroy",
        responses={204: None, **error_responses(409)},
        description="Needs org.delete. Refused (409) while it has sandboxes or snapshots, and for a personal one.",
    )
    def delete(self, request, slug):
        org = _org(request, slug, "org.delete")
        services.org_delete(org=org)
        return Response(status=204)


class MemberListView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_members_list", responses=MemberSerializer(many=True))
    def get(self, request, slug):
        org = _org(request, slug)
        return Response(MemberSerializer(selectors.member_list(org=org), many=True).data)

    @extend_schema(
        operation_id="orgs_members_add",
        request=MemberAddSerializer,
        responses={201: MemberSerializer, **error_responses(409)},
        description="Adds an existing user by username or email. Needs members.manage.",
    )
    def post(self, request, slug):
        org = _org(request, slug, "members.manage")
        body = MemberAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        membership = services.member_add(
            org=org, user_ref=data.get("username") or data["email"], role=data["role"], by=request.user
        )
        return Response(MemberSerializer(membership).data, status=201)


class MemberDetailView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(
        operation_id="orgs_members_update",
        request=MemberUpdateSerializer,
        responses={200: MemberSerializer, **error_responses(409)},
        description="Changes a member's role. Needs members.manage; the last owner stays an owner (409 last_owner).",
    )
    def patch(self, request, slug, member_id):
        org = _org(request, slug, "members.manage")
        body = MemberUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = selectors.member_get(org=org, id=member_id)
        return Response(
            MemberSerializer(
                services.member_update(membership=membership, role=body.validated_data["role"], by=request.user)
            ).data
        )

    @extend_schema(
        operation_id="orgs_members_remove",
        responses={204: None, **error_responses(409)},
        description="Removes a member (their keys in this organization stop working). Needs members.manage, "
        "except to leave: anyone may remove themselves. The last owner stays (409 last_owner).",
    )
    def delete(self, request, slug, member_id):
        org = _org(request, slug)
        membership = selectors.member_get(org=org, id=member_id)
        if membership.user_id != request.user.pk:
            actor_in(user=request.user, org=org).require("members.manage")
        services.member_remove(membership=membership, by=request.user)
        return Response(status=204)


def _builtin_roles() -> list[dict]:
    return [
        {"name": name, "built_in": True, "description": "", "permissions": sorted(granted)}
        for name, granted in BUILTIN_ROLES.items()
    ]


def _role(role) -> dict:
    return RoleSerializer(
        {"name": role.name, "built_in": False, "description": role.description, "permissions": role.permissions}
    ).data


class RoleListView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_roles_list", responses=RoleSerializer(many=True))
    def get(self, request, slug):
        org = _org(request, slug)
        custom = [_role(role) for role in selectors.role_list(org=org)]
        return Response([*RoleSerializer(_builtin_roles(), many=True).data, *custom])

    @extend_schema(
        operation_id="orgs_roles_create",
        request=RoleCreateSerializer,
        responses={201: RoleSerializer, **error_responses(409)},
        description="A custom role. Needs members.manage and every permission it grants.",
    )
    def post(self, request, slug):
        org = _org(request, slug, "members.manage")
        body = RoleCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(_role(services.role_create(org=org, by=request.user, **body.validated_data)), status=201)


class RoleDetailView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_roles_retrieve", responses=RoleSerializer)
    def get(self, request, slug, name):
        return Response(_role(selectors.role_get(org=_org(request, slug), name=name)))

    @extend_schema(operation_id="orgs_roles_update", request=RoleUpdateSerializer, responses=RoleSerializer)
    def patch(self, request, slug, name):
        org = _org(request, slug, "members.manage")
        body = RoleUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        role = selectors.role_get(org=org, name=name)
        return Response(_role(services.role_update(role=role, by=request.user, **body.validated_data)))

    @extend_schema(
        operation_id="orgs_roles_destroy",
        responses={204: None, **error_responses(409)},
        description="Refused (409 role_in_use) while a member or team holds it.",
    )
    def delete(self, request, slug, name):
        org = _org(request, slug, "members.manage")
        services.role_delete(role=selectors.role_get(org=org, name=name), by=request.user)
        return Response(status=204)


class TeamListView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_teams_list", responses=TeamSerializer(many=True))
    def get(self, request, slug):
        return Response(TeamSerializer(selectors.team_list(org=_org(request, slug)), many=True).data)

    @extend_schema(
        operation_id="orgs_teams_create",
        request=TeamCreateSerializer,
        responses={201: TeamSerializer, **error_responses(409)},
        description="Members of a team inherit its role. Needs members.manage.",
    )
    def post(self, request, slug):
        org = _org(request, slug, "members.manage")
        body = TeamCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = services.team_create(org=org, by=request.user, **body.validated_data)
        return Response(TeamSerializer(selectors.team_get(org=org, name=team.name)).data, status=201)


class TeamDetailView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_teams_retrieve", responses=TeamSerializer)
    def get(self, request, slug, name):
        return Response(TeamSerializer(selectors.team_get(org=_org(request, slug), name=name)).data)

    @extend_schema(operation_id="orgs_teams_update", request=TeamUpdateSerializer, responses=TeamSerializer)
    def patch(self, request, slug, name):
        org = _org(request, slug, "members.manage")
        body = TeamUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = services.team_update(team=selectors.team_get(org=org, name=name), by=request.user, **body.validated_data)
        return Response(TeamSerializer(selectors.team_get(org=org, name=team.name)).data)

    @extend_schema(operation_id="orgs_teams_destroy", responses={204: None})
    def delete(self, request, slug, name):
        org = _org(request, slug, "members.manage")
        services.team_delete(team=selectors.team_get(org=org, name=name), by=request.user)
        return Response(status=204)


class TeamMemberListView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(
        operation_id="orgs_teams_members_add",
        request=TeamMemberAddSerializer,
        responses={201: TeamSerializer},
        description="Adds a member of the organization to the team.",
    )
    def post(self, request, slug, name):
        org = _org(request, slug, "members.manage")
        body = TeamMemberAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        team = selectors.team_get(org=org, name=name)
        services.team_member_add(team=team, user_ref=body.validated_data["username"], by=request.user)
        return Response(TeamSerializer(selectors.team_get(org=org, name=name)).data, status=201)


class TeamMemberDetailView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(operation_id="orgs_teams_members_remove", responses={204: None})
    def delete(self, request, slug, name, username):
        org = _org(request, slug, "members.manage")
        services.team_member_remove(team=selectors.team_get(org=org, name=name), user_ref=username, by=request.user)
        return Response(status=204)
