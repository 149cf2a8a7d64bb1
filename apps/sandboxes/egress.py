"""The egress proxy: HTTP(S) for sandboxes whose egress policy names domains or closes the
internet (docs/operations.md, "Egress policy"; `manage.py runegress`, the Procfile's `egress`).

An asyncio forward proxy on the sandbox bridge's gateway address (like the model gateway):
- `CONNECT host:port` (HTTPS and anything tunnelled: the TLS stays end to end, the proxy sees
  only the name asked for) and absolute-form `GET http://host/path` (plain HTTP, one request per
  connection: `Connection: close` upstream);
- the sandbox is known by the connection's source address on the bridge (the kernel keeps a
  sandbox from using another's address: it has no NET_ADMIN or NET_RAW); its policy is read from
  its row on every connection, so a PATCH is in force for the next connection;
- the name is checked against the policy (`*.npmjs.org` matches any name below npmjs.org), then
  resolved here, per connection (no address set that could go stale with the records' TTLs),
  and each address checked: `deny` CIDRs, and private, link-local, loopback, reserved and this
  host's own addresses are refused unless VIBEBOX_EGRESS_ALLOW_PRIVATE lists them;
  `localhost` and `*.localhost` are loopback (RFC 6761), never asked of DNS;
- caps: connections at once (all, and per sandbox), the request head's size and the time to
  send it, DNS and connect deadlines, an idle deadline on every tunnel (no byte either way for
  VIBEBOX_EGRESS_PROXY_IDLE_TIMEOUT: splice.py, shared with the back links).
"""

import asyncio
import contextlib
import ipaddress
import logging
import socket
import subprocess
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apps.orgs.network import address_matches, name_matches, proxied, stored

from .backlinks import BackLinks
from .runtime.firewall import PRIVATE_V4, PRIVATE_V6
from .services.network import mirror_hosts, sandbox_by_address
from .splice import splice

logger = logging.getLogger(__name__)

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 10.0
DNS_TIMEOUT = 5.0
BUFFER = 64 * 1024
PRIVATE = [ipaddress.ip_network(cidr) for cidr in (*PRIVATE_V4, *PRIVATE_V6)]
HOST_ADDRESSES_TTL = 30.0
# Hop-by-hop headers a proxy does not pass on (RFC 9110 7.6.1), plus the proxy's own.
HOP_BY_HOP = {
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"proxy-authorization",
    b"proxy-authenticate",
    b"te",
    b"trailer",
    b"upgrade",
}


@dataclass(frozen=True)
class Policy:
    sandbox_id: str
    internet: bool
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    mirrors: tuple[tuple[str, int], ...]
    proxied: bool


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _lookup(address: str, node_id: int | None = None) -> Policy | None:
    """The policy of the sandbox at this bridge address (`node_id`: on that node's bridge, for a
    connection that came through a back link; None: the local engine's), a database read in a thread."""
    close_old_connections()
    try:
        sandbox = sandbox_by_address(address, node_id=node_id)
        if sandbox is None:
            return None
        policy = stored(sandbox.network)
        return Policy(
            sandbox_id=sandbox.id,
            internet=policy["internet"],
            allow=tuple(policy["allow"]),
            deny=tuple(policy["deny"]),
            mirrors=tuple(mirror_hosts(sandbox.org)),
            proxied=proxied(policy),
        )
    finally:
        close_old_connections()


_host_addresses: tuple[float, set] = (0.0, set())


def host_addresses() -> set:
    """This host's own addresses (a sandbox may not reach the host through the proxy), from
    `ip -o addr`, refreshed every HOST_ADDRESSES_TTL seconds."""
    global _host_addresses
    at, found = _host_addresses
    if time.monotonic() - at < HOST_ADDRESSES_TTL:
        return found
    try:
        output = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        # The last list known stays (an empty one would let the proxy reach the host); tried again soon.
        logger.error("egress proxy: cannot list this host's addresses (`ip -o addr`): %s", exc)
        return found
    fresh = set()
    for line in output.splitlines():
        fields = line.split()
        for index, word in enumerate(fields[:-1]):
            if word in ("inet", "inet6"):
                with contextlib.suppress(ValueError):
                    fresh.add(ipaddress.ip_interface(fields[index + 1]).ip)
    _host_addresses = (time.monotonic(), fresh)
    return fresh


def _operator_allowed(address) -> bool:
    return any(
        address.version == net.version and address in net
        for net in (ipaddress.ip_network(cidr, strict=False) for cidr in settings.VIBEBOX_EGRESS_ALLOW_PRIVATE)
    )


def address_refusal(address, policy: Policy) -> str | None:
    """Why this resolved address may not be connected to, or None."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address_matches(address, list(policy.deny)):
        return f"{address} is denied by the sandbox's policy"
    special = any(address.version == net.version and address in net for net in PRIVATE) or address in host_addresses()
    if special and not _operator_allowed(address):
        return f"{address} is a private, loopback, link-local or host address"
    return None


def host_allowed(host: str, port: int, policy: Policy) -> bool:
    """Whether the policy lets the name through (before its addresses are checked)."""
    if (host, port) in policy.mirrors:
        return True
    return not name_matches(host, list(policy.deny))


def address_allowed(host: str, port: int, address, policy: Policy) -> bool:
    if (host, port) in policy.mirrors or policy.internet:
        return True
    return name_matches(host, list(policy.allow)) or address_matches(address, list(policy.allow))


async def resolve(host: str, port: int) -> list:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: loopback, never DNS
        return [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), DNS_TIMEOUT)
    except (TimeoutError, OSError) as exc:
        raise Refused(502, f"{host} could not be resolved") from exc
    found = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def parse_target(method: bytes, target: bytes) -> tuple[str, int, bytes]:
    """(host, port, origin-form path) of a proxy request: CONNECT host:port, or an absolute
    http:// URL. Refused (400) otherwise."""
    text = target.decode("ascii", errors="strict")
    if method == b"CONNECT":
        authority, path = text, b""
    else:
        if not text.lower().startswith("http://"):
            raise Refused(400, "only CONNECT and absolute http:// requests are proxied")
        rest = text[7:]
        slash = rest.find("/")
        authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        if "?" in authority:
            authority, path = authority.split("?", 1)[0], "/?" + authority.split("?", 1)[1]
        path = path.encode()
        if "@" in authority:
            raise Refused(400, "credentials in the URL are not proxied")
    if authority.startswith("["):
        host, _, port_text = authority[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if not port_text:
        if method == b"CONNECT":
            raise Refused(400, "CONNECT needs host:port")
        port_text = "80"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host or len(host) > 253:
        raise Refused(400, "invalid host or port")
    return host.lower().removesuffix("."), int(port_text), path


class EgressProxy:
    def __init__(self, *, lookup=None):
        self.lookup = lookup or sync_to_async(_lookup, thread_sensitive=False)
        self.node_lookup = sync_to_async(_lookup, thread_sensitive=False)
        self.total = asyncio.Semaphore(settings.VIBEBOX_EGRESS_PROXY_CONNECTIONS)
        self.per_source: dict[str, int] = {}

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self.handle, host, port, limit=HEAD_LIMIT, reuse_address=True)

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, peer: str = "", node_id: int | None = None
    ) -> None:
        """One connection. From a node's sandbox (backlinks.py): `peer` its bridge address and
        `node_id` its node, as the node's relay told them; else the connection's source address."""
        if node_id is None:
            peer = (writer.get_extra_info("peername") or ("", 0))[0]
        source = peer if node_id is None else f"{peer}@{node_id}"  # the per-sandbox cap's key
        if self.total.locked() or not self.admit(source):
            await self._answer(writer, Refused(503, "too many connections through the egress proxy"))
            return
        try:
            async with self.total:
                await self._serve_one(peer, reader, writer, node_id)
        except Refused as refused:
            await self._answer(writer, refused)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError):
            pass
        except Exception:
            logger.exception("egress proxy: a connection from %s failed", peer)
        finally:
            self.release(source)
            with contextlib.suppress(Exception):
                writer.close()

    def admit(self, source: str) -> bool:
        """Counts one more connection of `source` (a sandbox: its address, or `address@node`; the
        back links' gateway pairings: `gateway address@node`), unless it holds
        VIBEBOX_EGRESS_PROXY_PER_SANDBOX already; `release` when it ends."""
        if self.per_source.get(source, 0) >= settings.VIBEBOX_EGRESS_PROXY_PER_SANDBOX:
            return False
        self.per_source[source] = self.per_source.get(source, 0) + 1
        return True

    def release(self, source: str) -> None:
        self.per_source[source] -= 1
        if not self.per_source[source]:
            del self.per_source[source]

    async def _answer(self, writer, refused: Refused) -> None:
        reasons = {
            400: "Bad Request",
            403: "Forbidden",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
        }
        body = f"{settings.VIBEBOX_BRAND_NAME} egress proxy: {refused.reason}\n".encode()
        head = (
            f"HTTP/1.1 {refused.status} {reasons.get(refused.status, 'Error')}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"X-VibeBox-Egress: {'denied' if refused.status == 403 else 'error'}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(Exception):
            writer.write(head.encode() + body)
            await asyncio.wait_for(writer.drain(), 5)

    async def _serve_one(self, peer: str, reader, writer, node_id: int | None = None) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        except asyncio.LimitOverrunError:
            raise Refused(400, f"the request head is over {HEAD_LIMIT} bytes") from None
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            raise Refused(400, "not an HTTP/1.x request")
        method, target, version = parts
        try:
            host, port, path = parse_target(method, target)
        except UnicodeError:
            raise Refused(400, "invalid request target") from None
        policy = await (self.lookup(peer) if node_id is None else self.node_lookup(peer, node_id))
        if policy is None:
            raise Refused(403, f"{peer} is not a sandbox with an egress policy")
        if not host_allowed(host, port, policy):
            self._log(policy, host, port, "denied name")
            raise Refused(403, f"{host} is denied by the sandbox's egress policy")
        addresses = await resolve(host, port)
        reasons = []
        chosen = None
        for address in addresses:
            why = address_refusal(address, policy)
            if why is None and not address_allowed(host, port, address, policy):
                why = f"{host} is not in the sandbox's allow list"
            if why is None:
                chosen = address
                break
            reasons.append(why)
        if chosen is None:
            self._log(policy, host, port, "denied: " + "; ".join(reasons))
            raise Refused(403, reasons[0] if reasons else f"{host} has no address")
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(str(chosen), port, limit=BUFFER), settings.VIBEBOX_EGRESS_PROXY_CONNECT_TIMEOUT
            )
        except TimeoutError:
            raise Refused(504, f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise Refused(502, f"could not connect to {host}:{port}: {exc.strerror or exc}") from None
        try:
            if method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                await writer.drain()
            else:
                # The Host the request-target names (RFC 9112 3.2.2: a proxy replaces the client's).
                dropped = HOP_BY_HOP | {b"host"}
                kept = [line for line in lines[1:] if line and line.split(b":", 1)[0].strip().lower() not in dropped]
                authority = (f"[{host}]" if ":" in host else host) + ("" if port == 80 else f":{port}")
                kept.insert(0, b"Host: " + authority.encode())
                request = b" ".join((method, path, version)) + b"\r\n" + b"".join(line + b"\r\n" for line in kept)
                upstream_writer.write(request + b"Connection: close\r\n\r\n")
            await splice(
                reader, writer, upstream_reader, upstream_writer, idle=settings.VIBEBOX_EGRESS_PROXY_IDLE_TIMEOUT
            )
        finally:
            with contextlib.suppress(Exception):
                upstream_writer.close()

    def _log(self, policy: Policy, host: str, port: int, what: str) -> None:
        logger.info("egress proxy: %s %s:%s %s", policy.sandbox_id, host, port, what)


async def run(host: str, port: int, *, ready=None) -> None:
    proxy = EgressProxy()
    server = await proxy.serve(host, port)
    links = asyncio.create_task(BackLinks(proxy).run())  # nodes' sandboxes: the gateway and this proxy
    if ready is not None:
        ready()
    try:
        async with server:
            await server.serve_forever()
    finally:
        links.cancel()
