from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes.services import pools
from vibebox import exceptions as errors

from .schema import PoolListSerializer


class PoolListView(APIView):
    """GET /api/v1/pools: warm-pool state and metrics, for operators (staff users) only."""

    required_scopes = {"GET": [SANDBOXES_READ]}

    @extend_schema(operation_id="pools_list", responses=PoolListSerializer)
    def get(self, request):
        if not request.user.is_staff:
            raise errors.PermissionDenied("Warm pools are visible to operators (staff users) only.")
        return Response(PoolListSerializer({"pools": pools.pool_stats()}).data)
