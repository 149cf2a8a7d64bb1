"""The URLs of a sandbox's port: the host form `<scheme>://<port>-<id>.<domain>[:<server port>]/`
and the path form `<public url>/preview/<id>/<port>/` (docs/api.md, "Preview URLs")."""

import datetime as dt
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from . import tokens

PATH_PREFIX = "/preview/"


def _public() -> tuple[str, int | None]:
    """VIBEBOX_PUBLIC_URL's scheme and port (None: the scheme's default)."""
    if not settings.VIBEBOX_PUBLIC_URL:
        return "", None
    parts = urlsplit(settings.VIBEBOX_PUBLIC_URL)
    try:
        return parts.scheme, parts.port
    except ValueError:
        return parts.scheme, None


def scheme() -> str:
    return settings.VIBEBOX_PREVIEW_URL_SCHEME or _public()[0] or "http"


def server_port() -> int | None:
    """The port of the host form: VIBEBOX_PUBLIC_URL's (None when it has the scheme's default),
    else VIBEBOX_PORT."""
    public_scheme, public_port = _public()
    if public_scheme:
        return public_port
    return settings.VIBEBOX_PORT


def host_url(sandbox_id: str, port: int) -> str:
    chosen = scheme()
    server = server_port()
    suffix = "" if server is None or (chosen, server) in (("http", 80), ("https", 443)) else f":{server}"
    return f"{chosen}://{port}-{sandbox_id}.{settings.VIBEBOX_PREVIEW_DOMAIN}{suffix}/"


def path_prefix(sandbox_id: str, port: int) -> str:
    return f"{PATH_PREFIX}{sandbox_id}/{port}/"


def path_url(sandbox_id: str, port: int, *, origin: str) -> str:
    """`origin`: VIBEBOX_PUBLIC_URL, else the origin the request came to."""
    return (settings.VIBEBOX_PUBLIC_URL or origin.rstrip("/")) + path_prefix(sandbox_id, port)


@dataclass(frozen=True)
class SignedUrl:
    url: str
    token: str
    expires_at: dt.datetime


def signed_url(sandbox_id: str, port: int, *, form: str, seconds: float, origin: str) -> SignedUrl:
    """A URL of `form` ("host" or "path") that opens the port for `seconds`."""
    expires_at = int(time.time() + seconds)
    token = tokens.token_make(sandbox_id=sandbox_id, port=port, expires_at=expires_at)
    base = host_url(sandbox_id, port) if form == "host" else path_url(sandbox_id, port, origin=origin)
    return SignedUrl(
        url=f"{base}?{tokens.QUERY_PARAMETER}={token}",
        token=token,
        expires_at=dt.datetime.fromtimestamp(expires_at, tz=dt.UTC),
    )
