from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.monitoring import health, slo
from vibebox import exceptions as errors

from .serializers import PlatformStatusSerializer, SloReportSerializer


class StatusView(APIView):
    """GET /api/v1/status: component health, public (no secrets; the checks are kept a few
    seconds per process, so calling it often costs the platform nothing more)."""

    authentication_classes = []
    permission_classes = []
    throttle_classes = []  # no Redis on the way: the answer must come when Redis is down

    @extend_schema(operation_id="status_retrieve", auth=[], responses=PlatformStatusSerializer)
    def get(self, request):
        return Response(PlatformStatusSerializer(health.platform_status()).data)


class SloView(APIView):
    """GET /api/v1/status/slo: every SLO's SLI, error budget and burn rates; staff users only
    (their session or a key of theirs, any scope)."""

    required_scopes = {"GET": []}

    @extend_schema(operation_id="status_slo_retrieve", responses=SloReportSerializer)
    def get(self, request):
        if not request.user.is_staff:
            raise errors.PermissionDenied(
                "SLOs are visible to operators (staff users) only.", details={"permission": "staff"}
            )
        return Response(SloReportSerializer(slo.slo_report()).data)
