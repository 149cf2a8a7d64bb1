import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys import selectors, services
from apps.keys.actors import actor_of
from apps.keys.models import ApiKey
from apps.keys.scopes import KEYS_MANAGE
from apps.orgs import selectors as org_selectors
from vibebox.api.params import query_flag

from .serializers import (
    ApiKeyCreateSerializer,
    ApiKeyRotateSerializer,
    ApiKeySerializer,
    ApiKeyUsageSerializer,
    ApiKeyWithSecretSerializer,
)

MANAGE = {"GET": [KEYS_MANAGE], "POST": [KEYS_MANAGE], "DELETE": [KEYS_MANAGE]}


def _creator(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


def _created(key, secret):
    return Response(ApiKeyWithSecretSerializer(key, context={"secret": secret}).data, status=201)


class KeyListView(APIView):
    required_scopes = MANAGE

    @extend_schema(
        operation_id="keys_list",
        parameters=[
            OpenApiParameter(
                "all", bool, description="Every member's keys in the organization (keys.manage), not only yours."
            )
        ],
        responses=ApiKeySerializer(many=True),
    )
    def get(self, request):
        everyone = query_flag(request, "all")
        keys = selectors.api_key_list(user=request.user, everyone_in=actor_of(request) if everyone else None)
        return Response(ApiKeySerializer(keys, many=True).data)

    @extend_schema(
        operation_id="keys_create", request=ApiKeyCreateSerializer, responses={201: ApiKeyWithSecretSerializer}
    )
    def post(self, request):
        body = ApiKeyCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        expires_at = data.get("expiresAt")
        if data.get("expiresIn") is not None:
            expires_at = timezone.now() + dt.timedelta(seconds=data["expiresIn"])
        org = org_selectors.org_get(user=request.user, slug=data["org"]) if data.get("org") else None
        key, secret = services.api_key_create(
            user=request.user,
            name=data["name"],
            org=org,
            scopes=data.get("scopes"),
            expires_at=expires_at,
            test=data["test"],
            rate_limit=data["rateLimit"],
            creator=_creator(request),
        )
        return _created(key, secret)


class KeyDetailView(APIView):
    required_scopes = MANAGE

    @extend_schema(operation_id="keys_retrieve", responses=ApiKeySerializer)
    def get(self, request, key_id):
        key = selectors.api_key_get(user=request.user, id=key_id, manager=actor_of(request))
        return Response(ApiKeySerializer(key).data)

    @extend_schema(
        operation_id="keys_revoke",
        responses={204: None},
        description="A key may revoke itself, or a key no broader than itself (else 403 scope_escalation).",
    )
    def delete(self, request, key_id):
        key = selectors.api_key_get(user=request.user, id=key_id, manager=actor_of(request))
        services.api_key_revoke(key=key, creator=_creator(request))
        return Response(status=204)


class KeyRotateView(APIView):
    required_scopes = MANAGE

    @extend_schema(
        operation_id="keys_rotate",
        request=ApiKeyRotateSerializer,
        responses={201: ApiKeyWithSecretSerializer},
        description="A key may rotate itself, or a key no broader than itself (else 403 scope_escalation).",
    )
    def post(self, request, key_id):
        body = ApiKeyRotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = selectors.api_key_get(user=request.user, id=key_id)
        new_key, secret = services.api_key_rotate(
            key=key, grace_seconds=body.validated_data.get("gracePeriod"), creator=_creator(request)
        )
        return _created(new_key, secret)


class KeyUsageView(APIView):
    required_scopes = MANAGE

    @extend_schema(operation_id="keys_usage", responses=ApiKeyUsageSerializer)
    def get(self, request, key_id):
        key = selectors.api_key_get(user=request.user, id=key_id, manager=actor_of(request))
        return Response(ApiKeyUsageSerializer(selectors.api_key_usage(key=key)).data)
