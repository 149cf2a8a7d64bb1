import logging
import os

from django.core.asgi import get_asgi_application

from vibebox import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")
# Traces (off unless OTEL_EXPORTER_OTLP_ENDPOINT is set): set up before Django loads its middleware,
# which Django's instrumentation joins (vibebox/tracing.py).
tracing.configure(django=True)
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.agents.mcp import endpoint as mcp_endpoint  # noqa: E402
from apps.agents.mcp import is_mcp_path  # noqa: E402
from apps.sandboxes.consumers.base import Refusal  # noqa: E402
from apps.sandboxes.preview.routing import PreviewRouter  # noqa: E402
from apps.sandboxes.preview.tokens import RedactTokens  # noqa: E402
from vibebox import exceptions as errors  # noqa: E402
from vibebox.bodylimit import BodyLimitMiddleware  # noqa: E402
from vibebox.logs import RequestContext  # noqa: E402
from vibebox.origins import allowed_origins, origin_allowed, origins_of  # noqa: E402
from vibebox.requestthreads import PooledRequestThreads  # noqa: E402
from vibebox.routing import websocket_urlpatterns  # noqa: E402
from vibebox.streambody import StreamedUploads  # noqa: E402


class OriginGuard:
    """Browsers always send Origin: it must be one of ours, scheme, host and port alike (no
    cross-site use of a session; vibebox/origins.py). Agents and SDKs send none; they authenticate
    with a key, which no other site can use. A foreign origin is refused with 403 (4403)."""

    def __init__(self, app):
        self.app = app
        allowed_origins()  # a malformed VIBEBOX_ALLOWED_ORIGINS stops the server at start

    async def __call__(self, scope, receive, send):
        foreign = [origin for origin in origins_of(scope) if not origin_allowed(origin)]
        if not foreign:
            return await self.app(scope, receive, send)
        error = errors.PermissionDenied(
            "WebSockets from this origin are not allowed (VIBEBOX_ALLOWED_ORIGINS).",
            details={"origin": foreign[0][:200]},
        )
        return await Refusal.as_asgi(error=error)(scope, receive, send)


class HttpRouter:
    """/mcp goes to VibeBox's MCP server (Streamable HTTP, see apps/agents/mcp.py), the rest to Django."""

    def __init__(self, django_app):
        self.django_app = django_app

    async def __call__(self, scope, receive, send):
        if is_mcp_path(scope["path"]):
            await mcp_endpoint(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)


logging.getLogger("uvicorn.access").addFilter(RedactTokens())  # preview tokens are credentials

# Preview URLs come first (apps/sandboxes/preview/routing.py): their requests (a preview host, or
# /preview/<id>/<port>/) are the sandbox's, relayed as they stream, never seen by Django; the
# rest goes on.
application = PreviewRouter(
    ProtocolTypeRouter(
        {
            # The body limit comes first: it covers Django and /mcp alike (vibebox/bodylimit.py).
            # Django's requests run on reused threads that keep their database connections; raw
            # uploads reach their view as they arrive (vibebox/streambody.py).
            "http": BodyLimitMiddleware(HttpRouter(StreamedUploads(PooledRequestThreads(django_asgi_app)))),
            "websocket": OriginGuard(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
# Every request, previews' too: its id (X-Request-Id), traceparent, the access line (vibebox/logs.py),
# inside the request's server span when tracing is on (vibebox/tracing.py).
application = tracing.asgi(RequestContext(application))
