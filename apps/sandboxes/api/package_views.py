"""POST/GET /sandboxes/{id}/packages: installing and listing registry packages (docs/api.md#packages).

Authorized as running commands: the `execute` scope and the sandbox's `use` level, for listing too
(a listing runs the manager's own program in the sandbox, which its user can replace).
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.models import ApiKey
from apps.keys.scopes import EXECUTE
from apps.sandboxes import selectors
from apps.sandboxes.services import packages
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses
from vibebox.api.serializers import DurationField, StrictSerializer

MANAGERS_DOC = ", ".join(packages.MANAGERS)


class PackageInstallSerializer(StrictSerializer):
    manager = serializers.CharField(max_length=32, help_text=f"One of the template's package managers: {MANAGERS_DOC}.")
    packages = serializers.ListField(
        child=serializers.CharField(max_length=packages.MAX_SPEC, allow_blank=True, trim_whitespace=False),
        max_length=packages.MAX_PACKAGES,
        help_text="Package specs: a name and an optional version constraint in the manager's syntax "
        "(requests==2.32.3, left-pad@1.3.0, serde@1, rake:13.2.1, github.com/google/uuid@v1.6.0, "
        "org.apache.commons:commons-lang3:3.17.0). Never options, paths or URLs.",
    )
    dev = serializers.BooleanField(
        required=False, default=False, help_text="A development dependency (npm, cargo, bundler)."
    )
    cwd = serializers.CharField(
        required=False, allow_blank=True, max_length=4096, help_text="The project directory (default /workspace)."
    )
    timeout = DurationField(
        maximum="VIBEBOX_EXEC_MAX_TIMEOUT", required=False, allow_null=True,
        help_text="Seconds or '10m'; default and 0: the server maximum.",
    )  # fmt: skip
    autoResume = serializers.BooleanField(required=False, default=False)


class PackageInstallResultSerializer(serializers.Serializer):
    executionId = serializers.CharField(
        source="execution_id",
        help_text="The install's command: follow it on WS /ws/sandboxes/{id}/processes/{executionId}, "
        "or read GET …/executions/{executionId}.",
    )
    processId = serializers.CharField(source="execution_id")
    status = serializers.ChoiceField(choices=["running"])
    manager = serializers.CharField()
    packages = serializers.ListField(child=serializers.CharField())
    cwd = serializers.CharField()
    command = serializers.CharField(help_text="What runs, as the execution record shows it.")
    mirror = serializers.BooleanField(help_text="The organization's registry mirror is used.")


class PackageSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.CharField(help_text="The installed version (for cargo: the requirement in Cargo.toml).")


class PackageListSerializer(serializers.Serializer):
    manager = serializers.CharField()
    cwd = serializers.CharField()
    packages = PackageSerializer(many=True)
    skipped = serializers.IntegerField(help_text="Entries of the manager's output left out as malformed.")
    truncated = serializers.BooleanField()


def _key(request):
    return request.auth if isinstance(request.auth, ApiKey) else None


class PackagesView(APIView):
    required_scopes = {"GET": [EXECUTE], "POST": [EXECUTE]}

    @extend_schema(
        operation_id="sandboxes_packages_list",
        parameters=[
            OpenApiParameter("manager", required=True, description=f"One of {MANAGERS_DOC}."),
            OpenApiParameter("cwd", description="The project directory (default /workspace)."),
        ],
        responses={200: PackageListSerializer, **error_responses(400, 409, 422)},
        description="What the manager says is installed (pip list, npm ls --depth=0, gem list, bundle list, "
        "cargo metadata, go list -m all, mvn dependency:list or the local Maven repository).",
    )
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        manager = request.query_params.get("manager")
        if not manager:
            raise errors.ValidationFailed("manager is required (?manager=pip).")
        listing = packages.packages_list(sandbox=sandbox, manager=manager, cwd=request.query_params.get("cwd"))
        return Response(PackageListSerializer(listing).data)

    @extend_schema(
        operation_id="sandboxes_packages_install",
        request=PackageInstallSerializer,
        responses={202: PackageInstallResultSerializer, **error_responses(409)},
        description="Starts installing packages with the manager as the sandbox's user, into the project "
        "(pip and uv: the template's virtualenv; npm, cargo, bundler, go: cwd), and answers 202 at once with "
        "the install's executionId: its output streams like a background command's.",
    )
    def post(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.USE)
        body = PackageInstallSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        install = packages.packages_install_from(sandbox=sandbox, api_key=_key(request), data=body.validated_data)
        return Response(PackageInstallResultSerializer(install).data, status=202)
