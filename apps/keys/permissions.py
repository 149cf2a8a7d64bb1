from rest_framework.permissions import BasePermission

from vibebox import exceptions as errors

from .models import ApiKey


def required_scopes(view, method: str) -> list[str] | None:
    declared = getattr(view, "required_scopes", None)
    if declared is None:
        return None
    if method in ("HEAD", "OPTIONS"):
        method = "GET"
    action = getattr(view, "action", None)
    if action and action in declared:
        return declared[action]
    return declared.get(method)


class HasScopes(BasePermission):
    """Each view declares `required_scopes` per action or HTTP method; a key lacking one gets 403.

    Signed-in dashboard users (session authentication) act with every scope.
    A view that declares nothing is closed to keys, so a forgotten declaration fails safe.
    """

    def has_permission(self, request, view):
        key = request.auth
        if not hasattr(view, request.method.lower()):
            return True  # the view answers 405 for methods it does not have
        if not isinstance(key, ApiKey):
            return request.user is not None and request.user.is_authenticated
        needed = required_scopes(view, request.method)
        if needed is None:
            raise errors.InsufficientScope("This endpoint is not available to API keys.")
        missing = [scope for scope in needed if scope not in key.scopes]
        if missing:
            raise errors.InsufficientScope(details={"required": needed, "missing": missing})
        return True
