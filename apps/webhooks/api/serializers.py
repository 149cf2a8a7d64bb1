from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vibebox.api.serializers import StrictSerializer, pattern_field

from ..catalog import ALL, EVENTS
from ..models import Delivery

EVENT_NAMES = [ALL, *EVENTS]
# http(s)://host[:port][/path][?query], no fragment (https only unless VIBEBOX_WEBHOOK_ALLOW_HTTP,
# and a host that resolves to no refused address: the service checks those, 400 invalid_webhook_url
# or webhook_target_refused).
URL_PATTERN = r"^https?://[^\s/?#@]+([/?][^\s#]*)?$"
URL_MESSAGE = "url must look like https://host[:port]/path (no credentials, no fragment)."


@extend_schema_field(
    {"type": "string", "enum": EVENT_NAMES, "description": "An event name (docs/webhooks.md), or '*'."}
)
class EventNameField(serializers.CharField):
    """A string: an unknown name is the service's 400 unknown_event (not a validation_error), but
    the document lists the names."""


class WebhookFilterSerializer(StrictSerializer):
    sandboxId = serializers.CharField(required=False, max_length=64)
    template = serializers.CharField(required=False, max_length=100)
    metadata = serializers.DictField(
        child=serializers.CharField(max_length=1000, allow_blank=True), required=False, help_text="Equality per key."
    )


class WebhookSerializer(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()
    events = serializers.ListField(child=EventNameField(), help_text="Event names, or ['*'] for all.")
    description = serializers.CharField()
    active = serializers.BooleanField()
    filter = serializers.JSONField(help_text="{sandboxId?, template?, metadata?: {key: value}}; {}: every event.")
    disabledReason = serializers.CharField(
        source="disabled_reason", help_text="Why the server turned it off, if it did."
    )
    previousSecretExpiresAt = serializers.DateTimeField(
        source="previous_secret_expires_at",
        allow_null=True,
        help_text="After a rotation, until when the previous secret signs too.",
    )
    createdBy = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.SerializerMethodField(help_text="whsec_…: the signing secret. Shown only in this response.")

    def get_secret(self, webhook) -> str:
        return self.context["secret"]


class WebhookCreateSerializer(StrictSerializer):
    url = pattern_field(URL_PATTERN, URL_MESSAGE, max_length=2000)
    events = serializers.ListField(
        child=EventNameField(max_length=64), min_length=1, max_length=50, help_text="Event names, or '*'."
    )
    description = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
    active = serializers.BooleanField(required=False, default=True)
    filter = WebhookFilterSerializer(required=False)


class WebhookUpdateSerializer(StrictSerializer):
    url = pattern_field(URL_PATTERN, URL_MESSAGE, required=False, max_length=2000)
    events = serializers.ListField(child=EventNameField(max_length=64), required=False, min_length=1, max_length=50)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    active = serializers.BooleanField(required=False)
    filter = WebhookFilterSerializer(required=False)


class DeliverySerializer(serializers.Serializer):
    id = serializers.CharField()
    webhookId = serializers.CharField(source="webhook_id")
    eventId = serializers.CharField(source="event_id", help_text="The webhook-id header: the same on every attempt.")
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    attempts = serializers.IntegerField()
    responseStatus = serializers.IntegerField(source="response_status", allow_null=True)
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    nextAttemptAt = serializers.DateTimeField(source="next_attempt_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    redeliveryOf = serializers.CharField(source="redelivery_of_id", allow_null=True)


class DeliveryAttemptSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    statusCode = serializers.IntegerField(source="status_code", allow_null=True)
    error = serializers.CharField(help_text="Why no answer came (timeout, refused...); empty when one did.")
    requestHeaders = serializers.DictField(source="request_headers", child=serializers.CharField())
    responseHeaders = serializers.DictField(source="response_headers", child=serializers.CharField())
    responseBody = serializers.CharField(source="response_body", help_text="The answer's first 4 KiB.")
    durationMs = serializers.IntegerField(source="duration_ms")


class DeliveryDetailSerializer(DeliverySerializer):
    payload = serializers.JSONField(help_text="The request body: {type, timestamp, data}.")
    attemptLog = DeliveryAttemptSerializer(source="attempt_log.all", many=True)
