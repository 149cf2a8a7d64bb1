"""Which web pages may open VibeBox's WebSockets: full origins, compared exactly.

A browser sends the page's origin (`scheme://host[:port]`) with every WebSocket handshake and
also the user's session cookie, whatever page opened the socket. Comparing bare host names let
a page at http://localhost:3000 drive a signed-in user's terminal on localhost:8000, so the
scheme, host and port must all match an allowed origin. Clients that send no Origin (SDKs, the
CLI, agents) are not browsers: they authenticate with a key no other site holds, and pass.

Allowed: VIBEBOX_ALLOWED_ORIGINS when set; otherwise the server's own origins, http and https on
VIBEBOX_PORT for VIBEBOX_HOST and every name in ALLOWED_HOSTS, plus CSRF_TRUSTED_ORIGINS. No
wildcards, with DEBUG or without.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_PORTS = {"http": 80, "https": 443}
UNSPECIFIED_HOSTS = ("0.0.0.0", "::", "[::]", "")  # noqa: S104 - listening addresses, never an Origin's host


def normalize(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) origin, or None when it is not one (`null`, a path...)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _host(name: str) -> str:
    name = name.strip().lower()
    if ":" in name and not name.startswith("["):  # a bare IPv6 address
        name = f"[{name}]"
    return name


def allowed_origins() -> set[tuple[str, str, int]]:
    configured = settings.VIBEBOX_ALLOWED_ORIGINS
    if configured:
        allowed = set()
        for origin in configured:
            parsed = normalize(origin)
            if parsed is None or "*" in origin:
                raise ImproperlyConfigured(
                    f"VIBEBOX_ALLOWED_ORIGINS: {origin!r} is not an origin like https://vibebox.example.com:8443"
                )
            allowed.add(parsed)
        return allowed
    hosts = [settings.VIBEBOX_HOST, *settings.ALLOWED_HOSTS]
    allowed = set()
    for host in hosts:
        if "*" in host or host.startswith(".") or host in UNSPECIFIED_HOSTS:
            continue  # patterns are for Host headers; an origin must be exact
        for scheme in DEFAULT_PORTS:
            parsed = normalize(f"{scheme}://{_host(host)}:{settings.VIBEBOX_PORT}")
            if parsed is not None:
                allowed.add(parsed)
    for origin in settings.CSRF_TRUSTED_ORIGINS:
        parsed = normalize(origin)
        if parsed is not None and "*" not in origin:
            allowed.add(parsed)
    return allowed


def origin_allowed(origin: str) -> bool:
    parsed = normalize(origin)
    return parsed is not None and parsed in allowed_origins()


def origins_of(scope) -> list[str]:
    """Every Origin header of a handshake (a browser sends one)."""
    return [value.decode("latin-1") for name, value in scope.get("headers") or [] if name.lower() == b"origin"]
