"""Preview URLs' REST side (docs/api.md, "Preview URLs"): a sandbox's ports, a signed URL for one,
and a port's public flag. The proxy itself is apps/sandboxes/preview/routing.py."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.sandboxes import selectors
from apps.sandboxes.preview import ports, services
from vibebox.api.schema import error_responses
from vibebox.api.serializers import StrictSerializer

from .views import READ_WRITE


class PortSerializer(serializers.Serializer):
    port = serializers.IntegerField(min_value=1, max_value=65535)
    listening = serializers.BooleanField(help_text="Something listens on it in the sandbox now.")
    declared = serializers.BooleanField(help_text="The template declares it (template.yaml `ports`).")
    public = serializers.BooleanField(help_text="Anyone may open it, without a token.")
    address = serializers.CharField(
        help_text="The address it listens on in the sandbox ('0.0.0.0', '::', '127.0.0.1'…); '' when it does not. "
        "Only a server bound to a non-loopback address can be reached."
    )
    description = serializers.CharField(help_text="The template's description of a declared port.")
    url = serializers.CharField(help_text="The host form, without a token.")
    pathUrl = serializers.CharField(help_text="The path form (same origin as the dashboard), without a token.")


class PortListSerializer(serializers.Serializer):
    ports = PortSerializer(many=True)


class PortUrlSerializer(serializers.Serializer):
    port = serializers.IntegerField()
    url = serializers.CharField(help_text="Opens the port until expiresAt (carries ?vibebox_token=).")
    token = serializers.CharField(help_text="The preview token alone (the vibebox_token query parameter).")
    expiresAt = serializers.DateTimeField()
    public = serializers.BooleanField()


class PortUpdateSerializer(StrictSerializer):
    public = serializers.BooleanField(help_text="true: anyone may open the port; false: a token or the owner only.")


def port_data(request, sandbox, info: ports.PortInfo) -> dict:
    return services.port_answer(sandbox, info, origin=request.build_absolute_uri("/"))


PORT_PARAMETER = OpenApiParameter("port", int, OpenApiParameter.PATH, description="1..65535, not 49983 (sandboxd's).")


class PortListView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(
        operation_id="sandboxes_ports_list",
        responses=PortListSerializer,
        description="The ports the sandbox listens on (read from its /proc/net/tcp and tcp6), its template's "
        "declared ports even when nothing listens there yet, and ports made public, by number, with their preview "
        "URLs. A sandbox that is not running listens on nothing.",
    )
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        listed = [port_data(request, sandbox, info) for info in ports.port_list(sandbox)]
        return Response({"ports": listed})


class PortUrlView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(
        operation_id="sandboxes_ports_url",
        parameters=[
            PORT_PARAMETER,
            OpenApiParameter(
                "expiresIn",
                str,
                description="How long the URL works: seconds or '30m', '1h', '7d' (default 1h, at most 7d).",
            ),
            OpenApiParameter("form", str, enum=["host", "path"], description="host (default) or path."),
        ],
        responses={200: PortUrlSerializer, **error_responses(400)},
        description="A signed, expiring preview URL for the port (whether or not something listens there yet). "
        "Opening it sets a cookie for that host (or path) and redirects to the URL without the token.",
    )
    def get(self, request, sandbox_id, port):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        body = services.preview_url(
            sandbox=sandbox,
            port=port,
            expires_in=request.query_params.get("expiresIn"),
            form=request.query_params.get("form"),
            origin=request.build_absolute_uri("/"),
        )
        return Response(PortUrlSerializer(body).data)


class PortDetailView(APIView):
    required_scopes = READ_WRITE

    @extend_schema(
        operation_id="sandboxes_ports_update",
        parameters=[PORT_PARAMETER],
        request=PortUpdateSerializer,
        responses={200: PortSerializer, **error_responses(400)},
        description="Makes the port public (anyone with its URL may open it) or private again. Needs what "
        "managing the sandbox needs; audited (sandbox.port_updated).",
    )
    def patch(self, request, sandbox_id, port):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        port = ports.parse_port(port)
        body = PortUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        public = body.validated_data["public"]
        return Response(
            services.port_public_update(
                sandbox=sandbox, port=port, public=public, origin=request.build_absolute_uri("/")
            )
        )
