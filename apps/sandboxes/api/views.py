from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.models import ApiKey
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes import selectors
from apps.sandboxes.models import Status
from apps.sandboxes.services.create import sandbox_create_from, sandbox_destroy, sandbox_update
from apps.sandboxes.services.network import sandbox_network_update
from vibebox.api.schema import error_responses

from .serializers import (
    NetworkInputSerializer,
    NetworkSerializer,
    SandboxCreateSerializer,
    SandboxSerializer,
    SandboxUpdateSerializer,
    network_representation,
)

READ_WRITE = {
    "GET": [SANDBOXES_READ],
    "POST": [SANDBOXES_WRITE],
    "PATCH": [SANDBOXES_WRITE],
    "DELETE": [SANDBOXES_WRITE],
}

LIST_FILTERS = [
    OpenApiParameter("status", description="Comma-separated statuses (default: all but destroyed)."),
    OpenApiParameter("template", description="Template name."),
    OpenApiParameter("name", description="Exact sandbox name."),
    OpenApiParameter("metadata.<key>", description="Metadata value to match, e.g. metadata.team=ml."),
]


class SandboxListView(GenericAPIView):
    required_scopes = READ_WRITE
    serializer_class = SandboxSerializer

    @extend_schema(operation_id="sandboxes_list", parameters=LIST_FILTERS, responses=SandboxSerializer(many=True))
    def get(self, request):
        params = request.query_params
        statuses = [s for s in params.get("status", "").split(",") if s in Status.values]
        metadata = {key[len("metadata.") :]: value for key, value in params.items() if key.startswith("metadata.")}
        queryset = selectors.sandbox_list(
            actor=actor_of(request),
            status=statuses or None,
            template=params.get("template") or None,
            name=params.get("name") or None,
            metadata=metadata,
        )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(SandboxSerializer(page, many=True).data)

    @extend_schema(
        operation_id="sandboxes_create",
        request=SandboxCreateSerializer,
        responses={201: SandboxSerializer, **error_responses(409, 422)},
    )
    def post(self, request):
        actor = actor_of(request)
        actor.require("sandboxes.create")
        body = SandboxCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sandbox = sandbox_create_from(
            actor=actor,
            owner=request.user,
            api_key=request.auth if isinstance(request.auth, ApiKey) else None,
            data=body.validated_data,
        )
        return Response(SandboxSerializer(sandbox).data, status=201)


class SandboxDetailView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(operation_id="sandboxes_retrieve", responses=SandboxSerializer)
    def get(self, request, sandbox_id):
        return Response(SandboxSerializer(selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)).data)

    @extend_schema(
        operation_id="sandboxes_update",
        request=SandboxUpdateSerializer,
        responses={200: SandboxSerializer, **error_responses(409)},
    )
    def patch(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        body = SandboxUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sandbox = sandbox_update(sandbox=sandbox, **_update_fields(body.validated_data))
        return Response(SandboxSerializer(sandbox).data)

    @extend_schema(operation_id="sandboxes_destroy", responses={204: None})
    def delete(self, request, sandbox_id):
        sandbox_destroy(sandbox=selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE))
        return Response(status=204)


def _update_fields(data: dict) -> dict:
    names = {
        "name": "name",
        "metadata": "metadata",
        "timeout": "timeout",
        "autoPause": "auto_pause",
        "autoResume": "auto_resume",
        "pauseStopsTimeout": "pause_stops_timeout",
    }
    return {python: data[api] for api, python in names.items() if api in data}


class SandboxActionView(APIView):
    """POST /sandboxes/{id}/start|stop|restart|pause|resume."""

    required_scopes = {"POST": [SANDBOXES_WRITE]}
    action_service = None

    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        sandbox = type(self).action_service(sandbox=sandbox)
        return Response(SandboxSerializer(sandbox).data)


def action_view(service, name: str):
    def post(self, request, sandbox_id):
        return SandboxActionView.post(self, request, sandbox_id)

    post = extend_schema(
        operation_id=f"sandboxes_{name}",
        description=f"{name.title()}s the sandbox and answers it (409 sandbox_state_conflict from a state that "
        "does not allow it).",
        request=None,
        responses={200: SandboxSerializer, **error_responses(409)},
    )(post)
    attributes = {"action_service": staticmethod(service), "post": post}
    return type(f"Sandbox{name.title()}View", (SandboxActionView,), attributes).as_view()


class SandboxNetworkView(APIView):
    """The sandbox's egress policy (docs/api.md, "Network policy")."""

    required_scopes = {"GET": [SANDBOXES_READ], "PATCH": [SANDBOXES_WRITE]}

    @extend_schema(operation_id="sandboxes_network_retrieve", responses=NetworkSerializer)
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(network_representation(sandbox))

    @extend_schema(
        operation_id="sandboxes_network_update",
        request=NetworkInputSerializer,
        responses={200: NetworkSerializer, **error_responses(409)},
        description="The keys given replace the sandbox's; in force for new connections before the answer.",
    )
    def patch(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        body = NetworkInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sandbox = sandbox_network_update(sandbox=sandbox, changes=body.validated_data)
        return Response(network_representation(sandbox))
