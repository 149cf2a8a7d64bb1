from rest_framework.pagination import LimitOffsetPagination

from vibebox import exceptions as errors

MAX_OFFSET = 2**31 - 1  # far beyond any list, well inside SQLite's 64-bit integers


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; answers `{count, next, previous, results}`. A limit or offset that is not
    a whole number in range is a 400 (DRF would silently use the default)."""

    default_limit = 50
    max_limit = 500

    @staticmethod
    def _parse(request, name: str, default: int, minimum: int, maximum: int) -> int:
        values = request.query_params.getlist(name)
        if not values:
            return default
        value = values[-1]
        if len(values) > 1 or not (value.isascii() and value.isdigit()) or not minimum <= int(value) <= maximum:
            raise errors.ValidationFailed(
                f"{name} is a whole number from {minimum} to {maximum}.",
                details={"fields": {name: [{"message": "out of range or not a number", "code": "invalid"}]}},
            )
        return int(value)

    def get_limit(self, request):
        return self._parse(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request):
        return self._parse(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"] = {**parameter["schema"], **bounds.get(parameter["name"], {})}
        return parameters

    def get_paginated_response_schema(self, schema):
        """For the OpenAPI document: every page has all four keys (next and previous may be null)."""
        return {**super().get_paginated_response_schema(schema), "required": ["count", "next", "previous", "results"]}
