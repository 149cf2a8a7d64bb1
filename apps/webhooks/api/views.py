from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import WEBHOOKS_MANAGE
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from .. import selectors, services
from ..models import Delivery
from .serializers import (
    DeliveryDetailSerializer,
    DeliverySerializer,
    WebhookCreateSerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
    WebhookWithSecretSerializer,
)

MANAGE = {method: [WEBHOOKS_MANAGE] for method in ("GET", "POST", "PATCH", "DELETE")}
PERMISSION = "Needs the webhooks.manage permission (a key: the webhooks:manage scope)."


def _with_secret(webhook, secret: str, status: int) -> Response:
    return Response(WebhookWithSecretSerializer(webhook, context={"secret": secret}).data, status=status)


class WebhookListView(GenericAPIView):
    required_scopes = MANAGE
    serializer_class = WebhookSerializer

    @extend_schema(operation_id="webhooks_list", responses=WebhookSerializer(many=True), description=PERMISSION)
    def get(self, request):
        page = self.paginate_queryset(selectors.webhook_list(actor=actor_of(request)))
        return self.get_paginated_response(WebhookSerializer(page, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        request=WebhookCreateSerializer,
        responses={201: WebhookWithSecretSerializer},
        description=f"A new endpoint; its `secret` is shown only here (and at rotate-secret). {PERMISSION}",
    )
    def post(self, request):
        body = WebhookCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        webhook, secret = services.webhook_create(actor=actor_of(request), **body.validated_data)
        return _with_secret(webhook, secret, 201)


class WebhookDetailView(APIView):
    required_scopes = MANAGE

    @extend_schema(operation_id="webhooks_retrieve", responses=WebhookSerializer)
    def get(self, request, webhook_id):
        return Response(WebhookSerializer(selectors.webhook_get(actor=actor_of(request), id=webhook_id)).data)

    @extend_schema(operation_id="webhooks_update", request=WebhookUpdateSerializer, responses=WebhookSerializer)
    def patch(self, request, webhook_id):
        actor = actor_of(request)
        webhook = selectors.webhook_get(actor=actor, id=webhook_id)
        body = WebhookUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        webhook = services.webhook_update(actor=actor, webhook=webhook, **body.validated_data)
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(operation_id="webhooks_destroy", responses={204: None})
    def delete(self, request, webhook_id):
        actor = actor_of(request)
        services.webhook_delete(actor=actor, webhook=selectors.webhook_get(actor=actor, id=webhook_id))
        return Response(status=204)


class WebhookRotateView(APIView):
    required_scopes = MANAGE

    @extend_schema(
        operation_id="webhooks_rotate_secret",
        request=None,
        responses={200: WebhookWithSecretSerializer},
        description="A new secret (shown only here); the previous one signs beside it for 24 h.",
    )
    def post(self, request, webhook_id):
        actor = actor_of(request)
        webhook, secret = services.webhook_rotate_secret(
            actor=actor, webhook=selectors.webhook_get(actor=actor, id=webhook_id)
        )
        return _with_secret(webhook, secret, 200)


class WebhookTestView(APIView):
    required_scopes = MANAGE

    @extend_schema(
        operation_id="webhooks_test",
        request=None,
        responses={202: DeliverySerializer},
        description="Queues a `webhook.test` event to this endpoint, sent at once (even while inactive).",
    )
    def post(self, request, webhook_id):
        actor = actor_of(request)
        delivery = services.webhook_test(actor=actor, webhook=selectors.webhook_get(actor=actor, id=webhook_id))
        return Response(DeliverySerializer(delivery).data, status=202)


class DeliveryListView(GenericAPIView):
    required_scopes = MANAGE
    serializer_class = DeliverySerializer

    @extend_schema(
        operation_id="webhooks_deliveries_list",
        parameters=[
            OpenApiParameter("status", enum=Delivery.Status.values, description="Only deliveries in this status."),
            OpenApiParameter("event", description="Only deliveries of this event."),
        ],
        responses={200: DeliverySerializer(many=True), **error_responses(400)},
        description="Newest first. An unknown `status` is a 400.",
    )
    def get(self, request, webhook_id):
        webhook = selectors.webhook_get(actor=actor_of(request), id=webhook_id)
        status = request.query_params.get("status") or None
        if status is not None and status not in Delivery.Status.values:
            raise errors.ValidationFailed(
                f"status is one of {', '.join(Delivery.Status.values)}.",
                details={"fields": {"status": [{"message": "not a delivery status", "code": "invalid_choice"}]}},
            )
        deliveries = selectors.delivery_list(
            webhook=webhook, status=status, event=request.query_params.get("event") or None
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


class DeliveryDetailView(APIView):
    required_scopes = MANAGE

    @extend_schema(operation_id="webhooks_deliveries_retrieve", responses=DeliveryDetailSerializer)
    def get(self, request, webhook_id, delivery_id):
        webhook = selectors.webhook_get(actor=actor_of(request), id=webhook_id)
        return Response(DeliveryDetailSerializer(selectors.delivery_get(webhook=webhook, id=delivery_id)).data)


class DeliveryRedeliverView(APIView):
    required_scopes = MANAGE

    @extend_schema(
        operation_id="webhooks_deliveries_redeliver",
        request=None,
        responses={202: DeliverySerializer},
        description="Sends the event again (same eventId / webhook-id), as a new delivery, at once.",
    )
    def post(self, request, webhook_id, delivery_id):
        actor = actor_of(request)
        webhook = selectors.webhook_get(actor=actor, id=webhook_id)
        delivery = services.delivery_redeliver(
            actor=actor, delivery=selectors.delivery_get(webhook=webhook, id=delivery_id)
        )
        return Response(DeliverySerializer(delivery).data, status=202)
