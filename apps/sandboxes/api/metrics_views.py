from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes import metrics, selectors
from vibebox.api.schema import error_responses


class CpuMetricsSerializer(serializers.Serializer):
    percent = serializers.FloatField(allow_null=True, help_text="CPU use in % of one core (200 = two cores busy).")
    limit = serializers.FloatField(help_text="The sandbox's CPU limit, in cores.")
    percentOfLimit = serializers.FloatField(
        source="percent_of_limit", allow_null=True, help_text="CPU use in % of the limit."
    )
    onlineCpus = serializers.IntegerField(source="online_cpus", help_text="CPUs the engine has.")


class MemoryMetricsSerializer(serializers.Serializer):
    usage = serializers.IntegerField(help_text="Bytes in use, without reclaimable page cache.")
    limit = serializers.IntegerField(help_text="The sandbox's memory limit, in bytes.")
    percent = serializers.FloatField(allow_null=True)


class DiskMetricsSerializer(serializers.Serializer):
    workspace = serializers.IntegerField(allow_null=True, help_text="Bytes used in /workspace (null when paused).")
    limit = serializers.IntegerField(allow_null=True, help_text="The writable layer's size limit, if any.")


class PidsMetricsSerializer(serializers.Serializer):
    current = serializers.IntegerField()
    limit = serializers.IntegerField(allow_null=True)


class SandboxMetricsSerializer(serializers.Serializer):
    # renders apps.sandboxes.metrics.sandbox_metrics
    sandboxId = serializers.CharField(source="sandbox_id")
    status = serializers.CharField()
    timestamp = serializers.DateTimeField()
    cpu = CpuMetricsSerializer()
    memory = MemoryMetricsSerializer()
    disk = DiskMetricsSerializer()
    pids = PidsMetricsSerializer()


class SandboxMetricsView(APIView):
    """GET /sandboxes/{id}/metrics: CPU, memory, workspace disk and processes, measured now."""

    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(
        operation_id="sandboxes_metrics",
        responses={200: SandboxMetricsSerializer, **error_responses(409)},
        description="The sandbox's resource use now (running or paused sandboxes; 409 sandbox_not_running otherwise). "
        "CPU is measured over a quarter of a second.",
    )
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(SandboxMetricsSerializer(metrics.sandbox_metrics(sandbox=sandbox)).data)
