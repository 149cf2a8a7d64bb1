"""`/graphql`: a DRF view, so authentication (Bearer / X-API-Key, session + CSRF), the per-key rate
limit (one budget shared with REST) and error codes are REST's own.

POST runs queries and mutations; GET runs queries only (`?query=&variables=&operationName=`).
A signed-in browser asking for HTML gets GraphiQL, served from static/vendor/graphiql (no CDN).
Which scopes an API key needs is decided per field (the same scopes as the REST endpoints), so the
view itself is open to every valid key.
"""

from django.conf import settings
from django.shortcuts import redirect, render
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import APIView
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult
from strawberry.types.graphql import OperationType

from vibebox import exceptions as app
from vibebox.api.parsers import parse_json
from vibebox.middleware import current_request_id

from .context import get_context
from .errors import extensions_for, map_errors
from .schema import schema

BODY_FIELDS = {"query", "variables", "operationName", "extensions"}
QUERIES_ONLY = (OperationType.QUERY,)
EVERY_OPERATION = (OperationType.QUERY, OperationType.MUTATION)


def error_body(code: str, status: int, message: str, details: dict | None = None) -> dict:
    return {
        "data": None,
        "errors": [{"message": message, "extensions": extensions_for(code, status, details)}],
        "requestId": current_request_id(),
    }


def result_body(result: ExecutionResult) -> dict:
    body: dict = {"data": result.data}
    errors = map_errors(result.errors)
    if errors:
        body["errors"] = [error.formatted for error in errors]
    return body


def _field(name: str, message: str) -> app.ApplicationError:
    return app.ValidationFailed(
        f"{name}: {message}", details={"fields": {name: [{"message": message, "code": "invalid"}]}}
    )


def _wants_html(request) -> bool:
    accept = request.headers.get("Accept", "")
    return request.method == "GET" and "text/html" in accept and "query" not in request.query_params


@extend_schema(exclude=True)  # GraphQL describes itself (docs/schema.graphql), not in the OpenAPI document
class GraphQLView(APIView):
    required_scopes = {"GET": [], "POST": []}  # the fields check theirs (Context.require_scopes)

    def perform_content_negotiation(self, request, force=False):
        """JSON whatever the Accept header says: GraphiQL's HTML is rendered outside DRF (in `get`)."""
        return super().perform_content_negotiation(request, force=True)

    def get(self, request):
        if _wants_html(request):
            return render(request._request, "graphql_api/graphiql.html", {"endpoint": request.path})
        params = request.query_params
        variables = params.get("variables")
        if variables:
            try:
                variables = parse_json(variables.encode())
            except drf.ParseError:
                raise _field("variables", "not a JSON object") from None
        return self._run(request, params.get("query"), variables, params.get("operationName"), QUERIES_ONLY)

    def post(self, request):
        body = request.data
        if not isinstance(body, dict):
            raise app.ValidationFailed("The body is a JSON object: {query, variables?, operationName?}.")
        unknown = sorted(set(body) - BODY_FIELDS)
        if unknown:
            raise app.UnknownField(details={"fields": unknown})
        return self._run(request, body.get("query"), body.get("variables"), body.get("operationName"), EVERY_OPERATION)

    def _run(self, request, query, variables, operation_name, allowed) -> Response:
        if not isinstance(query, str) or not query.strip():
            raise _field("query", "a GraphQL document is required")
        if variables is not None and not isinstance(variables, dict):
            raise _field("variables", "not a JSON object")
        if operation_name is not None and not isinstance(operation_name, str):
            raise _field("operationName", "not a string")
        try:
            result = schema.execute_sync(
                query,
                variable_values=variables,
                context_value=get_context(request=request),
                operation_name=operation_name,
                allowed_operation_types=allowed,
            )
        except InvalidOperationTypeError:
            error = app.MethodNotAllowed("GET runs queries only; send mutations with POST.")
            return Response(error_body(error.code, error.status, error.message), status=405, headers={"Allow": "POST"})
        except MissingQueryError:
            raise _field("query", "a GraphQL document is required") from None
        return Response(result_body(result))

    def handle_exception(self, exc):
        """REST's answer (status, code, headers), shaped as a GraphQL response; a browser that is
        not signed in is sent to the sign-in page instead of GraphiQL."""
        if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed) and _wants_html(self.request):
            return redirect(f"{settings.LOGIN_URL}?next={self.request.path}")
        response = super().handle_exception(exc)
        envelope = response.data.get("error") if isinstance(response.data, dict) else None
        if envelope is not None:
            response.data = error_body(envelope["code"], response.status_code, envelope["message"], envelope["details"])
        return response
