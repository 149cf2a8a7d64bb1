from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vibebox.api.serializers import DurationField, SizeField, StrictSerializer
from vibebox.units import format_size


class ResourcesInputSerializer(StrictSerializer):
    cpu = serializers.FloatField(required=False, help_text="Cores, e.g. 0.5 or 2.")
    memory = SizeField(required=False, help_text="Bytes or '512m', '1g'.")
    disk = SizeField(required=False, help_text="Writable layer size, where the storage driver can limit it.")


class SandboxCreateSerializer(StrictSerializer):
    template = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=63, required=False)
    autoStart = serializers.BooleanField(required=False, default=True)
    ephemeral = serializers.BooleanField(required=False, default=False)
    timeout = DurationField(required=False, allow_null=True, help_text="Seconds or '30m', '2h', '1d'.")
    env = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False)
    metadata = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    resources = ResourcesInputSerializer(required=False)


class SandboxUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=63, required=False)
    metadata = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False)
    timeout = DurationField(required=False, allow_null=True, help_text="New time to live from now; null clears it.")


class ResourcesSerializer(serializers.Serializer):
    cpu = serializers.FloatField()
    memory = serializers.CharField()
    memoryBytes = serializers.IntegerField()
    disk = serializers.CharField(allow_null=True)


class SandboxSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    template = serializers.CharField(source="template.name")
    status = serializers.CharField()
    statusReason = serializers.CharField(source="status_reason")
    ephemeral = serializers.BooleanField()
    timeout = serializers.IntegerField(source="timeout_seconds", allow_null=True)
    expiresAt = serializers.DateTimeField(source="expires_at")
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at")
    stoppedAt = serializers.DateTimeField(source="stopped_at")
    destroyedAt = serializers.DateTimeField(source="destroyed_at")
    resources = serializers.SerializerMethodField()
    metadata = serializers.DictField(child=serializers.CharField())
    warm = serializers.SerializerMethodField(help_text="Whether the sandbox came from a warm pool.")

    @extend_schema_field(ResourcesSerializer)
    def get_resources(self, sandbox) -> dict:
        return {
            "cpu": sandbox.cpu,
            "memory": format_size(sandbox.memory),
            "memoryBytes": sandbox.memory,
            "disk": format_size(sandbox.disk) if sandbox.disk else None,
        }

    def get_warm(self, sandbox) -> bool:
        return False
