"""Who is acting, through which door: the context every audit entry takes its actor from.

The HTTP middleware (vibebox.middleware.AuditContextMiddleware) binds the request, since the API
authenticates inside the view; WebSocket consumers and the MCP endpoint bind their user and key
once authenticated; management commands and Celery tasks run with no binding and act as
`system`. A contextvar, so each request thread and each consumer task sees its own.
"""

import hashlib
import hmac
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Context:
    source: str = "system"
    ip: str = ""
    user_agent: str = ""
    request: Any = field(default=None, repr=False)  # read when an entry is written
    user: Any = None
    key_id: str = ""

    def anonymous_name(self) -> str:
        """Who acts when no user does: "system" (a task, a command), "anonymous" (a request)."""
        return "anonymous" if self.request is not None else "system"

    def actor(self) -> tuple[Any, str]:
        """(the acting user or None, the acting API key's id or "")."""
        if self.user is not None:
            return self.user, self.key_id
        request = self.request
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None, ""
        key = getattr(request, "auth", None)  # the API key (DRF sets it on the Django request too)
        key_id = getattr(key, "pk", "") if key is not None and not isinstance(key, (str, bytes)) else ""
        return user, str(key_id or "")


_SYSTEM = Context()
_current: ContextVar[Context] = ContextVar("vibebox_audit_context", default=_SYSTEM)


def current() -> Context:
    return _current.get()


def client_of(meta) -> tuple[str, str]:
    """(IP, user agent) from a WSGI/ASGI request's META (uvicorn already resolved trusted proxies)."""
    return meta.get("REMOTE_ADDR", "")[:45], meta.get("HTTP_USER_AGENT", "")[:256]


def bind(**fields):
    """Sets the context for what runs from here on (in this thread or task); returns a token for reset()."""
    return _current.set(Context(**fields))


def reset(token) -> None:
    _current.reset(token)


@contextmanager
def acting(**fields):
    token = bind(**fields)
    try:
        yield
    finally:
        reset(token)


VIA_HEADER = "X-VibeBox-Via"


def via_token(source: str) -> str:
    """What the server's own API clients (the MCP endpoint's tools) send in VIA_HEADER so their
    calls are recorded as coming through that door: derived from SECRET_KEY, so no one else can."""
    from django.conf import settings

    return hmac.new(settings.SECRET_KEY.encode(), f"vibebox-audit-via:{source}".encode(), hashlib.sha256).hexdigest()
