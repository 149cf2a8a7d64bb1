"""What every resolver sees as `info.context`: who acts (the same Actor the REST views use), where,
with which key scopes, and this request's dataloaders. Built by the HTTP view and by the WebSocket
consumer alike, through `get_context`."""

from dataclasses import dataclass, field
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from apps.keys.actors import actor_for, actor_of
from apps.keys.models import ApiKey
from apps.orgs.actors import Actor
from vibebox import exceptions as errors

from .loaders import Loaders


@dataclass
class Context:
    user: Any
    key: ApiKey | None = None  # None: a signed-in browser session, which acts with every scope
    request: Any = None  # the DRF request (HTTP) or None (WebSocket)
    session: Any = None
    scope: dict | None = None  # the ASGI scope of a WebSocket
    loaders: Loaders = field(default_factory=Loaders)

    @cached_property
    def actor(self) -> Actor:
        if self.request is not None:
            return actor_of(self.request)
        return actor_for(user=self.user, key=self.key, session=self.session)

    @property
    def guard_request(self):
        """What apps/sandboxes/api/access.read_guard reads (`.auth`): the request, or the socket's key."""
        return self.request if self.request is not None else SimpleNamespace(auth=self.key)

    @property
    def org(self):
        return self.actor.org

    def has_scope(self, scope: str) -> bool:
        return self.key is None or scope in self.key.scopes

    def require_scopes(self, *scopes: str) -> None:
        """A key lacking one of `scopes` gets REST's 403 `insufficient_scope` (the field is null)."""
        if self.key is None:
            return
        missing = [scope for scope in scopes if scope not in self.key.scopes]
        if missing:
            raise errors.InsufficientScope(details={"required": list(scopes), "missing": missing})


def get_context(*, request=None, user=None, key: ApiKey | None = None, session=None, scope=None) -> Context:
    """From a DRF request (`request`), or from a WebSocket's authenticated `user`, `key`, `session`
    and ASGI `scope` (apps/keys/ws.py)."""
    if request is not None:
        auth = getattr(request, "auth", None)
        return Context(
            user=request.user,
            key=auth if isinstance(auth, ApiKey) else None,
            request=request,
            session=getattr(request, "session", None),
        )
    return Context(user=user, key=key, session=session, scope=scope)
