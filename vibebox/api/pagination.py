from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; answers `{count, next, previous, results}`."""

    default_limit = 50
    max_limit = 500

    def get_paginated_response_schema(self, schema):
        """For the OpenAPI document: every page has all four keys (next and previous may be null)."""
        return {**super().get_paginated_response_schema(schema), "required": ["count", "next", "previous", "results"]}
