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
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from strawberry.exceptions import MissingQueryError
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult
from strawberry.types.graphql import OperationType

from vibebox import exceptions as app
from vibebox.api.parsers import parse_json
from vibebox.middleware import current_request_id

from . import persisted
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


def multipart_operations(request) -> dict:
    """The GraphQL multipart request spec (github.com/jaydenseric/graphql-multipart-request-spec):
    `operations` (the JSON body), `map` (file part -> where it goes in the variables, e.g.
    {"0": ["variables.file"]}) and the file parts. Answers the body with each file in its place.
    One operation per request (no batches)."""
    operations = _json_part(request, "operations")
    mapping = _json_part(request, "map")
    if not isinstance(operations, dict):
        raise _field("operations", "one operation, a JSON object (batches are not taken)")
    if not isinstance(mapping, dict):
        raise _field("map", "a JSON object: file part -> its paths in the variables")
    for part, paths in mapping.items():
        upload = request.FILES.get(part)
        if upload is None:
            raise _field("map", f"no file part named {part[:40]!r}")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise _field("map", f"{part[:40]!r}: a list of paths such as variables.file")
        for path in paths:
            _place(operations, path, upload)
    return operations


def _json_part(request, name: str):
    if not isinstance(request.data.get(name), str):
        raise _field(name, "a form field holding JSON is required")
    return _json_param(request.data, name)


def _json_param(params, name: str):
    """The JSON in a query parameter or form field `name`; None when absent or empty."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        return parse_json(raw.encode())
    except drf.ParseError:
        raise _field(name, "not valid JSON") from None


def _place(operations: dict, path: str, upload) -> None:
    """`upload` at `path` (variables.file, variables.files.0) where the client put a null."""
    head, *steps = path.split(".")
    where = operations.get("variables") if head == "variables" else None
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        if isinstance(where, dict) and step in where:
            if last and where[step] is None:
                where[step] = upload
                return
            where = where[step]
        elif isinstance(where, list) and step.isdigit() and int(step) < len(where):
            if last and where[int(step)] is None:
                where[int(step)] = upload
                return
            where = where[int(step)]
        else:
            break
    raise _field("map", f"{path[:80]!r} is not a null in the operation's variables")


def _wants_html(request) -> bool:
    accept = request.headers.get("Accept", "")
    return request.method == "GET" and "text/html" in accept and "query" not in request.query_params


@extend_schema(exclude=True)  # GraphQL describes itself (docs/schema.graphql), not in the OpenAPI document
class GraphQLView(APIView):
    required_scopes = {"GET": [], "POST": []}  # the fields check theirs (Context.require_scopes)
    parser_classes = [
        *api_settings.DEFAULT_PARSER_CLASSES,
        MultiPartParser,
    ]  # multipart: uploads (multipart_operations)

    def perform_content_negotiation(self, request, force=False):
        """JSON whatever the Accept header says: GraphiQL's HTML is rendered outside DRF (in `get`)."""
        return super().perform_content_negotiation(request, force=True)

    def get(self, request):
        if _wants_html(request):
            return render(request._request, "graphql_api/graphiql.html", {"endpoint": request.path})
        params = request.query_params
        variables, extensions = _json_param(params, "variables"), _json_param(params, "extensions")
        query = persisted.resolve(params.get("query"), extensions)
        return self._run(request, query, variables, params.get("operationName"), QUERIES_ONLY)

    def post(self, request):
        multipart = (request.content_type or "").startswith("multipart/form-data")
        body = multipart_operations(request) if multipart else request.data
        if not isinstance(body, dict):
            raise app.ValidationFailed("The body is a JSON object: {query, variables?, operationName?}.")
        unknown = sorted(set(body) - BODY_FIELDS)
        if unknown:
            raise app.UnknownField(details={"fields": unknown})
        query = persisted.resolve(body.get("query"), body.get("extensions"))
        return self._run(request, query, body.get("variables"), body.get("operationName"), EVERY_OPERATION)

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
