"""/api/v1/sandboxes/{id}/claude/…: enable, status, asks, sessions, review (docs/claude.md)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.models import ApiKey
from apps.keys.scopes import EXECUTE, SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes import selectors as sandbox_selectors
from apps.sandboxes.api.access import read_guard
from vibebox.api.schema import error_responses

from .. import asks, changes, selectors, setup
from .serializers import (
    AskSerializer,
    ChangeSetListSerializer,
    ClaudeAskListSerializer,
    ClaudeAskSerializer,
    ClaudeAskStartedSerializer,
    ClaudeEnabledSerializer,
    ClaudeSessionDetailSerializer,
    ClaudeSessionListSerializer,
    ClaudeSetupUpdateSerializer,
    ClaudeStatusSerializer,
    EnableSerializer,
    ReviewResultSerializer,
    ReviewSerializer,
)


def _key(request):
    return request.auth if isinstance(request.auth, ApiKey) else None


def _sandbox(request, sandbox_id):
    """Claude Code works in the sandbox: reading its sessions and changes needs what reading the
    sandbox does, everything else what running commands in it does."""
    need = sandbox_selectors.READ if request.method in ("GET", "HEAD") else sandbox_selectors.USE
    return sandbox_selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=need)


def _truthy(value) -> bool:
    return str(value).lower() in ("1", "true", "yes")


class EnableView(APIView):
    required_scopes = {"POST": [SANDBOXES_WRITE]}

    @extend_schema(
        operation_id="claude_enable",
        request=EnableSerializer,
        responses={
            200: ClaudeEnabledSerializer,
            201: ClaudeEnabledSerializer,
            **error_responses(409),
        },
        description=(
            "201 the first time, 200 when it was enabled already (the gateway token and the MCP key are"
            " replaced). With `mcp`, the key the sandbox's MCP server acts with is never broader than the"
            " calling key, expires with the sandbox, and is revoked when the sandbox is destroyed."
        ),
    )
    def post(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        body = EnableSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        found, created = setup.claude_enable(
            sandbox=sandbox,
            api_key=_key(request),
            anthropic_api_key=data.get("anthropicApiKey", ""),
            mcp=data["mcp"],
        )
        return Response(ClaudeEnabledSerializer(found).data, status=201 if created else 200)


class StatusView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ], "PATCH": [SANDBOXES_WRITE]}

    @extend_schema(operation_id="claude_status", responses=ClaudeStatusSerializer)
    def get(self, request, sandbox_id):
        return Response(ClaudeStatusSerializer(setup.claude_status(_sandbox(request, sandbox_id))).data)

    @extend_schema(
        operation_id="claude_setup_update",
        request=ClaudeSetupUpdateSerializer,
        responses={200: ClaudeStatusSerializer, **error_responses(409)},
        description=(
            "Changes the sandbox's Claude setup without enabling again: the collaboration `mode`, the"
            " asks' default `model` and `permissionMode`, and whose Anthropic key pays. Only the fields"
            " given change; each change is an audit entry (`claude.updated`). MCP servers change by"
            " enabling again. 409 claude_not_enabled before enable."
        ),
    )
    def patch(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        body = ClaudeSetupUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        setup.claude_setup_update_from(sandbox=sandbox, data=body.validated_data)
        return Response(ClaudeStatusSerializer(setup.claude_status(sandbox)).data)


class AskView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(
        operation_id="claude_ask",
        request=AskSerializer,
        responses={202: ClaudeAskStartedSerializer, **error_responses(409)},
    )
    def post(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        body = AskSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        ask = asks.ask_start_from(sandbox=sandbox, api_key=_key(request), data=data)
        return Response(ClaudeAskStartedSerializer(ask).data, status=202)


class AskListView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(
        operation_id="claude_asks_list",
        parameters=[OpenApiParameter("sessionId", description="Only this session's asks.")],
        responses=ClaudeAskListSerializer,
    )
    def get(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        found = selectors.ask_list(sandbox=sandbox, session_id=request.query_params.get("sessionId"))[:200]
        return Response(ClaudeAskListSerializer({"data": found}).data)


class AskDetailView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(operation_id="claude_asks_retrieve", responses=ClaudeAskSerializer)
    def get(self, request, sandbox_id, ask_id):
        sandbox = _sandbox(request, sandbox_id)
        return Response(ClaudeAskSerializer(selectors.ask_get(sandbox=sandbox, ask_id=ask_id)).data)


class AskCancelView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(
        operation_id="claude_asks_cancel",
        request=None,
        responses={200: ClaudeAskSerializer, 202: ClaudeAskSerializer},
        description="200 with the ask once it has ended; 202 while it is still being stopped.",
    )
    def post(self, request, sandbox_id, ask_id):
        sandbox = _sandbox(request, sandbox_id)
        ask = asks.ask_cancel(ask=selectors.ask_get(sandbox=sandbox, ask_id=ask_id))
        return Response(ClaudeAskSerializer(ask).data, status=202 if ask.status == "running" else 200)


class SessionListView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(operation_id="claude_sessions_list", responses=ClaudeSessionListSerializer)
    def get(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        return Response(ClaudeSessionListSerializer({"data": selectors.session_list(sandbox=sandbox)[:200]}).data)


class SessionDetailView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(
        operation_id="claude_sessions_retrieve",
        parameters=[OpenApiParameter("transcript", bool, description="Include Claude's own transcript file.")],
        responses=ClaudeSessionDetailSerializer,
    )
    def get(self, request, sandbox_id, session_id):
        sandbox = _sandbox(request, sandbox_id)
        session = selectors.session_get(sandbox=sandbox, session_id=session_id)
        context = {}
        if _truthy(request.query_params.get("transcript")):
            read_guard(request, sandbox)  # reading it needs the sandbox unfrozen, and a read never resumes
            context["transcript"] = selectors.transcript(sandbox, session)
        return Response(ClaudeSessionDetailSerializer(session, context=context).data)


class ChangesView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(
        operation_id="claude_changes_list",
        parameters=[
            OpenApiParameter("sessionId", description="Only this session's change sets."),
            OpenApiParameter("status", description="pending (default), approved, rejected or all."),
            OpenApiParameter("diff", bool, description="Include each change set's unified diff (default true)."),
        ],
        responses=ChangeSetListSerializer,
    )
    def get(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        params = request.query_params
        status = params.get("status", "pending")
        found = changes.change_sets(
            sandbox=sandbox, session_id=params.get("sessionId"), status=None if status == "all" else status
        )
        with_diff = params.get("diff", "true").lower() not in ("0", "false", "no")
        if with_diff:
            read_guard(request, sandbox)  # diffs run git in the sandbox; a read never resumes it
        found = list(found[:100])
        diffs = {c.id: changes.change_diff(sandbox, c) for c in found} if with_diff else {}
        return Response(ChangeSetListSerializer({"data": found}, context={"diffs": diffs}).data)


class ReviewView(APIView):
    required_scopes = {"POST": [EXECUTE]}
    approve = True

    def post(self, request, sandbox_id):
        sandbox = _sandbox(request, sandbox_id)
        body = ReviewSerializer(data=request.data or {})
        body.is_valid(raise_exception=True)
        action = changes.changes_approve if self.approve else changes.changes_reject
        done = action(sandbox=sandbox, session_id=body.validated_data.get("sessionId"), api_key=_key(request))
        status = "approved" if self.approve else "rejected"
        return Response(ReviewResultSerializer({"status": status, "change_sets": done}).data)


class ApproveView(ReviewView):
    approve = True

    @extend_schema(
        operation_id="claude_changes_approve",
        request=ReviewSerializer,
        responses={200: ReviewResultSerializer, **error_responses(409)},
    )
    def post(self, request, sandbox_id):
        return super().post(request, sandbox_id)


class RejectView(ReviewView):
    approve = False

    @extend_schema(
        operation_id="claude_changes_reject",
        request=ReviewSerializer,
        responses={200: ReviewResultSerializer, **error_responses(409)},
    )
    def post(self, request, sandbox_id):
        return super().post(request, sandbox_id)
