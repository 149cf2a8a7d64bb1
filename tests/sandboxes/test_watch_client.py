"""The server's client of sandboxd's file watch against a hostile sandboxd: a fake on loopback
that proves the container's token (as a sandboxd that sandbox code took over could not, but what
it streams is the sandbox's to shape) and then sends what it likes. Every event is checked, every
read is under the watch's deadline, and nothing malformed reaches the caller."""

import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import struct
import threading
import time

import pytest

from apps.sandboxes.runtime import bounded, sandboxd_client
from apps.sandboxes.runtime.base import WatchRequest

SECRET = "a-secret"
CONTAINER = "vb-fake"
KEY = sandboxd_client.token(SECRET, CONTAINER)


def _sign(*parts: str) -> str:
    return hmac.new(KEY.encode(), "\n".join(parts).encode(), hashlib.sha256).hexdigest()


def frame(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">cI", kind, len(payload)) + payload


def event(**fields) -> dict:
    return {"type": "create", "path": "a", "is_dir": False, "time": "2026-12-02T11:00:00.000000Z", **fields}


def events_frame(*items) -> bytes:
    return frame(b"w", json.dumps(list(items)).encode())


class FakeSandboxd:
    """Answers one hello and one POST /watch on loopback: `status` (a refusal's body `refusal`),
    or a 200 stream followed by `send(conn)`."""

    def __init__(self, send=None, *, status: int = 200, refusal: dict | None = None):
        self.send, self.status, self.refusal = send, status, refusal
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, reader) -> tuple[str, dict, bytes]:
        line = reader.readline().decode()
        headers = {}
        while (header := reader.readline().decode().strip()) != "":
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = reader.read(int(headers.get("content-length", "0")))
        return line, headers, body

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            reader = conn.makefile("rb")
            line, _, _ = self._read_request(reader)
            server_nonce = line.split("nonce=")[1].split()[0]
            nonce = secrets.token_hex(16)
            hello = json.dumps(
                {"container": CONTAINER, "nonce": nonce, "proof": _sign("hello", CONTAINER, server_nonce, nonce)}
            ).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(hello), hello))
            _, _, body = self._read_request(reader)
            exec_id = json.loads(body)["exec_id"]
            if self.status != 200:
                answer = json.dumps(self.refusal or {}).encode()
                conn.sendall(b"HTTP/1.1 %d No\r\nContent-Length: %d\r\n\r\n%s" % (self.status, len(answer), answer))
                return
            signature = _sign("answer", CONTAINER, server_nonce, exec_id, "stream")
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.vibebox.stream\r\n"
                + f"X-VibeBox-Container: {CONTAINER}\r\nX-VibeBox-Signature: {signature}\r\n".encode()
                + b"Connection: close\r\n\r\n"
            )
            if self.send is not None:
                with contextlib.suppress(OSError):  # the client hung up
                    self.send(conn, exec_id)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def fake(monkeypatch):
    made = []

    def make(send=None, **kwargs) -> FakeSandboxd:
        server = FakeSandboxd(send, **kwargs)
        monkeypatch.setattr(sandboxd_client, "PORT", server.port)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def watch(timeout: float = 10.0):
    request = WatchRequest(path="/workspace", watch_id="watch_test", timeout=timeout)
    return sandboxd_client.watch("127.0.0.1", SECRET, CONTAINER, request)


def test_events_and_the_end_are_parsed(fake):
    def send(conn, exec_id):
        conn.sendall(events_frame(event(), event(type="rename", path="b", **{"from": "a"})))
        conn.sendall(events_frame(event(type="overflow", path=".", is_dir=True, reason="queue")))
        conn.sendall(frame(b"x", json.dumps({"exec_id": exec_id, "reason": "root_removed"}).encode()))

    fake(send)
    stream = watch()
    got = list(stream)
    assert [(e.type, e.path, e.from_path, e.reason) for e in got] == [
        ("create", "a", None, None),
        ("rename", "b", "a", None),
        ("overflow", ".", None, "queue"),
    ]
    assert stream.ended == "root_removed"


HOSTILE = {
    "absolute path": event(path="/etc/passwd"),
    "dot-dot": event(path="a/../../etc"),
    "empty part": event(path="a//b"),
    "too long": event(path="x" * 5000),
    "NUL": event(path="a\0b"),
    "unknown type": event(type="exec"),
    "is_dir not a bool": event(is_dir=1),
    "no time": event(time=None),
    "not a time": event(time="yesterday"),
    "rename without from": event(type="rename"),
    "from on a create": event(**{"from": "x"}),
    "overflow without reason": event(type="overflow"),
    "unknown reason": event(type="overflow", reason="because"),
    "not an object": ["create"],
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_malformed_event_is_refused_and_none_of_its_frame_goes_out(fake, name):
    fake(lambda conn, _: conn.sendall(events_frame(event(path="fine"), HOSTILE[name])))
    stream = watch()
    with pytest.raises(bounded.Malformed):
        list(stream)  # nothing of the frame is yielded: "fine" came with the bad one


@pytest.mark.parametrize(
    "data",
    [
        frame(b"w", b"not json"),
        frame(b"w", b"[]"),
        frame(b"w", b'{"type": "create"}'),
        frame(b"o", b"output"),  # another stream's frame
        frame(b"x", json.dumps({"exec_id": "another", "reason": "root_removed"}).encode()),
        frame(b"x", json.dumps({"exec_id": "watch_test", "reason": "whatever"}).encode()),
        b"w\x00\x00",  # ended inside a header
        events_frame(event())[:-3],  # ended inside a frame
    ],
)
def test_a_broken_stream_is_malformed(fake, data):
    fake(lambda conn, _: conn.sendall(data))
    with pytest.raises(bounded.Malformed):
        list(watch())


def test_an_oversized_frame_is_refused_before_it_is_read(fake):
    fake(lambda conn, _: conn.sendall(struct.pack(">cI", b"w", 1 << 30)))
    with pytest.raises(bounded.TooLarge):
        list(watch())


def test_a_silent_or_dripping_sandboxd_ends_at_the_deadline(fake):
    def drip(conn, _):
        for byte in events_frame(event()):
            conn.sendall(bytes([byte]))
            time.sleep(0.2)

    for send in (lambda conn, _: time.sleep(5), drip):
        fake(send)
        started = time.monotonic()
        stream = watch(timeout=1.0)
        assert list(stream) == [] and stream.ended == "timeout"
        assert time.monotonic() - started < 3


def test_close_from_another_thread_ends_the_iteration(fake):
    fake(lambda conn, _: time.sleep(5))
    stream = watch()
    threading.Timer(0.3, stream.close).start()
    assert list(stream) == [] and stream.ended == "closed"


def test_a_refusal_names_its_reason(fake):
    fake(status=422, refusal={"error": "permission denied", "reason": "permission"})
    with pytest.raises(sandboxd_client.WatchRefused) as refused:
        watch()
    assert refused.value.status == 422 and refused.value.reason == "permission"


def test_a_stream_signed_with_another_key_is_refused(fake, monkeypatch):
    fake(lambda conn, _: conn.sendall(events_frame(event())))
    # The hello is proved with the right token, but the stream's signature is checked too.
    monkeypatch.setattr(sandboxd_client, "_sign", lambda key, *parts: _sign(*parts) if parts[0] == "hello" else "0")
    with pytest.raises(bounded.Malformed):
        watch()
