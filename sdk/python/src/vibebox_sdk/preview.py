"""Preview URLs: a sandbox's ports and the URLs that reach a server listening on one.

    sandbox.exec("python3 -m http.server 3000", background=True)
    print(sandbox.get_host(3000))                  # http://3000-sbx_….preview.localhost:8000/
    link = sandbox.preview_url(3000, expires_in="1h")
    print(link.url)                                # …/?vibebox_token=… (opens in any browser)
    sandbox.set_port_public(3000, True)            # no token needed any more

Two URL forms (docs/api.md, "Preview URLs"): the host form `http://<port>-<sandboxId>.<domain>/`,
the full-fidelity one (its own origin, cookies, WebSockets at any path), and the path form
`<server>/preview/<sandboxId>/<port>/` for setups without wildcard DNS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .models import _Model


@dataclass
class Port(_Model):
    """A port of a sandbox: listening now, and/or declared by its template."""

    port: int
    listening: bool = False
    declared: bool = False
    public: bool = False
    address: str = ""
    description: str = ""
    url: str = ""  # the host form, without a token
    path_url: str = ""  # the path form, without a token
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class PreviewUrl(_Model):
    """A signed, expiring link to a port: `url` carries the token (`?vibebox_token=…`)."""

    port: int
    url: str
    token: str = ""
    expires_at: str | None = None
    public: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        """`url` without its query (the token): what `get_host()` answers."""
        return without_query(self.url)


def without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
