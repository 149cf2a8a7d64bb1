"""Request-body building blocks: bodies take exactly what the OpenAPI document says.

DRF is lenient by default (a string field takes 5, a boolean "yes", an integer "7" or 7.0, and a
pattern's `$` takes a trailing newline); the API promises JSON types and patterns as published,
so StrictSerializer refuses the rest, and the number fields carry the ranges their values must
stay in before they reach timedelta, SQLite or Docker.
"""

import math
import re

from django.conf import settings
from django.core.validators import RegexValidator
from rest_framework import serializers

from vibebox.units import DURATION_MAX, SIZE_MAX, parse_duration, parse_size

INT64_MAX = 2**63 - 1  # SQLite's and Docker's integers


# ECMAScript's \s (what the published pattern means to a client): Python's also takes \x1c-\x1f and
# \x85 and leaves out \ufeff, so a URL with \x1c matched the document and was refused here.
ECMA_SPACE = r"\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def ecma_regex(pattern: str) -> re.Pattern:
    r"""`pattern` compiled to match as ECMAScript does: `\s`/`\S` as ECMAScript's, `\d`, `\w` and
    `\b` ASCII-only (re.ASCII)."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            if escaped == "s":
                out.append(ECMA_SPACE if in_class else f"[{ECMA_SPACE}]")
            elif escaped == "S" and not in_class:
                out.append(f"[^{ECMA_SPACE}]")
            else:
                out.append(char + escaped)
            i += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        i += 1
    return re.compile("".join(out), re.ASCII)


class FullMatchValidator(RegexValidator):
    r"""RegexValidator on the whole value, as the published ECMAScript pattern matches (Python's `$`
    also matches before a final newline, its `\s` takes more characters, its `\d` other digits).
    `regex` stays the pattern as written: the OpenAPI document publishes it."""

    def __init__(self, regex, *args, **kwargs):
        super().__init__(regex, *args, **kwargs)
        self.ecma = ecma_regex(regex)

    def __call__(self, value):
        if not isinstance(value, str) or not self.ecma.fullmatch(value):
            raise serializers.ValidationError(self.message, code=self.code)


def pattern_field(pattern: str, message: str, **kwargs) -> serializers.CharField:
    """A string field checked against `pattern` (ECMAScript-compatible: the OpenAPI document
    publishes it as is)."""
    return serializers.CharField(validators=[FullMatchValidator(pattern, message)], **kwargs)


def _json_type_problem(field: serializers.Field, value) -> str | None:
    """Why `value` (from a JSON body) is not of the type the schema gives `field`; None if it is."""
    if value is None:
        return None  # the field's allow_null decides
    if isinstance(field, (serializers.CharField, serializers.DateTimeField)) and not isinstance(value, str):
        return "Not a valid string."
    if isinstance(field, serializers.BooleanField) and not isinstance(value, bool):
        return "Must be a boolean."
    if isinstance(field, serializers.IntegerField) and (isinstance(value, bool) or not isinstance(value, int)):
        return "A valid integer is required."
    if isinstance(field, serializers.FloatField) and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    ):
        return "A valid number is required."
    if isinstance(field, serializers.DictField):
        if not isinstance(value, dict):
            return None  # DRF says so itself
        return next(filter(None, (_json_type_problem(field.child, item) for item in value.values())), None)
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return None
        return next(filter(None, (_json_type_problem(field.child, item) for item in value)), None)
    return None


def _keep_whitespace(field: serializers.Field) -> None:
    if isinstance(field, serializers.CharField):
        field.trim_whitespace = False
    elif isinstance(field, (serializers.DictField, serializers.ListField)):
        _keep_whitespace(field.child)


class StrictSerializer(serializers.Serializer):
    """A request body: refuses fields it does not declare (code `unknown_field`), so typos are not
    ignored, and values whose JSON type is not the declared one (no coercion of 5 to "5"). Strings
    are taken as sent: trimming them would accept what `maxLength` or a pattern refuses."""

    # Field groups the OpenAPI document states too: at least one of `any_of_required`; never all
    # of `not_together` (present, whatever their values).
    any_of_required: tuple[str, ...] = ()
    not_together: tuple[str, ...] = ()

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            _keep_whitespace(field)
        return fields

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name: field for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - set(writable))
            if unknown:
                raise serializers.ValidationError(
                    {name: [serializers.ErrorDetail("Unknown field.", code="unknown_field")] for name in unknown}
                )
            wrong = {
                name: [serializers.ErrorDetail(problem, code="invalid")]
                for name, field in writable.items()
                if name in data and (problem := _json_type_problem(field, data[name]))
            }
            if wrong:
                raise serializers.ValidationError(wrong)
            if self.any_of_required and not any(name in data for name in self.any_of_required):
                raise serializers.ValidationError(
                    {self.any_of_required[0]: [serializers.ErrorDetail("This field is required.", code="required")]}
                )
            if self.not_together and all(name in data for name in self.not_together):
                message = f"Give {' or '.join(self.not_together)}, not both."
                raise serializers.ValidationError(
                    {self.not_together[-1]: [serializers.ErrorDetail(message, code="invalid")]}
                )
        return super().to_internal_value(data)


def limit_value(value):
    """A limit given as a number or as the name of a setting (read when used, so tests can change it)."""
    return getattr(settings, value) if isinstance(value, str) else value


class DurationField(serializers.Field):
    """Seconds (number) or a human string ("30s", "15m", "2h", "1d"); internal value: seconds.

    `maximum` (a number or a setting's name, at most ten years) is enforced here; `minimum` too,
    except that `zero` is also allowed when `zero_allowed` (it means "never" or "the maximum").
    """

    default_error_messages = {"invalid_duration": "{message}"}

    def __init__(self, *, minimum=0, maximum=DURATION_MAX, zero_allowed=False, **kwargs):
        self.minimum, self.maximum, self.zero_allowed = minimum, maximum, zero_allowed
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            seconds = parse_duration(data)
        except ValueError as exc:
            self.fail("invalid_duration", message=str(exc))
        if seconds == 0 and self.zero_allowed:
            return seconds
        minimum, maximum = limit_value(self.minimum), limit_value(self.maximum)
        if seconds < minimum:
            self.fail("invalid_duration", message=f"at least {minimum:g} seconds")
        if seconds > maximum:
            self.fail("invalid_duration", message=f"at most {maximum:g} seconds")
        return seconds

    def to_representation(self, value):
        return value


class SizeField(serializers.Field):
    """Bytes (integer) or a human string ("512m", "1g"); internal value: bytes.

    `minimum` and `maximum` (numbers or settings' names) are published in the schema; the service
    that uses the value enforces them (with its own error code), this field only the 1 PiB cap.
    """

    default_error_messages = {"invalid_size": "{message}"}

    def __init__(self, *, minimum=1, maximum=SIZE_MAX, **kwargs):
        self.minimum, self.maximum = minimum, maximum
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return parse_size(data)
        except ValueError as exc:
            self.fail("invalid_size", message=str(exc))

    def to_representation(self, value):
        return value


class BoundedFloatField(serializers.FloatField):
    """A number in [minimum, maximum] (numbers or settings' names, published in the schema); out of
    range it is `error` (an ApplicationError class), the code the service would answer."""

    def __init__(self, *, minimum, maximum, error, **kwargs):
        self.minimum, self.maximum, self.error = minimum, maximum, error
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        minimum, maximum = limit_value(self.minimum), limit_value(self.maximum)
        if not minimum <= value <= maximum:
            raise self.error(
                f"{self.field_name}: between {minimum:g} and {maximum:g}",
                details={self.field_name: f"between {minimum:g} and {maximum:g}"},
            )
        return value
