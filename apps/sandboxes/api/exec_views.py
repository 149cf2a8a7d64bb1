from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.models import ApiKey
from apps.keys.scopes import EXECUTE, SANDBOXES_READ
from apps.sandboxes import logs, processes, selectors, terminals
from apps.sandboxes.services.exec import sandbox_exec_from, sandbox_execute_from
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from .schema import (
    BackgroundProcessSerializer,
    LogsSerializer,
    ProcessListSerializer,
    ProcessSerializer,
    TerminalListSerializer,
)
from .serializers import (
    ExecResultSerializer,
    ExecSerializer,
    ExecuteResultSerializer,
    ExecuteSerializer,
    ExecutionDetailSerializer,
    ExecutionSerializer,
)


def _key(request):
    return request.auth if isinstance(request.auth, ApiKey) else None


class ExecView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(
        operation_id="sandboxes_exec",
        request=ExecSerializer,
        responses={200: ExecResultSerializer, 202: BackgroundProcessSerializer, **error_responses(409, 413)},
        description="Runs a command and answers its result (200, whatever its exit code); with `background: true` "
        "answers 202 at once and the command runs on (GET processes, WS processes/{processId}).",
    )
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        body = ExecSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data["background"]:
            process = processes.process_start_from(sandbox=sandbox, api_key=_key(request), data=data)
            return Response(BackgroundProcessSerializer(processes.started_answer(process)).data, status=202)
        outcome = sandbox_exec_from(sandbox=sandbox, api_key=_key(request), data=data)
        return Response(ExecResultSerializer(outcome).data)


class ExecuteView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(
        operation_id="sandboxes_execute",
        request=ExecuteSerializer,
        responses={200: ExecuteResultSerializer, **error_responses(409, 413)},
    )
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        body = ExecuteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        outcome = sandbox_execute_from(sandbox=sandbox, api_key=_key(request), data=data)
        return Response(ExecuteResultSerializer(outcome).data)


class ExecutionListView(GenericAPIView):
    required_scopes = {"GET": [SANDBOXES_READ]}
    serializer_class = ExecutionSerializer

    @extend_schema(operation_id="sandboxes_executions_list", responses=ExecutionSerializer(many=True))
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        page = self.paginate_queryset(selectors.execution_list(sandbox=sandbox))
        return self.get_paginated_response(ExecutionSerializer(page, many=True).data)


class ExecutionDetailView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(operation_id="sandboxes_executions_retrieve", responses=ExecutionDetailSerializer)
    def get(self, request, sandbox_id, execution_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(ExecutionDetailSerializer(selectors.execution_get(sandbox=sandbox, id=execution_id)).data)


class LogsView(APIView):
    """GET /sandboxes/{id}/logs?since=1h&tail=100&stream=stdout|stderr|all&events=1"""

    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(
        operation_id="sandboxes_logs",
        parameters=[
            OpenApiParameter("since", description="A duration back from now ('1h') or a unix timestamp."),
            OpenApiParameter("tail", description="The last N entries (default 100; at most 100000), or 'all'."),
            OpenApiParameter("stream", enum=["stdout", "stderr", "all"], description="Default all."),
            OpenApiParameter("events", description="0 or false leaves out VibeBox's events (default: included)."),
        ],
        responses={200: LogsSerializer, **error_responses(400)},
    )
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        params = request.query_params
        stream = params.get("stream", "all")
        if stream not in ("stdout", "stderr", "all"):
            raise errors.ValidationFailed("stream is stdout, stderr or all.")
        entries = logs.read(
            sandbox=sandbox,
            since=logs.parse_since(params.get("since")),
            tail=logs.parse_tail(params.get("tail", "100")),
            streams=logs.STREAMS if stream == "all" else (stream,),
            include_events=params.get("events", "1") not in ("0", "false"),
        )
        return Response(LogsSerializer({"logs": entries}).data)


class ProcessListView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(operation_id="sandboxes_processes_list", responses=ProcessListSerializer)
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(ProcessListSerializer({"processes": processes.process_list(sandbox=sandbox)}).data)


class ProcessKillView(APIView):
    required_scopes = {"POST": [EXECUTE]}

    @extend_schema(operation_id="sandboxes_processes_kill", request=None, responses=ProcessSerializer)
    def post(self, request, sandbox_id, process_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        return Response(ProcessSerializer(processes.process_kill(sandbox=sandbox, id=process_id)).data)


class TerminalListView(APIView):
    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(operation_id="sandboxes_terminals_list", responses=TerminalListSerializer)
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(TerminalListSerializer({"terminals": terminals.terminal_list(sandbox=sandbox)}).data)


class TerminalDetailView(APIView):
    required_scopes = {"DELETE": [EXECUTE]}

    @extend_schema(operation_id="sandboxes_terminals_destroy", responses={204: None})
    def delete(self, request, sandbox_id, session_id):
        """Ends the terminal and everything it started; its clients get its exit."""
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        terminals.terminal_kill(sandbox=sandbox, id=session_id)
        return Response(status=204)
