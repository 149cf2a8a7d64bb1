from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.sandboxes import selectors
from apps.sandboxes.services import snapshots
from vibebox.api.schema import error_responses

from .schema import SnapshotListSerializer
from .serializers import SandboxSerializer, SnapshotCreateSerializer, SnapshotRestoreSerializer, SnapshotSerializer
from .views import READ_WRITE


class SandboxSnapshotsView(APIView):
    """POST: snapshot the sandbox (its filesystem and workspace); GET: its snapshots."""

    required_scopes = READ_WRITE

    @extend_schema(operation_id="snapshots_of_sandbox", responses=SnapshotListSerializer)
    def get(self, request, sandbox_id):
        actor = actor_of(request)
        sandbox = selectors.sandbox_get(actor=actor, ref=sandbox_id)
        items = selectors.snapshot_list(actor=actor, sandbox=sandbox)
        return Response(SnapshotListSerializer({"results": items}).data)

    @extend_schema(
        operation_id="snapshots_create",
        request=SnapshotCreateSerializer,
        responses={201: SnapshotSerializer, **error_responses(409)},
    )
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        body = SnapshotCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        snapshot = snapshots.snapshot_create(sandbox=sandbox, name=body.validated_data.get("name", ""))
        return Response(SnapshotSerializer(snapshot).data, status=201)


class SandboxRestoreView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(
        operation_id="sandboxes_restore",
        request=SnapshotRestoreSerializer,
        responses={200: SandboxSerializer, **error_responses(409)},
    )
    def post(self, request, sandbox_id):
        actor = actor_of(request)
        sandbox = selectors.sandbox_get(actor=actor, ref=sandbox_id, need=selectors.MANAGE)
        body = SnapshotRestoreSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        snapshot = selectors.snapshot_get(actor=actor, snapshot_id=body.validated_data["snapshot"])
        return Response(SandboxSerializer(snapshots.snapshot_restore(sandbox=sandbox, snapshot=snapshot)).data)


class SnapshotListView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(operation_id="snapshots_list", responses=SnapshotListSerializer)
    def get(self, request):
        items = selectors.snapshot_list(actor=actor_of(request))
        return Response(SnapshotListSerializer({"results": items}).data)


class SnapshotDetailView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(operation_id="snapshots_get", responses=SnapshotSerializer)
    def get(self, request, snapshot_id):
        return Response(
            SnapshotSerializer(selectors.snapshot_get(actor=actor_of(request), snapshot_id=snapshot_id)).data
        )

    @extend_schema(operation_id="snapshots_delete", responses={204: None})
    def delete(self, request, snapshot_id):
        actor = actor_of(request)
        snapshots.snapshot_delete(
            snapshot=selectors.snapshot_get(actor=actor, snapshot_id=snapshot_id, need=selectors.MANAGE)
        )
        return Response(status=204)
