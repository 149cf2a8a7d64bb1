import hmac

from asgiref.local import Local
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django_htmx.middleware import HtmxMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

from apps.audit import context as audit_context
from vibebox import logs

_current = Local()


def current_request_id() -> str:
    return logs.current_request_id() or getattr(_current, "request_id", "")


class RequestIdMiddleware:
    """Gives every request an id (`X-Request-Id`), echoed in error envelopes and logs: the one
    vibebox.logs.RequestContext chose at the ASGI door, whose context this binds the request to (its
    route, sandbox and caller go into log lines); without it (Django's test client), its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = logs.attach_django_request(request)
        token = None
        if not request_id:
            request_id = logs.request_id_from(request.headers.get("X-Request-Id"))
            token = logs.bind(request_id, request=request)
        request.request_id = request_id
        _current.request_id = request_id
        try:
            response = self.get_response(request)
        finally:
            if token is not None:
                logs.unbind(token)
        response["X-Request-Id"] = request_id
        return response


class NulCharacterMiddleware:
    """A NUL character (`%00`) in the path or the query string is a 400 nul_character, before any
    view reads it:
    PostgreSQL cannot store or compare a string holding one (psycopg refuses it: a 500), SQLite
    can, and no identifier, name or filter of ours has one. JSON bodies are checked by the API's
    parser (vibebox/api/parsers.py), form fields by Django's and DRF's CharFields."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            from django.http import HttpResponseBadRequest, JsonResponse

            from vibebox.api.errors import envelope

            message = "The path or query string holds a NUL character (%00), which no field takes."
            if request.path_info.startswith("/api/"):
                return JsonResponse(envelope("nul_character", message, {"in": "url"}), status=400)
            return HttpResponseBadRequest(message, content_type="text/plain")
        return self.get_response(request)


# Under ASGI, Django runs a middleware that can do both in async mode, and Django's own
# (MiddlewareMixin) then hands each process_request/process_view/process_response to a thread:
# about 30 thread hops per request, 7 of a trivial request's 8 ms. Sync-only, the whole chain
# and the (sync) view run in one hop. (No project view is async; the MCP endpoint and the
# gateway are ASGI apps of their own, outside this chain.)


def _sync_only(middleware: type) -> type:
    return type(middleware.__name__, (middleware,), {"async_capable": False, "__module__": __name__})


Security = _sync_only(SecurityMiddleware)
WhiteNoise = _sync_only(WhiteNoiseMiddleware)
Session = _sync_only(SessionMiddleware)
Common = _sync_only(CommonMiddleware)
Csrf = _sync_only(CsrfViewMiddleware)
Authentication = _sync_only(AuthenticationMiddleware)
Message = _sync_only(MessageMiddleware)
XFrameOptions = _sync_only(XFrameOptionsMiddleware)
Htmx = _sync_only(HtmxMiddleware)


class AuditContextMiddleware:
    """Binds the request to the audit context (apps/audit/context.py) for the view it runs: which
    door (the admin, the API, the MCP endpoint, else the dashboard), the client's IP and user agent,
    and the request itself, whose user the API's authentication sets later."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        # /graphql is the same API as /api/ (GraphiQL's session calls included): its writes are "api".
        is_api = path.startswith("/api/") or path == "/graphql"
        source = "admin" if path.startswith("/admin/") else "api" if is_api else "dashboard"
        via = request.headers.get(audit_context.VIA_HEADER)
        if via and source == "api" and hmac.compare_digest(via, audit_context.via_token("mcp")):
            source = "mcp"
        ip, user_agent = audit_context.client_of(request.META)
        token = audit_context.bind(source=source, ip=ip, user_agent=user_agent, request=request)
        try:
            return self.get_response(request)
        finally:
            audit_context.reset(token)
