"""Renders every API error in one envelope with a stable code."""

import logging
import sys

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from vibebox import database
from vibebox import exceptions as app
from vibebox.middleware import current_request_id

logger = logging.getLogger("vibebox.api")

_DRF_CODES = {
    drf.NotAuthenticated: app.NotAuthenticated,
    drf.AuthenticationFailed: app.InvalidApiKey,
    drf.PermissionDenied: app.PermissionDenied,
    drf.NotFound: app.NotFound,
    drf.MethodNotAllowed: app.MethodNotAllowed,
    drf.NotAcceptable: app.NotAcceptable,
    drf.UnsupportedMediaType: app.UnsupportedMediaType,
    drf.Throttled: app.RateLimited,
    drf.ParseError: app.InvalidJson,
}


def envelope(code: str, message: str, details: dict | None = None) -> dict:
    return {
        "error": {"code": code, "message": message, "details": details or {}},
        "requestId": current_request_id(),
    }


def _leaf_errors(detail, path=""):
    """Flattens DRF's nested error detail into (field path, message, code) triples."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            yield from _leaf_errors(value, f"{path}.{key}" if path else str(key))
    elif isinstance(detail, list):
        for item in detail:
            yield from _leaf_errors(item, path)
    else:
        yield path or "non_field_errors", str(detail), getattr(detail, "code", "invalid")


def _validation_response(exc: drf.ValidationError) -> Response:
    leaves = list(_leaf_errors(exc.detail))
    fields: dict[str, list[dict]] = {}
    for field, message, code in leaves:
        fields.setdefault(field, []).append({"message": message, "code": code})
    codes = {code for _, _, code in leaves}
    # One registered code for every problem (say, invalid_duration): surface it as the code.
    code = codes.pop() if len(codes) == 1 else "validation_error"
    if code not in app.ERROR_CODES or app.ERROR_CODES[code] != 400:
        code = "validation_error"
    first_field, first_message, _ = leaves[0] if leaves else ("", "The request is invalid.", "")
    message = first_message if first_field in ("", "non_field_errors") else f"{first_field}: {first_message}"
    return Response(envelope(code, message, {"fields": fields}), status=400)


def too_large_error(exc) -> app.ApplicationError:
    """Django's own refusals of a request it reads whole (its body, form or query fields)."""
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return app.RequestTooLarge(f"The request body is too large (at most {limit} bytes).", details={"limit": limit})
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return app.RequestTooLarge(f"The request has too many files (at most {limit}).", details={"maxFiles": limit})
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    return app.RequestTooLarge(f"The request has too many fields (at most {limit}).", details={"maxFields": limit})


TOO_LARGE = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


def database_unavailable_error(exc: BaseException) -> app.ApplicationError | None:
    """`503 database_unavailable` for an error that means the database cannot be reached (logged
    without a traceback: the cause is outside this request), else None."""
    if not database.unavailable(exc):
        return None
    logger.warning("database unavailable: %s", str(exc).strip()[:300])
    return app.DatabaseUnavailable(headers={"Retry-After": str(database.RETRY_AFTER_SECONDS)})


def exception_handler(exc, context):
    if isinstance(exc, TOO_LARGE):
        exc = too_large_error(exc)
    exc = database_unavailable_error(exc) or exc
    if isinstance(exc, app.ApplicationError):
        return Response(envelope(exc.code, exc.message, exc.details), status=exc.status, headers=exc.headers)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.ValidationError):
        return _validation_response(exc)
    if isinstance(exc, drf.APIException):
        error_class = next((cls for base, cls in _DRF_CODES.items() if isinstance(exc, base)), app.ApplicationError)
        headers = {}
        if isinstance(exc, drf.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        if getattr(exc, "auth_header", None):  # set by DRF from the first authenticator
            headers["WWW-Authenticate"] = exc.auth_header
        message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else error_class.message
        return Response(envelope(error_class.code, message), status=error_class.status, headers=headers)
    logger.exception("unhandled API error", exc_info=exc)
    return Response(envelope("internal_error", "Internal server error."), status=500)


# Django-level handlers so 404/500 outside DRF views (unknown URLs) use the envelope too
# for API paths; other paths get Django's usual pages.
def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse(envelope("not_found", "No such endpoint."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler400(request, exception=None):
    """Django answers 400 for a SuspiciousOperation outside DRF (the dashboard's forms, the CSRF
    check reading one): a body, form or query string above Django's limits is a 413 here."""
    if isinstance(exception, TOO_LARGE):
        error = too_large_error(exception)
        return JsonResponse(envelope(error.code, error.message, error.details), status=error.status)
    if _is_api(request):
        return JsonResponse(envelope("validation_error", "Bad request."), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def handler500(request):
    # Django calls this inside its `except` (django.core.handlers.exception), so the exception is at
    # hand: one raised before any view (a middleware's session or key lookup) with the database
    # down is a 503 here, for the API, GraphQL and the dashboard alike.
    unavailable = database_unavailable_error(sys.exception())
    if unavailable is not None:
        headers = unavailable.headers
        if _is_api(request) or request.path.startswith("/graphql"):
            body = envelope(unavailable.code, unavailable.message)
            return JsonResponse(body, status=unavailable.status, headers=headers)
        from django.template.loader import render_to_string

        html = render_to_string("503.html", {"message": unavailable.message})  # no request: no database
        return HttpResponse(html, status=unavailable.status, headers=headers)
    if _is_api(request):
        return JsonResponse(envelope("internal_error", "Internal server error."), status=500)
    from django.views.defaults import server_error

    return server_error(request)
