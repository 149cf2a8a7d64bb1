from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.scopes import TEMPLATES_READ
from apps.marketplace import selectors

from .serializers import TemplateSerializer

READ = {"GET": [TEMPLATES_READ]}


class TemplateListView(APIView):
    required_scopes = READ

    @extend_schema(operation_id="templates_list", responses=TemplateSerializer(many=True))
    def get(self, request):
        return Response(TemplateSerializer(selectors.template_list(), many=True).data)


class TemplateDetailView(APIView):
    required_scopes = READ

    @extend_schema(operation_id="templates_retrieve", responses=TemplateSerializer)
    def get(self, request, name):
        return Response(TemplateSerializer(selectors.template_get(name=name)).data)
