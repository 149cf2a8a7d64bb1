"""Reading a request's headers off its ASGI scope, for code that runs before Django's request exists."""


def header(scope, name: bytes) -> str:
    """The first `name` header (lowercase bytes) as text, or "" when there is none."""
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""
