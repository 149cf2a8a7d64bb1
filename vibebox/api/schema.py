"""OpenAPI document extras: the custom fields' schemas, map-shaped bodies, and the error
envelope on every operation (a postprocessing hook, see SPECTACULAR_SETTINGS)."""

import copy

from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import get_doc, is_serializer
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from vibebox.api.serializers import StrictSerializer, limit_value
from vibebox.exceptions import ERROR_CODES
from vibebox.units import DURATION_MAX, DURATION_PATTERN, SIZE_MAX, SIZE_PATTERN

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

ERROR_SUMMARIES = {
    400: "The request is invalid.",
    401: "No API key, or a wrong, expired or revoked one.",
    402: "Refused by a quota or the budget (quota_exceeded: details.quota, limit, used, requested).",
    403: "Refused: the key lacks a scope, or the owner may not do this.",
    404: "No such object (someone else's is a 404 too).",
    409: "Conflicts with the current state of the object.",
    410: "Gone: the link or object has expired or was used.",
    413: "The body is above the server's limit (details.limit for uploads).",
    422: "git failed; message and details.git carry git's own message.",
    429: "Too many requests; Retry-After says when to retry.",
}


def _error_description(status: int) -> str:
    return f"{ERROR_SUMMARIES[status]} error.code says which (docs/api.md lists them)."


def error_responses(*statuses: int) -> dict:
    """`responses` entries for the error statuses an operation answers beyond the usual ones."""
    return {status: OpenApiResponse(ERROR_REF, description=_error_description(status)) for status in statuses}


ERROR_RESPONSE_SCHEMA = {
    "type": "object",
    "description": "Every error answer has this envelope.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "A stable code (see ErrorCode), e.g. sandbox_not_found."},
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "More about the error; validation errors have `fields`: {field: [{message, code}]}.",
                },
            },
            "required": ["code", "message", "details"],
        },
        "requestId": {"type": "string", "description": "As in the X-Request-Id header."},
    },
    "required": ["error", "requestId"],
}


def postprocess_errors(result, generator, **kwargs):
    """Adds the error envelope to every operation: 401, 403 and 429 always, 404 where the path has
    a parameter, 400 where there is a body, 402 on a sandbox's paths (work the organization's
    quotas may refuse), `default` for the rest (5xx); drops repeated security
    requirements; describes the sandbox path parameter."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorResponse"] = copy.deepcopy(ERROR_RESPONSE_SCHEMA)
    schemas["ErrorCode"] = {
        "type": "string",
        "enum": sorted(ERROR_CODES),
        "description": "The error codes the server knows today (new ones may come).",
    }
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            _require_bodies_with_required_fields(operation, schemas)
            statuses = [401, 403, 429, *([404] if "{" in path else []), *([400] if "requestBody" in operation else [])]
            if path.startswith("/api/v1/sandboxes") and method in ("post", "put", "patch"):  # work: quotas
                statuses.append(402)
            responses = operation["responses"]
            for status in statuses:
                responses.setdefault(str(status), {"description": _error_description(status), "content": _json()})
            responses["default"] = {"description": "Any other error (5xx: internal, engine).", "content": _json()}
            operation["responses"] = dict(sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0])))
            if "security" in operation:
                unique = []
                for requirement in operation["security"]:
                    if requirement not in unique:
                        unique.append(requirement)
                operation["security"] = unique
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "sandbox_id":
                    parameter.setdefault("description", "The sandbox's id (sbx_…) or name.")
    return result


def _require_bodies_with_required_fields(operation: dict, schemas: dict) -> None:
    """A body whose object needs one of several fields (anyOf required) is itself required;
    drf-spectacular only sees plain `required` lists."""
    body = operation.get("requestBody")
    ref = (body or {}).get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
    component = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else {}
    if any("required" in option for option in component.get("anyOf", [])):
        body["required"] = True


def _json() -> dict:
    return {"application/json": {"schema": dict(ERROR_REF)}}


# ---- custom fields ----


def _number_or_text(target: str, *, number: str, unit: str, units: str, pattern: str, cap: int, example: str):
    """The extension of a field taking a number or a human string ("30m", "512m"), answered as a
    number: the number's range is the field's own (the string's cannot be said in a schema)."""

    class Extension(OpenApiSerializerFieldExtension):
        target_class = target
        match_subclasses = True

        def map_serializer_field(self, auto_schema, direction):
            if direction == "response":
                return {"type": number, "description": unit}
            field = self.target
            minimum, maximum = limit_value(field.minimum), limit_value(field.maximum) or cap
            text = {"type": "string", "pattern": pattern, "description": f"A number and a unit: {units}.",
                    "example": example}  # fmt: skip
            numbers = [{"type": number, "minimum": minimum, "maximum": maximum, "description": unit}]
            if getattr(field, "zero_allowed", False) and minimum > 0:
                numbers.insert(0, {"type": number, "enum": [0], "description": "0: see the field's description."})
            return {"oneOf": [*numbers, text]}

    return Extension


DurationFieldExtension = _number_or_text(
    "vibebox.api.serializers.DurationField", number="number", unit="Seconds.", units="ms, s, m, h, d, w",
    pattern=DURATION_PATTERN, cap=DURATION_MAX, example="30m",
)  # fmt: skip
SizeFieldExtension = _number_or_text(
    "vibebox.api.serializers.SizeField", number="integer", unit="Bytes.", units="k, m, g, t (binary)",
    pattern=SIZE_PATTERN, cap=SIZE_MAX, example="512m",
)  # fmt: skip


class BoundedFloatFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "vibebox.api.serializers.BoundedFloatField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "number", "format": "double"}
        if direction == "request":
            schema |= {"minimum": limit_value(self.target.minimum), "maximum": limit_value(self.target.maximum)}
        return schema


def _one_of(auto_schema, options, direction) -> dict:
    """The schema for any of `options` (serializer classes or schema dicts)."""
    schemas = [
        auto_schema.resolve_serializer(option, direction).ref if is_serializer(option) else option for option in options
    ]
    return schemas[0] if len(schemas) == 1 else {"oneOf": schemas}


class OneOfField(serializers.JSONField):
    """A JSON value described in the schema as one of `options` (serializer classes or schema dicts);
    subclasses set `options` (and validate as they need)."""

    options: tuple = ()


class OneOfFieldExtension(OpenApiSerializerFieldExtension):
    target_class = OneOfField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return _one_of(auto_schema, self.target.options, direction)


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Request bodies reject undeclared fields: say so with additionalProperties: false."""

    target_class = "vibebox.api.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        # The views never validate partially, not even for PATCH: required fields stay required.
        target = copy.copy(self.target)
        target.partial = False
        schema = auto_schema._map_serializer(target, direction, bypass_extensions=True)
        if schema.get("description") == get_doc(StrictSerializer):  # inherited, not the body's own
            del schema["description"]
        if direction == "request":
            for prop in schema.get("properties", {}).values():
                _no_nul(prop)
        groups = {}
        if target.any_of_required:
            groups["anyOf"] = [{"required": [name]} for name in target.any_of_required]
        if target.not_together:
            groups["not"] = {"required": list(target.not_together)}
        return {**schema, **groups, "additionalProperties": False}


NO_NUL = "^[^\\u0000]*$"


def _no_nul(schema: dict) -> None:
    """DRF's string fields refuse NUL characters: say so where no pattern or format says more."""
    if schema.get("type") == "string" and not {"pattern", "format", "enum"} & set(schema):
        schema["pattern"] = NO_NUL
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _no_nul(schema[key])


class MapSerializer(serializers.Serializer):
    """Schema only: a JSON object of names to values, each one of `values` (serializer classes or
    schema dicts); `nullable` values too."""

    values: tuple = ()
    nullable = False


class MapSerializerExtension(OpenApiSerializerExtension):
    target_class = MapSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = _one_of(auto_schema, self.target.values, direction)
        if self.target.nullable:
            schema = {"nullable": True, **({"allOf": [schema]} if "$ref" in schema else schema)}
        description = type(self.target).__doc__
        return {
            "type": "object",
            **({"description": description} if description else {}),
            "additionalProperties": schema,
        }
