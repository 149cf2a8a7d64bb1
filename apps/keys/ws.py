"""Authentication for WebSockets, the same keys and scopes as the REST API.

A key comes in the `Authorization: Bearer` header (agents, SDKs) or as the subprotocol
`vibebox.<key>` (browsers cannot set headers); signed-in dashboard users come with their
session cookie (Channels' AuthMiddlewareStack puts them in scope["user"]).
"""

from channels.db import database_sync_to_async

from vibebox import exceptions as errors

from .models import ApiKey
from .selectors import api_key_authenticate
from .services import api_key_record_use

SUBPROTOCOL_PREFIX = "vibebox."


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def key_from_scope(scope) -> tuple[str, str | None]:
    """(the key, the subprotocol to accept with, if it came as one)."""
    header = _header(scope, b"authorization")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer":
            return secret.strip(), None
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(SUBPROTOCOL_PREFIX):
            return protocol[len(SUBPROTOCOL_PREFIX) :], protocol
    return _header(scope, b"x-api-key"), None


@database_sync_to_async
def _authenticate_key(secret: str) -> ApiKey | None:
    key = api_key_authenticate(secret=secret)
    if key is not None:
        api_key_record_use(key=key)
    return key


async def authenticate(scope, needed: list[str]) -> tuple[object, ApiKey | None, str | None]:
    """(user, key or None for a session, subprotocol). Raises NotAuthenticated, InvalidApiKey
    or InsufficientScope."""
    secret, subprotocol = key_from_scope(scope)
    if secret:
        key = await _authenticate_key(secret)
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
