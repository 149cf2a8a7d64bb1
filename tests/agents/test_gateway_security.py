"""The model gateway forwards only its allow-list, whatever path a sandbox sends (issue 17, item 1).

The real gateway (`manage.py rungateway`, uvicorn, as production serves it) in front of a
recording stub of the Anthropic API. Requests go over raw sockets so that no HTTP client
normalises their paths first: the stub must never see a path outside the allow-list, each
refused request gets an Anthropic-style error, and every call that is forwarded is metered.
"""

import json
import re
import socket
from urllib.parse import urlsplit

import pytest

from tests import anthropic_stub
from tests.agents.conftest import OPERATOR_KEY, call, sh
from tests.waiting import wait_for

ALLOWED = {("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens"), ("GET", "/v1/models")}
MODEL_ID = re.compile(r"/v1/models/[A-Za-z0-9][A-Za-z0-9._-]*")

# (method, request target): escapes of the allow-list, each as a sandbox could send it.
ESCAPES = [
    ("POST", "/v1/messages/../files"),
    ("POST", "/v1/messages/%2e%2e/files"),
    ("POST", "/v1/messages/%2E%2E/files"),
    ("POST", "/v1/messages/.%2e/files"),
    ("POST", "/v1/messages/%252e%252e/files"),
    ("POST", "/v1/messages/..%2ffiles"),
    ("POST", "/v1/messages/..%2Ffiles"),
    ("POST", "/v1/messages/%2e%2e%2ffiles"),
    ("POST", "/v1/messages/..%5cfiles"),
    ("POST", "/v1/messages\\..\\files"),
    ("POST", "/v1/messages;/../files"),
    ("POST", "/v1/messages/..;/files"),
    ("POST", "/v1/messages/%c0%ae%c0%ae/files"),  # overlong UTF-8 dots
    ("POST", "/v1/messages/%u002e%u002e/files"),
    ("POST", "/v1/messages%00/../files"),
    ("GET", "//v1/files"),
    ("GET", "/v1//files"),
    ("GET", "/v1/./files"),
    ("GET", "/%761/files"),  # an encoded "v"
    ("GET", "/v1/models/../files"),
    ("GET", "/v1/models/%2e%2e%2ffiles"),
    ("GET", "/v1/models/..%2f..%2fv1%2ffiles"),
    ("GET", "/v1/files"),
    ("GET", "/V1/FILES"),
    ("POST", "/V1/MESSAGES"),
    ("POST", "/v1/Messages"),
    ("POST", "/v1/messages/"),
    ("POST", "/v1/messages/batches"),
    ("POST", "/v1/messages/count_tokens/../../files"),
    ("GET", "/v1/messages"),
    ("DELETE", "/v1/models/claude-sonnet-4-5"),
    ("PUT", "/v1/messages"),
    ("OPTIONS", "*"),
    ("POST", "/v1/messages?x=../../files"),
    ("POST", "/v1/messages?beta=true&beta=true"),
    ("GET", "/v1/models?after_id=../files"),
    ("POST", "http://127.0.0.1/v1/files"),  # absolute-form request targets
    ("POST", "http://127.0.0.1/v1/messages/../files"),
    ("POST", "https://api.anthropic.com/v1/files"),
]


@pytest.fixture(scope="module")
def gateway(server, sandbox):
    """(host, port, token): the gateway where the sandbox reaches it, and the sandbox's token."""
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/enable", {})
    assert status == 201, body
    token, base = sh(server, sandbox, "printenv ANTHROPIC_API_KEY ANTHROPIC_BASE_URL")["stdout"].split()
    parts = urlsplit(base)
    return parts.hostname, parts.port, token


def raw_request(host, port, method, target, token, body=b"") -> tuple[int, dict, bytes]:
    """Sends the request line exactly as given; (status, headers, body) of the answer."""
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nx-api-key: {token}\r\n"
        f"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    if headers.get("transfer-encoding") == "chunked":
        payload = _dechunk(payload)
    return int(status_line.split()[1]), headers, payload


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def allowed(method: str, target: str) -> bool:
    path = target.split("?", 1)[0]
    return (method, path) in ALLOWED or (method == "GET" and MODEL_ID.fullmatch(path) is not None)


MESSAGE = json.dumps(
    {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
).encode()


def test_no_escape_of_the_allow_list_reaches_the_upstream(gateway, stub):
    host, port, token = gateway
    before = len(stub.requests)
    answers = {}
    for method, target in ESCAPES:
        body = MESSAGE if method == "POST" else b""
        status, headers, payload = raw_request(host, port, method, target, token, body)
        answers[(method, target)] = status
        assert status in (400, 404, 405), (method, target, status, payload)
        error = json.loads(payload)
        assert error["type"] == "error" and error["error"]["type"] in (
            "invalid_request_error",
            "not_found_error",
        ), (method, target, error)
        assert error["error"]["message"]
        if status == 405:
            assert headers["allow"] in ("GET", "POST")
    assert len(ESCAPES) >= 10 and len(stub.requests) == before, stub.requests[before:]
    # The escapes are refused by what they are, not by chance: dot segments and encodings are 400s.
    assert answers[("POST", "/v1/messages/../files")] == 400
    assert answers[("POST", "/v1/messages/%2e%2e/files")] == 400
    assert answers[("GET", "/v1/files")] == 404
    assert answers[("GET", "/v1/messages")] == 405


def test_the_allow_list_is_forwarded_from_constants_and_every_call_is_metered(server, sandbox, gateway, stub):
    host, port, token = gateway
    status, before = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/status")
    assert status == 200
    seen = len(stub.requests)
    calls = [
        ("POST", "/v1/messages?beta=true", MESSAGE),
        ("POST", "/v1/messages/count_tokens?beta=true", MESSAGE),
        ("GET", "/v1/models?limit=20", b""),
        ("GET", "/v1/models/claude-sonnet-4-5", b""),
    ]
    for method, target, body in calls:
        status, _, payload = raw_request(host, port, method, target, token, body)
        assert status == 200, (target, payload)
    received = stub.requests[seen:]
    assert [(r["method"], r["target"]) for r in received] == [(m, t) for m, t, _ in calls]
    for request in received:
        headers = {k.lower(): v for k, v in request["headers"].items()}
        assert headers["x-api-key"] == OPERATOR_KEY and token not in json.dumps(headers)

    # One usage row per forwarded call, not only per message; tokens only from the message. The
    # gateway records a call after its answer's last byte went out: wait for the last one.
    def usage_after():
        status, body = call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/status")
        assert status == 200
        return body if body["usage"]["requests"] - before["usage"]["requests"] >= len(calls) else None

    after = wait_for(usage_after, what="the gateway to record every call")
    assert after["usage"]["requests"] - before["usage"]["requests"] == len(calls)
    assert after["usage"]["inputTokens"] - before["usage"]["inputTokens"] == anthropic_stub.USAGE_IN


def test_escapes_from_inside_the_sandbox_are_refused_too(server, sandbox, gateway, stub):
    """The attacker's own position: code in the sandbox, with its token, on a raw socket."""
    host, port, _ = gateway
    script = r"""
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
token = os.environ["ANTHROPIC_API_KEY"]
for target in sys.argv[3:]:
    with socket.create_connection((host, port), timeout=30) as sock:
        head = f"POST {target} HTTP/1.1\r\nHost: x\r\nx-api-key: {token}\r\ncontent-length: 2\r\n"
        sock.sendall(head.encode() + b"connection: close\r\n\r\n{}")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    print(data.split(b" ", 2)[1].decode())
"""
    targets = ["/v1/messages/../files", "/v1/messages/%2e%2e/files", "/v1/messages/..%2ffiles", "//v1/files"]
    seen = len(stub.requests)
    sh(server, sandbox, f"cat > /tmp/probe.py <<'EOF'\n{script}\nEOF")
    result = sh(server, sandbox, f"python3 /tmp/probe.py {host} {port} " + " ".join(f"'{t}'" for t in targets))
    assert result["exitCode"] == 0, result
    assert result["stdout"].split() == ["400"] * len(targets)
    assert len(stub.requests) == seen


def test_every_request_the_upstream_ever_saw_is_on_the_allow_list(gateway, stub):
    """Run last in the module: whatever the tests above sent, only allow-listed calls arrived."""
    assert stub.requests
    for request in stub.requests:
        assert allowed(request["method"], request["target"]), request["target"]
