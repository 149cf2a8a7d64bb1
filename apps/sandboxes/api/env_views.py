from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.sandboxes import selectors
from apps.sandboxes.services import env
from vibebox import exceptions as errors

from .schema import EnvMapSerializer, EnvReplaceSerializer, EnvUpdateSerializer, EnvVarSerializer

SCOPES = {"GET": [SANDBOXES_READ], "PUT": [SANDBOXES_WRITE], "PATCH": [SANDBOXES_WRITE], "DELETE": [SANDBOXES_WRITE]}
ENV_DOC = (
    "A map of NAME to a string or to {value, secret}. Secret values are stored encrypted like the others "
    "and never returned (shown as ********). In PATCH, null removes a variable."
)


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise errors.InvalidEnv("The body is a JSON object of NAME to value.")
    return request.data


class EnvView(APIView):
    required_scopes = SCOPES

    @extend_schema(operation_id="sandboxes_env_list", responses=EnvMapSerializer)
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(EnvMapSerializer(env.public(sandbox)).data)

    @extend_schema(
        operation_id="sandboxes_env_replace",
        request=EnvReplaceSerializer,
        responses=EnvMapSerializer,
        description=ENV_DOC,
    )
    def put(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        sandbox = env.env_update(sandbox=sandbox, changes=_body(request), replace=True)
        return Response(EnvMapSerializer(env.public(sandbox)).data)

    @extend_schema(
        operation_id="sandboxes_env_update",
        request=EnvUpdateSerializer,
        responses=EnvMapSerializer,
        description=ENV_DOC,
    )
    def patch(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE)
        sandbox = env.env_update(sandbox=sandbox, changes=_body(request))
        return Response(EnvMapSerializer(env.public(sandbox)).data)


class EnvVarView(APIView):
    required_scopes = SCOPES

    @extend_schema(operation_id="sandboxes_env_retrieve", responses=EnvVarSerializer)
    def get(self, request, sandbox_id, name):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id)
        return Response(EnvVarSerializer(env.public_one(sandbox, name)).data)

    @extend_schema(operation_id="sandboxes_env_destroy", responses={204: None})
    def delete(self, request, sandbox_id, name):
        env.env_delete(
            sandbox=selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.MANAGE), name=name
        )
        return Response(status=204)
