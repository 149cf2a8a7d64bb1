"""Authentication for WebSockets, the same keys and scopes as the REST API.

A key comes in the `Authorization: Bearer` header (agents, SDKs) or as the subprotocol
`vibebox.<key>` (browsers cannot set headers); signed-in dashboard users come with their
session cookie (Channels' AuthMiddlewareStack puts them in scope["user"]).
"""

from importlib import import_module

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings

from apps.orgs import selectors as org_selectors
from vibebox import exceptions as errors
from vibebox.asgiheaders import header

from .models import ApiKey
from .services import api_key_use

SUBPROTOCOL_PREFIX = "vibebox."


def key_from_scope(scope) -> tuple[str, str | None]:
    """(the key, the subprotocol to accept with, if it came as one)."""
    authorization = header(scope, b"authorization")
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return secret.strip(), None
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(SUBPROTOCOL_PREFIX):
            return protocol[len(SUBPROTOCOL_PREFIX) :], protocol
    return header(scope, b"x-api-key"), None


async def authenticate(scope, needed: list[str]) -> tuple[object, ApiKey | None, str | None]:
    """(user, key or None for a session, subprotocol). Raises NotAuthenticated, InvalidApiKey
    or InsufficientScope."""
    secret, subprotocol = key_from_scope(scope)
    if secret:
        key = await database_sync_to_async(api_key_use)(secret=secret)
        if key is None:
            raise errors.InvalidApiKey()
        missing = [scope_name for scope_name in needed if scope_name not in key.scopes]
        if missing:
            raise errors.InsufficientScope(details={"required": needed, "missing": missing})
        return key.user, key, subprotocol
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return user, None, None
    raise errors.NotAuthenticated()


@database_sync_to_async
def _key_problem(key_id: str, needed: list[str]) -> errors.ApplicationError | None:
    key = ApiKey.objects.select_related("user", "org").filter(pk=key_id).first()
    if key is None or not key.is_active():
        return errors.InvalidApiKey("The API key was revoked or has expired.")
    if not key.user.is_active:
        return errors.InvalidApiKey("The API key's user was deactivated.")
    if key.org_id is not None and org_selectors.membership_get(org=key.org, user=key.user) is None:
        return errors.InvalidApiKey("The API key's user left the key's organization.")
    missing = [scope_name for scope_name in needed if scope_name not in key.scopes]
    if missing:
        return errors.InsufficientScope(details={"required": needed, "missing": missing})
    return None


async def recheck(scope, user, key: ApiKey | None, needed: list[str]) -> errors.ApplicationError | None:
    """Why a connection authenticated earlier may no longer go on, or None: its key was revoked,
    expired or lost a scope it needs, or its user left the key's organization; its session was
    logged out, expired or invalidated (a password change); its user was deactivated. Reads the
    database and the session store afresh."""
    if key is not None:
        return await _key_problem(key.pk, needed)
    session = scope.get("session")
    session_key = getattr(session, "session_key", None)
    if not session_key:
        return errors.NotAuthenticated("The session ended.")
    # A fresh store: the scope's session was loaded once, at connect. channels' get_user checks
    # the session's auth hash and that the user is still active, as Django's does for a request.
    fresh = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    current = await get_user({"session": fresh})
    if not current.is_authenticated or current.pk != user.pk:
        return errors.NotAuthenticated("The session was logged out or has expired.")
    return None
