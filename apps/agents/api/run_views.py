"""/api/v1/agent-runs: the records of orchestration runs and their tasks (docs/api.md, "Agent runs")."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.models import ApiKey
from apps.sandboxes import selectors as sandbox_selectors
from apps.sandboxes.api.views import READ_WRITE
from vibebox.api.schema import error_responses

from .. import runs
from ..models import AgentRun
from .run_serializers import (
    AgentRunCreateSerializer,
    AgentRunSerializer,
    AgentRunSummarySerializer,
    AgentRunUpdateSerializer,
    AgentTaskListSerializer,
    AgentTasksAddSerializer,
    AgentTaskSerializer,
    AgentTaskUpdateSerializer,
)

LIST_FILTERS = [
    OpenApiParameter("status", description="Comma-separated statuses: running, completed, failed, cancelled."),
    OpenApiParameter("kind", description="map, task, pool, orchestrate or stream."),
    OpenApiParameter("template", description="Template name."),
    OpenApiParameter("name", description="Exact run name."),
    OpenApiParameter("metadata.<key>", description="Metadata value to match, e.g. metadata.team=ml."),
]


def _key(request):
    return request.auth if isinstance(request.auth, ApiKey) else None


def _run(request, run_id) -> AgentRun:
    """Reading a run needs what reading its owner's sandbox would; changing it, what using one would."""
    need = sandbox_selectors.READ if request.method in ("GET", "HEAD") else sandbox_selectors.USE
    return runs.agent_run_get(actor=actor_of(request), run_id=run_id, need=need)


def _full(request, run_id) -> dict:
    run = _run(request, run_id)
    return AgentRunSerializer(run, context={"tasks": runs.agent_run_tasks(run)}).data


class AgentRunListView(GenericAPIView):
    required_scopes = READ_WRITE
    serializer_class = AgentRunSummarySerializer

    @extend_schema(
        operation_id="agent_runs_list", parameters=LIST_FILTERS, responses=AgentRunSummarySerializer(many=True)
    )
    def get(self, request):
        params = request.query_params
        statuses = [s for s in params.get("status", "").split(",") if s in AgentRun.Status.values]
        metadata = {key[len("metadata.") :]: value for key, value in params.items() if key.startswith("metadata.")}
        queryset = runs.agent_run_list(
            actor=actor_of(request),
            status=statuses or None,
            kind=params.get("kind") or None,
            template=params.get("template") or None,
            name=params.get("name") or None,
            metadata=metadata,
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(AgentRunSummarySerializer(page, many=True).data)

    @extend_schema(
        operation_id="agent_runs_create", request=AgentRunCreateSerializer, responses={201: AgentRunSerializer}
    )
    def post(self, request):
        actor = actor_of(request)
        actor.require("sandboxes.create")
        body = AgentRunCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = runs.agent_run_create_from(
            actor=actor, owner=request.user, api_key=_key(request), data=body.validated_data
        )
        return Response(_full(request, run.id), status=201)


class AgentRunDetailView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(operation_id="agent_runs_retrieve", responses=AgentRunSerializer)
    def get(self, request, run_id):
        return Response(_full(request, run_id))

    @extend_schema(
        operation_id="agent_runs_update",
        request=AgentRunUpdateSerializer,
        responses={200: AgentRunSerializer, **error_responses(409)},
    )
    def patch(self, request, run_id):
        run = _run(request, run_id)
        body = AgentRunUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        runs.agent_run_finish_from(run=run, data=body.validated_data)
        return Response(_full(request, run_id))

    @extend_schema(operation_id="agent_runs_destroy", responses={204: None})
    def delete(self, request, run_id):
        runs.agent_run_delete(run=_run(request, run_id))
        return Response(status=204)


class AgentTaskListView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(
        operation_id="agent_runs_tasks_create",
        request=AgentTasksAddSerializer,
        responses={201: AgentTaskListSerializer, **error_responses(409)},
    )
    def post(self, request, run_id):
        run = _run(request, run_id)
        body = AgentTasksAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        added = runs.agent_tasks_add_from(run=run, data=body.validated_data)
        return Response(AgentTaskListSerializer({"tasks": added}).data, status=201)


class AgentTaskDetailView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(operation_id="agent_runs_tasks_retrieve", responses=AgentTaskSerializer)
    def get(self, request, run_id, task_id):
        return Response(AgentTaskSerializer(runs.agent_task_get(run=_run(request, run_id), task_id=task_id)).data)

    @extend_schema(
        operation_id="agent_runs_tasks_update",
        request=AgentTaskUpdateSerializer,
        responses={200: AgentTaskSerializer, **error_responses(409, 413)},
    )
    def patch(self, request, run_id, task_id):
        task = runs.agent_task_get(run=_run(request, run_id), task_id=task_id)
        body = AgentTaskUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(AgentTaskSerializer(runs.agent_task_update_from(task=task, data=body.validated_data)).data)
