"""A hostile sandboxd: a container standing where a sandbox's sandboxd should answer, started by
tests/sandboxes/fakes.py. With sandboxd as root PID 1, sandbox code can neither kill it nor take
its port; the server's client still treats every answer as hostile (the address may be another
container's, and what sandboxd relays comes from sandbox code), and these tests hold it to that.

It knows what sandboxd knows (the container's token and name, FAKE_TOKEN and FAKE_CONTAINER), so
it can pass the identity check and sign its answers: what it answers is then checked for size,
time and shape alone. The mode is read from /tmp/fake-mode at each request:

  flood           an answer announcing 50 GB, then bytes without end
  chunked         a chunked answer without end
  drip            a plausible answer, one byte a second
  malformed       a signed answer whose header line is not JSON
  types           a signed answer whose fields have the wrong types and ranges
  bomb            a signed answer whose header line is JSON nested 20,000 levels deep
  overlong        a signed answer claiming more output than the request's limit
  unsigned        a well-formed answer with a wrong signature
  hello-flood     the identity exchange itself answered with bytes without end
  hello-drip      the identity exchange answered one byte a second
  impersonate     claims to be the container named in /tmp/fake-target (it lacks that one's token)
  older           an honest answer ("hi"), signed as a sandboxd before next nonces did (it ignores
                  X-VibeBox-Nonce): one request per hello

Every request line it receives is appended to /tmp/fake-log.
"""

import hashlib
import hmac
import json
import os
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

TOKEN = os.environ["FAKE_TOKEN"]
CONTAINER = os.environ["FAKE_CONTAINER"]


def sign(*parts: str) -> str:
    return hmac.new(TOKEN.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def mode() -> str:
    with open("/tmp/fake-mode") as handle:
        return handle.read().strip()


def read_request(reader):
    line = reader.readline(65536)
    if not line:
        return None, None, b""
    with open("/tmp/fake-log", "ab") as log:
        log.write(line)
    headers = {}
    while (header := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length") or 0))
    return line.decode().split()[1], headers, body


def endless(conn, head: bytes) -> None:
    conn.sendall(head)
    block = b"x" * 65536
    while True:
        conn.sendall(block)


def drip(conn, data: bytes) -> None:
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(1)


def answer(conn, status: str, body: bytes, signature: str) -> None:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nX-VibeBox-Container: {CONTAINER}\r\n"
        f"X-VibeBox-Signature: {signature}\r\n\r\n"
    )
    conn.sendall(head.encode() + body)


def serve(conn) -> None:
    reader = conn.makefile("rb")
    path, _, _ = read_request(reader)
    if path is None:
        return
    current = mode()
    if current == "hello-flood":
        endless(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 50000000000\r\n\r\n")
    server_nonce = parse_qs(urlsplit(path).query)["nonce"][0]
    agent_nonce = "ab" * 16
    claimed = CONTAINER
    if current == "impersonate":
        with open("/tmp/fake-target") as handle:
            claimed = handle.read().strip()
    hello = {"container": claimed, "nonce": agent_nonce, "proof": sign("hello", claimed, server_nonce, agent_nonce)}
    hello_body = json.dumps(hello).encode()
    hello_answer = f"HTTP/1.1 200 OK\r\nContent-Length: {len(hello_body)}\r\n\r\n".encode() + hello_body
    if current == "hello-drip":
        drip(conn, hello_answer)
        return
    conn.sendall(hello_answer)
    _, _, body = read_request(reader)
    exec_id = json.loads(body)["exec_id"]
    good = {
        "exec_id": exec_id,
        "exit_code": 0,
        "stdout_len": 3,
        "stderr_len": 0,
        "stdout_bytes": 3,
        "stderr_bytes": 0,
        "truncated": False,
        "timed_out": False,
        "oom_killed": False,
    }

    def signed(payload: bytes) -> None:
        digest = hashlib.sha256(payload).hexdigest()
        answer(conn, "200 OK", payload, sign("answer", CONTAINER, server_nonce, exec_id, digest))

    if current == "flood":
        endless(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 50000000000\r\n\r\n")
    elif current == "chunked":
        endless(conn, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n")
    elif current == "drip":
        payload = json.dumps(good).encode() + b"\nhi\n"
        drip(conn, f"HTTP/1.1 200 OK\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    elif current == "malformed":
        signed(b"{not json\nhi\n")
    elif current == "older":
        signed(json.dumps(good).encode() + b"\nhi\n")
    elif current == "types":
        bad = {**good, "exit_code": "0", "stdout_len": 3, "stdout_bytes": -5, "truncated": "no"}
        signed(json.dumps(bad).encode() + b"\nhi\n")
    elif current == "bomb":
        signed(b"[" * 20000 + b"]" * 20000 + b"\nhi\n")
    elif current == "overlong":
        huge = {**good, "stdout_len": 1 << 40, "stdout_bytes": 1 << 40}
        signed(json.dumps(huge).encode() + b"\nhi\n")
    elif current == "unsigned":
        payload = json.dumps(good).encode() + b"\nhi\n"
        answer(conn, "200 OK", payload, "0" * 64)


def handle(conn) -> None:
    try:
        serve(conn)
    except OSError:
        pass
    finally:
        conn.close()


def main() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 49983))  # noqa: S104
    listener.listen(16)
    open("/tmp/fake-ready", "w").close()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


main()
