"""Back links (docs/nodes.md, "The server's services from a node"): how a node's sandboxes reach
the model gateway and the egress proxy, which run on this server, without the node ever dialling
the server.

The egress proxy process (`manage.py runegress`) keeps VIBEBOX_NODE_BACK_LINKS mutual-TLS
connections parked at each prepared node's relay (healthy or draining; not down) for each service (`GET /back/gateway`,
`GET /back/egress`, the node's relay credentials: the same as the sandboxd tunnels'). When a
sandbox there connects to the service's address on its bridge, the relay answers one parked
request `200` with the sandbox's bridge address (`Vibebox-Peer`) and splices; this side then
- for `gateway`: connects to the model gateway where it listens on this host and copies both ways
  (the gateway knows the sandbox by its token, never by an address), at most
  VIBEBOX_EGRESS_PROXY_PER_SANDBOX at once per sandbox (node and address; more: `503`), counted by
  the egress proxy's counter under their own key;
- for `egress`: serves the connection in this process's egress proxy, as the sandbox at that
  address **on that node** (`sandbox_by_address(address, node=…)`): the node is the one whose
  relay this connection was dialled to and verified, so an address that is also a local
  sandbox's, or another node's, is never confused with it.
A parked connection no sandbox took is answered 204 after the relay's park time: dialled again.
"""

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from .engine import sandbox_network_gateway
from .models import Node
from .runtime.relay import node_context
from .splice import splice

logger = logging.getLogger(__name__)

SERVICES = ("gateway", "egress")
HEAD_LIMIT = 8 * 1024  # the relay's answer head: a status line and two headers
PARK_LIMIT = 10 * 60.0  # the relay answers a parked request within its --back-park (1 min); never wait longer
RETRY_SECONDS = 2.0  # after a failed dial or a refusal
REFRESH_SECONDS = 15.0  # the nodes' list read again
CONNECT_SECONDS = 10.0
BUFFER = 64 * 1024
_REFUSAL = b"model gateway: too many connections from this sandbox\n"
GATEWAY_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_REFUSAL)
) + _REFUSAL


@dataclass(frozen=True)
class Link:
    node_id: int
    name: str
    host: str
    port: int
    context: ssl.SSLContext


def _links() -> dict[int, tuple[tuple, Link]]:
    """node pk -> (its connection's identity, a Link template) for every prepared node not down
    (a draining node's running sandboxes keep the gateway and the egress proxy)."""
    close_old_connections()
    try:
        found = {}
        for node in Node.objects.exclude(state=Node.State.DOWN).exclude(relay_image="").exclude(relay_ca=""):
            connection = node.connection()
            host = urlsplit(connection.url).hostname or ""  # the relay's host, as runner_for_node has it
            context = node_context(connection)
            # Its client certificate too: a rotation changes it alone (step 2), and the relay then
            # refuses the old one once the rotation's grace has passed (docs/nodes.md).
            identity = (connection.url, connection.relay_port, connection.relay_ca, connection.relay_cert)
            found[node.pk] = (identity, Link(
                node_id=node.pk, name=node.name, host=host, port=connection.relay_port, context=context
            ))  # fmt: skip
        return found
    finally:
        close_old_connections()


def gateway_address() -> tuple[str, int]:
    """Where the model gateway listens on this host (rungateway's default: the sandbox bridge's gateway)."""
    host = settings.VIBEBOX_GATEWAY_HOST
    if not host or host in ("0.0.0.0", "::"):  # noqa: S104
        host = sandbox_network_gateway()
    return host, settings.VIBEBOX_GATEWAY_PORT


class BackLinks:
    """Keeps the parked connections for every node; `proxy`: this process's EgressProxy."""

    def __init__(self, proxy, *, per_service: int | None = None, gateway: tuple[str, int] | None = None):
        self.proxy = proxy
        self.per_service = settings.VIBEBOX_NODE_BACK_LINKS if per_service is None else per_service
        self.gateway = gateway
        self.nodes: dict[int, tuple[tuple, list[asyncio.Task]]] = {}
        self.served: set[asyncio.Task] = set()
        self.paired = 0  # connections served (for logs and tests)

    async def run(self) -> None:
        if self.per_service <= 0:
            return
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(REFRESH_SECONDS)
        finally:
            self.stop()

    async def refresh(self) -> None:
        """Starts the links of new or changed nodes, ends those of nodes gone or not placeable."""
        try:
            wanted = await sync_to_async(_links, thread_sensitive=False)()
        except Exception:
            logger.exception("back links: cannot read the nodes")
            return
        for pk in list(self.nodes):
            if pk not in wanted or wanted[pk][0] != self.nodes[pk][0]:
                for task in self.nodes.pop(pk)[1]:
                    task.cancel()
        for pk, (identity, link) in wanted.items():
            if pk not in self.nodes:
                tasks = [
                    asyncio.create_task(self._keep(link, service))
                    for service in SERVICES
                    for _ in range(self.per_service)
                ]
                self.nodes[pk] = (identity, tasks)

    def stop(self) -> list[asyncio.Task]:
        """Cancels every link and connection being served; answers their tasks."""
        tasks = [task for _, node_tasks in self.nodes.values() for task in node_tasks] + list(self.served)
        for task in tasks:
            task.cancel()
        self.nodes.clear()
        return tasks

    async def aclose(self) -> None:
        await asyncio.gather(*self.stop(), return_exceptions=True)

    async def _keep(self, link: Link, service: str) -> None:
        """One parked connection at a time, dialled again after each pairing, expiry or failure."""
        failures = 0
        while True:
            try:
                paired = await self._park(link, service)
                failures = 0
                if paired is not None:
                    task = asyncio.create_task(self._serve(link, service, *paired))
                    self.served.add(task)
                    task.add_done_callback(self.served.discard)
            except asyncio.CancelledError:
                raise
            except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError) as exc:  # fmt: skip
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    logger.warning("back link %s to node %s: %s (tried again every %s s)", service, link.name, exc,
                                   RETRY_SECONDS)  # fmt: skip
                await asyncio.sleep(RETRY_SECONDS)
            except Exception:  # a bug must not quietly take a link away: logged, and parked again
                failures += 1
                logger.exception("back link %s to node %s failed", service, link.name)
                await asyncio.sleep(RETRY_SECONDS)

    async def _park(self, link: Link, service: str):
        """Parks one connection; answers (sandbox address, reader, writer) once paired, None if
        the relay let it go unused (204)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(link.host, link.port, ssl=link.context, server_hostname=link.host, limit=BUFFER),
            CONNECT_SECONDS,
        )
        try:
            writer.write(f"GET /back/{service} HTTP/1.1\r\nHost: relay\r\n\r\n".encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PARK_LIMIT)
            if len(head) > HEAD_LIMIT:
                raise ValueError("the relay's answer head is too long")
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0].split(" ")
            if len(status) < 2 or status[1] == "204":
                writer.close()
                return None
            if status[1] != "200":
                raise ValueError(f"the relay refused the back link: {lines[0]}")
            headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
            headers = {name.strip().lower(): value.strip() for name, value in headers.items()}
            peer = headers.get("vibebox-peer", "")
            address = peer.rsplit(":", 1)[0].strip("[]")
            if headers.get("vibebox-service") != service or not address:
                raise ValueError(f"the relay paired {headers.get('vibebox-service')!r} from {peer!r}")
            return address, reader, writer
        except BaseException:
            writer.close()
            raise

    async def _serve(self, link: Link, service: str, address: str, reader, writer) -> None:
        self.paired += 1
        if service == "egress":  # its caps (all, and per sandbox: `address@node`) are the proxy's
            await self.proxy.handle(reader, writer, peer=address, node_id=link.node_id)
            return
        source = f"gateway {address}@{link.node_id}"  # the gateway's own count per sandbox, as the proxy's
        if not self.proxy.admit(source):
            with contextlib.suppress(Exception):
                writer.write(GATEWAY_REFUSED)
                await asyncio.wait_for(writer.drain(), 5)
            writer.close()
            return
        try:
            if self.gateway is None:  # read once: rungateway's address does not move
                self.gateway = await sync_to_async(gateway_address, thread_sensitive=False)()
            host, port = self.gateway
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=BUFFER), CONNECT_SECONDS
            )
            try:
                await splice(
                    reader, writer, upstream_reader, upstream_writer, idle=settings.VIBEBOX_EGRESS_PROXY_IDLE_TIMEOUT
                )
            finally:
                upstream_writer.close()
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            logger.info("back link %s from %s on node %s ended: %s", service, address, link.name, exc)
        finally:
            self.proxy.release(source)
            with contextlib.suppress(Exception):
                writer.close()
