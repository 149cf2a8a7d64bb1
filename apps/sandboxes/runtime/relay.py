"""The server's side of `sandboxd relay` (docs/sandboxd.md, "The relay"): a TLS connection to a
node's relay with the client certificate VibeBox minted for that node (node_prepare), one
`CONNECT address:port`, and the socket is then the target's (a sandbox's sandboxd on the node's
bridge, or a port of the sandbox a preview opens).

sandboxd_client dials through it for a sandbox on a remote node (a sandboxd_client.Relayed
address, made by the node's driver); node_prepare checks a relay it started with it; the preview
proxy opens a sandbox's port through it (`open_tunnel`, on the event loop). Everything
the relay answers is read with a bound: its answer head is at most HEAD_LIMIT bytes, a refusal's
body at most BODY_LIMIT.
"""

import asyncio
import contextlib
import logging
import os
import select
import socket
import ssl
import tempfile
import threading

from .pem import write_private

logger = logging.getLogger(__name__)

HEAD_LIMIT = 8 << 10
BODY_LIMIT = 1 << 10
PUMP_CHUNK = 64 << 10  # bytes read or sent at once by a bridge's pump
PUMP_BUFFER = 256 << 10  # bytes a bridge holds each way before it stops reading that side


class RelayRefused(Exception):
    """The relay answered the CONNECT with something other than 200 (its reason in `message`)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status} {message}")
        self.status, self.message = status, message


def client_context(*, ca: str, cert: str, key: str) -> ssl.SSLContext:
    """TLS towards a relay: the node's CA only (never the system's), with VibeBox's client
    certificate. The ssl module loads a certificate chain from files only: they live in a private
    directory for the call and are gone after it."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="vibebox-relay-") as directory:
        paths = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
        for path, text in zip(paths, (cert, key), strict=True):
            write_private(path, text)
        context.load_cert_chain(*paths)
    return context


def node_context(connection) -> ssl.SSLContext:
    """client_context from a node's connection (runtime.NodeConnection: relay_ca, relay_cert and the
    decrypted relay_key): one per kept driver, shared by its tunnels and its firewall runner."""
    return client_context(ca=connection.relay_ca, cert=connection.relay_cert, key=connection.relay_key)


def tunnel(
    relay: tuple[str, int], target: tuple[str, int], *, context: ssl.SSLContext, timeout: float
) -> ssl.SSLSocket:
    """A connection to `target` (an IP address and port on the relay's node) through `relay`;
    raises RelayRefused when the relay refuses it, OSError (ssl.SSLError included) when it cannot
    be reached or the TLS handshake fails. `timeout` bounds the connect, the handshake and the
    relay's answer; the socket keeps it as its timeout."""
    raw = socket.create_connection(relay, timeout)
    try:
        sock = context.wrap_socket(raw, server_hostname=relay[0])
        sock.sendall(_connect_request(target))
        status, headers = _answer_head(sock)
        if status != 200:
            raise RelayRefused(status, _body(sock, headers))
        return sock
    except BaseException:
        raw.close()
        raise


async def open_tunnel(
    relay: tuple[str, int], target: tuple[str, int], *, context: ssl.SSLContext, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`tunnel` on the event loop (the preview proxy's HTTP to a port of a sandbox on a node): the
    same TLS, CONNECT and bounds, and the streams are then the target's. Raises RelayRefused,
    OSError (ssl.SSLError and ConnectionError included), or TimeoutError after `timeout`."""

    async def opened():
        reader, writer = await asyncio.open_connection(relay[0], relay[1], ssl=context, server_hostname=relay[0])
        try:
            writer.write(_connect_request(target))
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                raise ConnectionError("the relay closed the connection before answering") from None
            except asyncio.LimitOverrunError:
                head = b""
            if not head or len(head) > HEAD_LIMIT:
                raise ConnectionError(f"the relay's answer head is over {HEAD_LIMIT} bytes")
            status, headers = _parse_head(head)
            if status != 200:
                try:
                    body = await reader.readexactly(_body_length(headers))
                except asyncio.IncompleteReadError as exc:
                    body = exc.partial
                raise RelayRefused(status, body.decode("utf-8", "replace").strip())
            return reader, writer
        except BaseException:
            writer.close()
            raise

    return await asyncio.wait_for(opened(), timeout)


def _connect_request(target: tuple[str, int]) -> bytes:
    host, port = target
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()


def _body_length(headers: dict[str, str]) -> int:
    length = headers.get("content-length", "")
    return min(int(length), BODY_LIMIT) if length.isdigit() else BODY_LIMIT


def _answer_head(sock: ssl.SSLSocket) -> tuple[int, dict[str, str]]:
    """The status and headers of the relay's answer, read a byte at a time: nothing of the
    tunnel's own bytes after the head may be consumed here."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("the relay closed the connection before answering")
        head += byte
        if len(head) > HEAD_LIMIT:
            raise ConnectionError(f"the relay's answer head is over {HEAD_LIMIT} bytes")
    return _parse_head(head)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"the relay answered {lines[0][:100]!r}, not HTTP")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _body(sock: ssl.SSLSocket, headers: dict[str, str]) -> str:
    wanted = _body_length(headers)
    body = b""
    while len(body) < wanted:
        chunk = sock.recv(wanted - len(body))
        if not chunk:
            break
        body += chunk
    return body.decode("utf-8", "replace").strip()


def bridge(tls: ssl.SSLSocket) -> socket.socket:
    """A plain local socket carrying `tls`'s bytes both ways. OpenSSL does not promise that one
    thread may read an SSL object while another writes it, and sandboxd's streams do exactly that
    (stdin and signals from one thread, output read by another): here a single thread, the pump,
    is the only one that touches `tls`. The caller's end behaves as the tunnel would: EOF when the
    relay's side ends; closing it ends the tunnel (and so a command streaming on it)."""
    ours, theirs = socket.socketpair()
    try:
        threading.Thread(target=_pump, args=(tls, theirs), name="relay-pump", daemon=True).start()
    except BaseException:
        for sock in (ours, theirs, tls):
            sock.close()
        raise
    return ours


def _pump(tls: ssl.SSLSocket, local: socket.socket) -> None:
    try:
        _pump_until_done(tls, local)
    except (OSError, ValueError) as exc:  # ssl.SSLError included: either side broke
        logger.debug("relay tunnel ended: %s: %s", type(exc).__name__, exc)
    finally:
        with contextlib.suppress(OSError):
            local.close()
        with contextlib.suppress(OSError):
            tls.close()


def _pump_until_done(tls: ssl.SSLSocket, local: socket.socket) -> None:
    """Non-blocking both ways, bounded buffers (a side is not read while its buffer is full), until
    the relay's side ended and what it sent was handed on, or the local side closed."""
    tls.setblocking(False)
    local.setblocking(False)
    to_tls, to_local = bytearray(), bytearray()
    sending = b""  # what SSL_write is retrying: the same bytes until they go
    tls_ended = False
    read_waits, write_waits = "r", "w"  # what the last blocked TLS read / write waited for
    while True:
        if tls_ended and not to_local:
            return
        can_read_tls = not tls_ended and len(to_local) < PUMP_BUFFER
        has_for_tls = bool(sending or to_tls)
        rlist, wlist = [], []
        if can_read_tls:
            (rlist if read_waits == "r" else wlist).append(tls)
        if has_for_tls:
            (wlist if write_waits == "w" else rlist).append(tls)
        if len(to_tls) < PUMP_BUFFER:
            rlist.append(local)
        if to_local:
            wlist.append(local)
        buffered = can_read_tls and tls.pending() > 0  # decrypted already: select would not see it
        readable, writable, _ = select.select(rlist, wlist, [], 0 if buffered else None)
        if can_read_tls and (buffered or tls in readable or tls in writable):
            try:
                data = tls.recv(PUMP_CHUNK)
                read_waits = "r"
                if data:
                    to_local += data
                else:
                    tls_ended = True
            except ssl.SSLWantReadError:
                read_waits = "r"
            except ssl.SSLWantWriteError:
                read_waits = "w"
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                tls_ended = True
        if has_for_tls and not tls_ended and (tls in writable or tls in readable):
            if not sending:
                sending = bytes(to_tls[:PUMP_CHUNK])
                del to_tls[:PUMP_CHUNK]
            try:
                sent = tls.send(sending)
                sending = sending[sent:]
                write_waits = "w"
            except ssl.SSLWantWriteError:
                write_waits = "w"
            except ssl.SSLWantReadError:
                write_waits = "r"
        if local in readable:
            try:
                data = local.recv(PUMP_CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            if data == b"":
                return  # the caller closed its end: the tunnel ends
            if data:
                to_tls += data
        if to_local and local in writable:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                del to_local[: local.send(to_local)]
