"""Code contexts (docs/api.md, "Code contexts"): /api/v1/sandboxes/{id}/contexts[/{ctx}[/execute|interrupt|restart]]."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.models import ApiKey
from apps.keys.scopes import EXECUTE, SANDBOXES_READ
from apps.sandboxes import contexts, selectors
from vibebox.api.schema import error_responses
from vibebox.api.serializers import DurationField, StrictSerializer

CONTEXT_STATUSES = ["idle", "busy", "dead"]


class ContextCreateSerializer(StrictSerializer):
    language = serializers.ChoiceField(choices=list(contexts.LANGUAGES))
    cwd = serializers.CharField(
        required=False, allow_blank=True, allow_null=True,
        help_text="The kernel's working directory (relative: to the template's workdir).",
    )  # fmt: skip


class ContextExecuteSerializer(StrictSerializer):
    code = serializers.CharField(trim_whitespace=False)
    timeout = DurationField(
        maximum="VIBEBOX_EXEC_MAX_TIMEOUT", required=False, allow_null=True,
        help_text="Seconds or '30s' (default VIBEBOX_EXEC_DEFAULT_TIMEOUT; 0 = the server maximum); then the "
        "code is interrupted (error TimeoutError) and the state stays.",
    )  # fmt: skip


class ContextSerializer(serializers.Serializer):
    # renders an apps.sandboxes.contexts.ContextView
    id = serializers.CharField(help_text="ctx_…")
    language = serializers.ChoiceField(choices=list(contexts.LANGUAGES))
    cwd = serializers.CharField()
    status = serializers.ChoiceField(
        choices=CONTEXT_STATUSES, help_text="dead: its kernel is gone (the sandbox stopped, or it died); restart it."
    )
    executionCount = serializers.IntegerField(source="execution_count")
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at")


class ContextListSerializer(serializers.Serializer):
    contexts = ContextSerializer(many=True)


class ContextResultSerializer(serializers.Serializer):
    data = serializers.DictField(
        help_text="By MIME type: text/plain, text/html, image/png (base64), image/svg+xml, application/json, "
        "text/markdown."
    )
    isMainResult = serializers.BooleanField(help_text="The value of the code's last expression.")


class ContextErrorSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The exception's class: ZeroDivisionError, KeyboardInterrupt, TimeoutError…")
    value = serializers.CharField()
    traceback = serializers.CharField()


class ContextExecutionSerializer(serializers.Serializer):
    # renders an apps.sandboxes.contexts.ContextOutcome
    executionId = serializers.CharField(source="execution_id", help_text="Its record: GET …/executions/{id}.")
    results = ContextResultSerializer(many=True)
    stdout = serializers.CharField(allow_blank=True)
    stderr = serializers.CharField(allow_blank=True)
    truncated = serializers.BooleanField(help_text="Output, a result or results beyond the server's caps left out.")
    error = ContextErrorSerializer(allow_null=True)
    executionCount = serializers.IntegerField(source="execution_count")
    durationMs = serializers.IntegerField(source="duration_ms")


def _key(request):
    return request.auth if isinstance(request.auth, ApiKey) else None


def _context(request, sandbox_id, context_id, need=selectors.USE):
    sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=need)
    return contexts.context_get(sandbox=sandbox, id=context_id)


class ContextListView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ], "POST": [EXECUTE]}

    @extend_schema(operation_id="sandboxes_contexts_list", responses=ContextListSerializer)
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(ContextListSerializer({"contexts": contexts.context_list(sandbox=sandbox)}).data)

    @extend_schema(
        operation_id="sandboxes_contexts_create",
        request=ContextCreateSerializer,
        responses={201: ContextSerializer, **error_responses(409, 429)},
        description="Starts a kernel (python or javascript) that keeps variables, imports and state between executes.",
    )
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        body = ContextCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        context = contexts.context_create(sandbox=sandbox, language=data["language"], cwd=data.get("cwd") or None)
        return Response(ContextSerializer(context).data, status=201)


class ContextDetailView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ], "DELETE": [EXECUTE]}

    @extend_schema(operation_id="sandboxes_contexts_retrieve", responses=ContextSerializer)
    def get(self, request, sandbox_id, context_id):
        context = _context(request, sandbox_id, context_id, need=selectors.READ)
        return Response(ContextSerializer(contexts.context_view(context)).data)

    @extend_schema(operation_id="sandboxes_contexts_destroy", responses={204: None})
    def delete(self, request, sandbox_id, context_id):
        """Ends the kernel; its state is gone."""
        contexts.context_delete(context=_context(request, sandbox_id, context_id))
        return Response(status=204)


class ContextExecuteView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(
        operation_id="sandboxes_contexts_execute",
        request=ContextExecuteSerializer,
        responses={200: ContextExecutionSerializer, **error_responses(409, 413)},
        description="Runs code in the context: 200 whatever the code does (an exception is `error`). "
        "409 context_dead when its kernel is gone.",
    )
    def post(self, request, sandbox_id, context_id):
        context = _context(request, sandbox_id, context_id)
        body = ContextExecuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        outcome = contexts.context_execute(
            context=context, code=data["code"], timeout=data.get("timeout"), api_key=_key(request)
        )
        return Response(ContextExecutionSerializer(outcome).data)


class ContextInterruptView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(
        operation_id="sandboxes_contexts_interrupt",
        request=None,
        responses={200: ContextSerializer, **error_responses(409)},
        description="SIGINT to the kernel: running code ends with a KeyboardInterrupt error; the state stays.",
    )
    def post(self, request, sandbox_id, context_id):
        context = contexts.context_interrupt(context=_context(request, sandbox_id, context_id))
        return Response(ContextSerializer(context).data)


class ContextRestartView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(
        operation_id="sandboxes_contexts_restart",
        request=None,
        responses={200: ContextSerializer, **error_responses(409)},
        description="A new kernel: every variable is gone (also brings a dead context back).",
    )
    def post(self, request, sandbox_id, context_id):
        context = contexts.context_restart(context=_context(request, sandbox_id, context_id))
        return Response(ContextSerializer(context).data)
