"""Reaching a sandbox's server through the preview proxy from a test.

The host form's names (`3000-sbx_….preview.localhost`) resolve to loopback in browsers, not in
this machine's resolver: requests go to 127.0.0.1 with the preview host in the Host header.
Cookies are kept per host, as a browser keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import urljoin, urlsplit

import httpx
from vibebox_sdk import Port


class Browser:
    """A minimal cookie-keeping client for preview URLs (redirects followed by hand)."""

    def __init__(self) -> None:
        self.cookies: dict[str, dict[str, str]] = {}

    def get(self, url: str, *, max_redirects: int = 5) -> httpx.Response:
        for _ in range(max_redirects + 1):
            parts = urlsplit(url)
            host = parts.netloc
            target = f"{parts.scheme}://127.0.0.1:{parts.port or 80}{parts.path or '/'}"
            if parts.query:
                target += "?" + parts.query
            headers = {"Host": host}
            jar = self.cookies.setdefault(parts.hostname or "", {})
            if jar:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
            response = httpx.get(target, headers=headers, follow_redirects=False, timeout=60)
            for header in response.headers.get_list("set-cookie"):
                cookie = SimpleCookie()
                cookie.load(header)
                for name, morsel in cookie.items():
                    if morsel["max-age"] in ("0", "-1") or morsel["max-age"].startswith("-"):
                        jar.pop(name, None)  # expired at once, as a browser drops it
                    else:
                        jar[name] = morsel.value
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            url = urljoin(url, response.headers["location"])
        raise AssertionError(f"too many redirects from {url}")


def wait_for(condition: Callable[[], object], *, timeout: float = 60, what: str = "the condition") -> object:
    """Polls `condition` until it answers something truthy (a deadline, not a target)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


def listening(ports: list[Port], number: int) -> Port | None:
    return next((port for port in ports if port.port == number and port.listening), None)


SERVE = (
    "mkdir -p /workspace/site && cd /workspace/site && echo {marker} > index.html && exec python3 -m http.server {port}"
)
