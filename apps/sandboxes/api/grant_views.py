"""GET/POST /sandboxes/{id}/grants, DELETE /sandboxes/{id}/grants/{grantId}: sharing a sandbox
with a member or a team of its organization (docs/api.md, Sharing a sandbox)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.sandboxes import selectors
from apps.sandboxes.services import grants

from .serializers import GrantSerializer, GrantSetSerializer
from .views import READ_WRITE


class GrantListView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(
        operation_id="sandboxes_grants_list",
        responses=GrantSerializer(many=True),
        description="The sandbox's grants, oldest first. Needs what reading the sandbox needs.",
    )
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(GrantSerializer(selectors.grant_list(sandbox=sandbox), many=True).data)

    @extend_schema(
        operation_id="sandboxes_grants_set",
        request=GrantSetSerializer,
        responses={200: GrantSerializer, 201: GrantSerializer},
        description="Shares the sandbox with a member (username or email) or a team of its organization at "
        "`access` (201); for one that holds a grant already, changes its level (200). Needs what managing the "
        "sandbox needs; someone who is not a member is 404 member_not_found, an unknown team 404 team_not_found.",
    )
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        body = GrantSetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        grant, created = grants.grant_set(
            sandbox=sandbox, access=data["access"], user_ref=data.get("user"), team=data.get("team"), by=request.user
        )
        grant = selectors.grant_get(sandbox=sandbox, grant_id=grant.pk)
        return Response(GrantSerializer(grant).data, status=201 if created else 200)


class GrantDetailView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(
        operation_id="sandboxes_grants_destroy",
        responses={204: None},
        description="Revokes a grant. Needs what managing the sandbox needs, except for one's own grant: "
        "anyone may give theirs up.",
    )
    def delete(self, request, sandbox_id, grant_id):
        actor = actor_of(request)
        sandbox = selectors.sandbox_get(actor=actor, ref=sandbox_id)
        grant = selectors.grant_get(sandbox=sandbox, grant_id=grant_id)
        if grant.user_id != actor.user.pk:
            selectors.check_access(actor, owner_id=sandbox.owner_id, need=selectors.MANAGE, sandbox_id=sandbox.pk)
        grants.grant_delete(grant=grant)
        return Response(status=204)
