from django.utils import timezone
from rest_framework import serializers

from apps.keys.scopes import ALL_SCOPES
from vibebox.api.serializers import DurationField, StrictSerializer, pattern_field

# As apps.keys.services.RATE_PATTERN, in ASCII digits (the published pattern is ECMAScript's); ""
# (the server default) is allowed apart, as the document says.
RATE_PATTERN = r"^[1-9][0-9]{0,6}/(s|sec|second|m|min|minute|h|hour|d|day)$"


class ApiKeySerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    org = serializers.SlugField(source="org.slug", allow_null=True, help_text="The organization the key acts in.")
    user = serializers.CharField(source="user.username", help_text="Whose key it is.")
    prefix = serializers.CharField(source="display", help_text="First characters of the key, for telling keys apart.")
    test = serializers.BooleanField(source="is_test")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES))
    rateLimit = serializers.CharField(source="rate_limit", help_text="e.g. '100/min'; empty: the server default.")
    expiresAt = serializers.DateTimeField(source="expires_at", allow_null=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    revokedAt = serializers.DateTimeField(source="revoked_at", allow_null=True)
    rotatedFrom = serializers.CharField(
        source="rotated_from_id", allow_null=True, help_text="The key this one replaced."
    )
    active = serializers.SerializerMethodField()

    def get_active(self, key) -> bool:
        return key.is_active()


class ApiKeyWithSecretSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The full key. Shown only in this response.")

    def get_key(self, key) -> str:
        return self.context["secret"]


class ApiKeyCreateSerializer(StrictSerializer):
    not_together = ("expiresAt", "expiresIn")

    name = serializers.CharField(max_length=100)
    org = serializers.CharField(
        required=False, max_length=50, help_text="Slug of the organization the key acts in. Default: the caller's."
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ALL_SCOPES), required=False, help_text="Default: the caller's scopes."
    )
    expiresAt = serializers.DateTimeField(required=False, allow_null=True)
    expiresIn = DurationField(
        minimum=1, required=False, help_text="Alternative to expiresAt: '30d', '12h'... (at most ten years)."
    )
    test = serializers.BooleanField(required=False, default=False)
    rateLimit = pattern_field(
        RATE_PATTERN,
        "rateLimit must look like '100/min' (periods: s, min, h, day).",
        required=False,
        allow_blank=True,
        default="",
        help_text="e.g. '100/min'; empty: the server default.",
    )

    def validate_expiresAt(self, value):
        # Depends on the clock, so the schema cannot say it: the fuzz test knows this code.
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("expiresAt must be in the future.", code="in_the_past")
        return value


class ApiKeyRotateSerializer(StrictSerializer):
    gracePeriod = DurationField(
        required=False, help_text="How long the old key keeps working (at most ten years). Default 24h."
    )


class ApiKeyUsageDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    requests = serializers.IntegerField()


class ApiKeyUsageSerializer(serializers.Serializer):
    keyId = serializers.CharField()
    lastUsedAt = serializers.DateTimeField(allow_null=True)
    totalRequests = serializers.IntegerField()
    days = ApiKeyUsageDaySerializer(many=True)
