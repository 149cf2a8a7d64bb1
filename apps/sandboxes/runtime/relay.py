"""The server's side of `sandboxd relay` (docs/sandboxd.md, "The relay"): a TLS connection to a
node's relay with the client certificate VibeBox minted for that node (node_prepare), one
`CONNECT address:port`, and the socket is then the target's (a sandbox's sandboxd on the node's
bridge).

sandboxd_client dials through it for a sandbox on a remote node (a sandboxd_client.Relayed
address, made by the node's driver); node_prepare checks a relay it started with it. Everything
the relay answers is read with a bound: its answer head is at most HEAD_LIMIT bytes, a refusal's
body at most BODY_LIMIT.
"""

import os
import socket
import ssl
import tempfile

from .pem import write_private

HEAD_LIMIT = 8 << 10
BODY_LIMIT = 1 << 10


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
        host, port = target
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        status, headers = _answer_head(sock)
        if status != 200:
            raise RelayRefused(status, _body(sock, headers))
        return sock
    except BaseException:
        raw.close()
        raise


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
    length = headers.get("content-length", "")
    wanted = min(int(length), BODY_LIMIT) if length.isdigit() else BODY_LIMIT
    body = b""
    while len(body) < wanted:
        chunk = sock.recv(wanted - len(body))
        if not chunk:
            break
        body += chunk
    return body.decode("utf-8", "replace").strip()
