"""GraphQL object types made from REST response serializers: same field names, the JSON types
they render, filled from the serializer's own `.data`, so a GraphQL field is the REST field of the
same name. One type per serializer (the first name it is made under), shared by queries and
mutations. Also the custom scalars those types use (schema.py maps them)."""

import keyword
import typing

import strawberry
from rest_framework import serializers as drf
from strawberry.scalars import JSON

SCALARS: dict = {}


def scalar(name: str, description: str, convert=None):
    """A custom scalar: the annotation type, its definition in SCALARS."""
    annotation = typing.NewType(name, object)
    SCALARS[annotation] = strawberry.scalar(
        name=name,
        description=description,
        serialize=convert or (lambda value: value),
        parse_value=convert or (lambda value: value),
    )
    return annotation


Long = scalar("Long", "An integer beyond GraphQL's 32 bits (bytes, sizes).", int)

_TYPES: dict[str, type] = {}
_BY_CLASS: dict[type, type] = {}
# An integer under one of these names (the field's or its type's: a memory's `limit`) may pass 2^31.
_LONG_NAMES = ("size", "bytes", "memory", "disk", "entries")


def _annotation(field, owner: str, name: str):
    if isinstance(field, drf.ListSerializer):
        inner = serializer_type(type(field.child), owner + name[:1].upper() + name[1:])
        annotation = list[inner]
    elif isinstance(field, drf.Serializer):
        annotation = serializer_type(type(field), owner + name[:1].upper() + name[1:])
    elif isinstance(field, drf.ListField):
        annotation = list[_annotation(field.child, owner, name)]
    elif isinstance(field, drf.BooleanField):
        annotation = bool
    elif isinstance(field, drf.IntegerField):
        annotation = Long if any(part in (owner + name).lower() for part in _LONG_NAMES) else int
    elif isinstance(field, drf.FloatField):
        annotation = float
    elif isinstance(field, (drf.DictField, drf.JSONField)):
        annotation = JSON
    elif isinstance(field, drf.SerializerMethodField):
        annotation = _method_annotation(field, owner, name)
    elif isinstance(field, (drf.CharField, drf.ChoiceField, drf.DateTimeField, drf.DateField, drf.DecimalField)):
        # Decimals are strings in REST (money: never a float), so here too
        annotation = str
    else:
        annotation = JSON
    optional = not field.read_only and not field.required  # a field an answer may leave out
    if getattr(field, "allow_null", False) or optional:
        return annotation | None
    return annotation


def _method_annotation(field, owner: str, name: str):
    serializer = field.parent
    method = getattr(serializer, field.method_name or f"get_{name}", None)
    declared = getattr(method, "_spectacular_annotation", {}).get("field")  # @extend_schema_field(Serializer)
    if isinstance(declared, type) and issubclass(declared, drf.Serializer):
        return serializer_type(declared, owner + name[:1].upper() + name[1:])
    returned = typing.get_type_hints(method).get("return") if method is not None else None
    if returned in (bool, str, int, float):
        return returned
    if returned == (str | None):
        return str | None
    if returned == list[str]:
        return list[str]
    return JSON


def serializer_type(serializer_class, name: str, description: str | None = None) -> type:
    """A GraphQL object type with the fields of a REST response serializer (same names, the JSON
    types they render). One per name."""
    if serializer_class in _BY_CLASS:
        return _BY_CLASS[serializer_class]
    if name in _TYPES:
        return _TYPES[name]
    fields = serializer_class().fields
    namespace = {"__annotations__": {}, "__module__": __name__}
    for field_name, field in fields.items():
        if getattr(field, "write_only", False):
            continue
        python_name = field_name + "_" if keyword.iskeyword(field_name) else field_name  # `from`, a window's start
        namespace["__annotations__"][python_name] = _annotation(field, name, field_name)
        namespace[python_name] = strawberry.field(
            name=field_name, default=None, description=str(field.help_text or "") or None
        )
    made = strawberry.type(type(name, (), namespace), description=description or (serializer_class.__doc__ or None))
    made._serializer_fields = fields  # for build()
    _TYPES[name] = _BY_CLASS[serializer_class] = made
    return made


def build(type_, data):
    """An instance of a serializer_type from the REST serializer's `.data`."""
    if data is None:
        return None
    values = {}
    for field in type_.__strawberry_definition__.fields:
        value = data.get(field.graphql_name or field.python_name) if isinstance(data, dict) else None
        values[field.python_name] = _build_value(field.type, value)
    return type_(**values)


def _build_value(annotation, value):
    if value is None:
        return None
    inner = getattr(annotation, "of_type", annotation)  # StrawberryOptional / StrawberryList
    if hasattr(annotation, "of_type") and isinstance(value, list):
        return [_build_value(inner, item) for item in value]
    if hasattr(inner, "of_type") and isinstance(value, list):
        return [_build_value(inner.of_type, item) for item in value]
    if getattr(inner, "__strawberry_definition__", None) is not None and isinstance(value, dict):
        return build(inner, value)
    return value


def answer(type_, serializer_class, instance, **kwargs):
    return build(type_, serializer_class(instance, **kwargs).data)
