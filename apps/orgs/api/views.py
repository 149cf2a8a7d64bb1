from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from .. import export, selectors, services
from ..actors import actor_in
from ..models import Organization
from ..permissions import BUILTIN_ROLES
from .serializers import (
    InvitationAcceptSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberAddSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    OrganizationCreateSerializer,
    OrganizationEraseSerializer,
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
        description="Needs the org.manage permission. `registryMirrors` changes the package registry mirrors "
        "it names (a null URL removes one); `nodeLabels` replaces the node labels every new sandbox's engine must "
        'have ({} clears them; docs/nodes.md, "Placement"); audited as org.updated.',
    )
    def patch(self, request, slug):
        org = _org(request, slug, "org.manage")
        body = OrganizationUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        if "registryMirrors" in data:
            data["registry_mirrors"] = data.pop("registryMirrors")
        if "nodeLabels" in data:
            data["node_labels"] = data.pop("nodeLabels")
        return Response(_render(request, services.org_update(org=org, **data)))

    @extend_schema(
        operation_id="orgs_destroy",
        responses={204: None, **error_responses(409)},
        description="Needs org.delete. Refused (409) while it has sandboxes or snapshots, and for a personal one.",
    )
    def delete(self, request, slug):
        org = _org(request, slug, "org.delete")
        services.org_delete(org=org)
        return Response(status=204)


class OrgExportView(APIView):
    required_scopes = {"GET": [ORGS_MANAGE]}

    @extend_schema(
        operation_id="orgs_export",
        responses={(200, "application/x-ndjson"): OpenApiTypes.BINARY},
        description="Needs org.manage (a key: orgs:manage). Every row of the organization, streamed as JSON lines: "
        "a header line, the organization, its members' user names and emails, then each model's rows "
        '(`{"model", "pk", "fields"}`, secrets written as "[redacted]"), then its audit log with hashes. '
        "See docs/compliance.md.",
    )
    def get(self, request, slug):
        return export.download(_org(request, slug, "org.manage"))


class OrgEraseView(APIView):
    required_scopes = {"POST": [ORGS_MANAGE]}

    @extend_schema(
        operation_id="orgs_erase",
        request=OrganizationEraseSerializer,
        responses={204: None, **error_responses(409)},
        description="Needs org.delete. Deletion on request: destroys every sandbox of the organization, deletes "
        "its snapshots, revokes its keys and removes its rows; its audit log is kept until retention removes it. "
        "`confirm` repeats the slug (else 400, field code confirm_mismatch). Refused (409) for a personal "
        "organization, and before anything is destroyed when something erasure does not remove holds it "
        "(org_not_empty, details.blocking: issued invoices). See docs/compliance.md.",
    )
    def post(self, request, slug):
        org = _org(request, slug, "org.delete")
        body = OrganizationEraseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.org_erase(org=org, confirm=body.validated_data["confirm"])
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


def _not_builtin(name: str) -> None:
    if name in BUILTIN_ROLES:
        raise errors.RoleBuiltIn(details={"role": name})


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
        org = _org(request, slug)
        if name in BUILTIN_ROLES:
            return Response(RoleSerializer(next(r for r in _builtin_roles() if r["name"] == name)).data)
        return Response(_role(selectors.role_get(org=org, name=name)))

    @extend_schema(
        operation_id="orgs_roles_update",
        request=RoleUpdateSerializer,
        responses={200: RoleSerializer, **error_responses(409)},
        description="A custom role's permissions change for every holder at once; a built-in role: 409 role_built_in.",
    )
    def patch(self, request, slug, name):
        org = _org(request, slug, "members.manage")
        _not_builtin(name)
        body = RoleUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        role = selectors.role_get(org=org, name=name)
        return Response(_role(services.role_update(role=role, by=request.user, **body.validated_data)))

    @extend_schema(
        operation_id="orgs_roles_destroy",
        responses={204: None, **error_responses(409)},
        description="Refused (409 role_in_use) while a member or team holds it; a built-in role: 409 role_built_in.",
    )
    def delete(self, request, slug, name):
        org = _org(request, slug, "members.manage")
        _not_builtin(name)
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


def _base_url(request) -> str:
    """The origin the request came to: an invitation link's, unless VIBEBOX_PUBLIC_URL says it."""
    return request.build_absolute_uri("/")


class InvitationListView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(
        operation_id="orgs_invitations_list",
        responses=InvitationSerializer(many=True),
        description="The pending invitations (expired ones too, until revoked or sent again). Needs members.manage.",
    )
    def get(self, request, slug):
        org = _org(request, slug, "members.manage")
        return Response(InvitationSerializer(selectors.invitation_list(org=org), many=True).data)

    @extend_schema(
        operation_id="orgs_invitations_create",
        request=InvitationCreateSerializer,
        responses={201: InvitationSerializer, 200: InvitationSerializer, **error_responses(409)},
        description="Invites an email address with a role and emails it a signed link (/invitations/{token}). "
        "Needs members.manage and every permission of the role. The address invited already: that "
        "invitation is sent again with this role and a fresh expiry (200). A member already: 409 already_member.",
    )
    def post(self, request, slug):
        org = _org(request, slug, "members.manage")
        body = InvitationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation, created = services.invitation_create(
            org=org, by=request.user, base_url=_base_url(request), **body.validated_data
        )
        return Response(InvitationSerializer(invitation).data, status=201 if created else 200)


class InvitationDetailView(APIView):
    required_scopes = READ_MANAGE

    @extend_schema(
        operation_id="orgs_invitations_revoke",
        responses={204: None},
        description="Revokes a pending invitation: its link stops working. Needs members.manage.",
    )
    def delete(self, request, slug, invitation_id):
        org = _org(request, slug, "members.manage")
        services.invitation_revoke(invitation=selectors.invitation_get(org=org, id=invitation_id), by=request.user)
        return Response(status=204)


class InvitationResendView(APIView):
    required_scopes = {"POST": [ORGS_MANAGE]}

    @extend_schema(
        operation_id="orgs_invitations_resend",
        request=None,
        responses=InvitationSerializer,
        description="Sends a pending invitation's email again, with a fresh expiry. Needs members.manage.",
    )
    def post(self, request, slug, invitation_id):
        org = _org(request, slug, "members.manage")
        invitation = selectors.invitation_get(org=org, id=invitation_id)
        services.invitation_resend(invitation=invitation, by=request.user, base_url=_base_url(request))
        return Response(InvitationSerializer(invitation).data)


class InvitationAcceptView(APIView):
    required_scopes = {"POST": [ORGS_MANAGE]}

    @extend_schema(
        operation_id="invitations_accept",
        request=InvitationAcceptSerializer,
        responses={200: OrganizationSerializer, **error_responses(404, 409, 410)},
        description="The caller joins the organization with the invited role; answers the organization. "
        "The caller's email must be the invited address (403 invitation_email_mismatch) unless the server "
        "allows any; a wrong or revoked link is 404 invitation_not_found, an expired one 410 "
        "invitation_expired, one used already 410 invitation_accepted.",
    )
    def post(self, request):
        body = InvitationAcceptSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation = selectors.invitation_by_token(token=body.validated_data["token"])
        services.invitation_accept(invitation=invitation, user=request.user)
        return Response(_render(request, invitation.org))
