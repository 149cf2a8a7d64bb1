import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from vibebox.bodylimit import BodyLimitMiddleware  # noqa: E402
from vibebox.mcp_http import endpoint as mcp_endpoint  # noqa: E402
from vibebox.mcp_http import is_mcp_path  # noqa: E402
from vibebox.routing import websocket_urlpatterns  # noqa: E402


class BrowserOriginValidator(OriginValidator):
    """Browsers always send Origin: it must be one of our hosts (no cross-site use of a session).
    Agents and SDKs send none; they authenticate with a key, which no other site can use."""

    def valid_origin(self, parsed_origin):
        return parsed_origin is None or self.validate_origin(parsed_origin)


class HttpRouter:
    """/mcp goes to VibeBox's MCP server (Streamable HTTP, see vibebox/mcp_http.py), the rest to Django."""

    def __init__(self, django_app):
        self.django_app = django_app

    async def __call__(self, scope, receive, send):
        if is_mcp_path(scope["path"]):
            await mcp_endpoint(scope, receive, send)
        else:
            await self.django_app(scope, receive, send)


allowed_origins = ["*"] if settings.DEBUG else settings.ALLOWED_HOSTS

application = ProtocolTypeRouter(
    {
        "http": HttpRouter(BodyLimitMiddleware(django_asgi_app)),
        "websocket": BrowserOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), allowed_origins),
    }
)
