from rest_framework import serializers

from vibebox.units import parse_duration, parse_size


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not declare (code `unknown_field`), so typos are not ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, field in self.fields.items() if not field.read_only})
            if unknown:
                raise serializers.ValidationError(
                    {name: [serializers.ErrorDetail("Unknown field.", code="unknown_field")] for name in unknown}
                )
        return super().to_internal_value(data)


class DurationField(serializers.Field):
    """Seconds (number) or a human string ("30s", "15m", "2h", "1d"); internal value: seconds."""

    default_error_messages = {"invalid_duration": "{message}"}

    def to_internal_value(self, data):
        try:
            return parse_duration(data)
        except ValueError as exc:
            self.fail("invalid_duration", message=str(exc))

    def to_representation(self, value):
        return value


class SizeField(serializers.Field):
    """Bytes (integer) or a human string ("512m", "1g"); internal value: bytes."""

    default_error_messages = {"invalid_size": "{message}"}

    def to_internal_value(self, data):
        try:
            return parse_size(data)
        except ValueError as exc:
            self.fail("invalid_size", message=str(exc))

    def to_representation(self, value):
        return value
