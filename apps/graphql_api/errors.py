"""One mapping from our errors to GraphQL errors, for queries, mutations and subscriptions alike.

A `VibeBoxError` (vibebox/exceptions.py `ApplicationError`) or a DRF `APIException` (validation
errors included) becomes a GraphQL error whose `extensions` carry REST's envelope:
`{code, status, details?}`, computed by REST's own exception handler so the codes cannot drift.
A GraphQL syntax or validation error is `graphql_invalid`. Anything else is `internal_error` with a
fixed message: no exception text, no stack trace (it is logged here instead).
"""

import logging
from collections.abc import Iterator

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from graphql import GraphQLError
from rest_framework.exceptions import APIException
from strawberry.extensions import SchemaExtension

from vibebox import exceptions as app
from vibebox.api.errors import TOO_LARGE, database_unavailable_error, exception_handler

logger = logging.getLogger("vibebox.graphql")

KNOWN = (app.ApplicationError, APIException, Http404, DjangoPermissionDenied, *TOO_LARGE)
INTERNAL_MESSAGE = "Internal server error."


def rest_error(exc: BaseException) -> tuple[str, int, str, dict]:
    """(code, status, message, details) exactly as REST would answer `exc`."""
    exc = database_unavailable_error(exc) or exc
    if isinstance(exc, KNOWN):
        response = exception_handler(exc, {})
        body = response.data["error"]
        return body["code"], response.status_code, body["message"], body.get("details") or {}
    logger.error("unhandled GraphQL error", exc_info=exc)
    return "internal_error", 500, INTERNAL_MESSAGE, {}


def extensions_for(code: str, status: int, details: dict | None = None) -> dict:
    extensions = {"code": code, "status": status}
    if details:
        extensions["details"] = details
    return extensions


def graphql_error(exc: BaseException, *, nodes=None, path=None) -> GraphQLError:
    """An exception raised outside the executor (say, a subscription's source) -> a GraphQL error."""
    code, status, message, details = rest_error(exc)
    return GraphQLError(message, nodes=nodes, path=path, extensions=extensions_for(code, status, details))


def to_graphql_error(error: GraphQLError) -> GraphQLError:
    """A GraphQL error as the executor made it -> the same error with REST's code in `extensions`."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        source = original or error
        code = (source.extensions or {}).get("code")
        if code in app.ERROR_CODES:  # ours already (the limits' validation rules)
            return error
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=extensions_for("graphql_invalid", 400),
        )
    code, status, message, details = rest_error(original)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions_for(code, status, details),
    )


def map_errors(errors: list[GraphQLError] | None) -> list[GraphQLError] | None:
    return [to_graphql_error(error) for error in errors] if errors else errors


class RestErrors(SchemaExtension):
    """Rewrites every result's errors with `to_graphql_error` (HTTP and WebSocket alike)."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = map_errors(result.errors)
        if self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = map_errors(self.execution_context.pre_execution_errors)
