"""Where a webhook may point (docs/webhooks.md, "Safety"): https (http only with
VIBEBOX_WEBHOOK_ALLOW_HTTP), and never a loopback, private, link-local, reserved or this host's own
address unless VIBEBOX_WEBHOOK_ALLOW_PRIVATE. Checked when a webhook is saved and again before
every attempt, on the address the request then connects to (so a name that resolves elsewhere by
then, DNS rebinding, is refused too)."""

import contextlib
import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from vibebox import exceptions as errors

MAX_URL = 2000


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (a name, or an address without brackets)
    port: int
    path: str  # path and query, "/" at least


def parse(url: str) -> Target:
    """The URL's parts, or 400 invalid_webhook_url."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise errors.InvalidWebhookUrl(details={"reason": "not a string of at most 2000 characters"})
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise errors.InvalidWebhookUrl(details={"reason": str(exc)}) from None
    allowed = ("https", "http") if settings.VIBEBOX_WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise errors.InvalidWebhookUrl(
            "Webhook URLs must use https (http needs VIBEBOX_WEBHOOK_ALLOW_HTTP on the server).",
            details={"reason": "scheme", "allowed": list(allowed)},
        )
    if not parts.hostname or parts.username is not None or parts.password is not None or parts.fragment:
        raise errors.InvalidWebhookUrl(details={"reason": "a host is needed; no credentials or fragment"})
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


@functools.cache
def _own_addresses() -> frozenset:
    """This host's addresses, as its name resolves (the private ranges cover the rest)."""
    found = set()
    for name in {socket.gethostname(), socket.getfqdn()}:
        with contextlib.suppress(OSError):
            found |= {info[4][0] for info in socket.getaddrinfo(name, None)}
    return frozenset(ipaddress.ip_address(address.split("%")[0]) for address in found)


def forbidden(address) -> bool:
    """Whether an address is one a webhook may not reach (without VIBEBOX_WEBHOOK_ALLOW_PRIVATE)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _own_addresses()
    )


def resolve(target: Target) -> list:
    """The target's addresses (an empty list when its name does not resolve)."""
    try:
        return [ipaddress.ip_address(target.host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))


def check(url: str) -> Target:
    """At save time: the parsed URL, refused (400) if it resolves to a forbidden address. A name
    that does not resolve yet is accepted: every attempt checks again."""
    target = parse(url)
    if not settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE:
        bad = [str(address) for address in resolve(target) if forbidden(address)]
        if bad:
            raise errors.WebhookTargetRefused(details={"host": target.host, "addresses": bad})
    return target


def address_to_send(url: str):
    """At send time: the address to connect to (the first the name resolves to), or
    WebhookTargetRefused (forbidden, or it does not resolve)."""
    target = parse(url)
    addresses = resolve(target)
    if not addresses:
        raise errors.WebhookTargetRefused(f"{target.host} does not resolve.", details={"host": target.host})
    if not settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE:
        bad = [address for address in addresses if forbidden(address)]
        if bad:
            raise errors.WebhookTargetRefused(details={"host": target.host, "addresses": [str(a) for a in bad]})
    return target, addresses[0]
