"""The public file watch (issue 25): GET /api/v1/sandboxes/{id}/files/watch as Server-Sent Events
(through a live uvicorn, so streaming and a client hanging up are real) and the WebSocket
/ws/sandboxes/{id}/files/watch (the real ASGI app). A real sandbox; commands run through the API."""

import contextlib
import json
import os
import socket
import threading
import time

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import live_server
from tests.waiting import wait_for
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

HUNDRED = "for i in $(seq 100); do echo $i > f$i; done"
NAMES = {f"/workspace/f{i}" for i in range(1, 101)}


def run(api_client, sandbox_id, command):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["exitCode"] == 0, response.json()


def inotify_instances(docker_client, sandbox_id) -> int:
    """The inotify descriptors sandboxd (the container's PID 1) holds, read from the host."""
    pid = docker_client.api.inspect_container(sandbox_id)["State"]["Pid"]
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
    return count


def created(seen) -> set[str]:
    return {e["path"] for e in seen if e.get("type") == "create"}


def communicator(path: str, secret: str | None = None) -> Communicator:
    headers = [(b"host", b"testserver")]
    if secret:
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    return Communicator(application, path, headers=headers)


async def read_until(comm, seen: list, done, timeout: float = 60.0) -> list:
    """Messages into `seen` until done(seen); a close is recorded as {"__closed__": code}."""
    deadline = time.monotonic() + timeout
    while not done(seen):
        output = await comm.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            seen.append({"__closed__": output.get("code")})
            return seen
        seen.append(json.loads(output["text"]))
    return seen


# ---- WebSocket ----


def test_websocket_watch(api_client, api_key, create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="python-3")["id"]
    base = f"/ws/sandboxes/{sandbox_id}/files/watch"
    secret = api_key[1]
    exec_ = sync_to_async(run)

    async def scenario():
        comm = communicator(f"{base}?path=/workspace&exclude=node_modules", secret)
        connected, _ = await comm.connect()
        assert connected  # the watch is in place: what the command does next is seen
        seen: list = []
        await exec_(api_client, sandbox_id, f"{HUNDRED}; mkdir -p node_modules/x sub")
        await read_until(comm, seen, lambda s: created(s) >= NAMES | {"/workspace/sub"})
        # Now that `sub` is watched, a move into it is a rename. (A move into a directory made by
        # the same command may land before its watch is in place: inotify then tells only that f1
        # went, and the new directory's scan reports sub/moved as created.)
        await exec_(api_client, sandbox_id, "mv f1 sub/moved")
        await read_until(comm, seen, lambda s: any(e.get("type") == "rename" for e in s))
        rename = next(e for e in seen if e.get("type") == "rename")
        assert rename["path"] == "/workspace/sub/moved" and rename["from"] == "/workspace/f1", rename
        assert not [e for e in seen if "node_modules" in e.get("path", "")], "an excluded path was reported"
        assert not [e for e in seen if e.get("type") == "overflow"], seen
        event = next(e for e in seen if e.get("path") == "/workspace/f2")
        assert set(event) == {"type", "path", "isDir", "time"} and event["isDir"] is False

        # It survives a pause and resume: the same connection reports what came after.
        paused = await sync_to_async(api_client.post)(f"/api/v1/sandboxes/{sandbox_id}/pause")
        assert paused.json()["status"] == "paused"
        resumed = await sync_to_async(api_client.post)(f"/api/v1/sandboxes/{sandbox_id}/resume")
        assert resumed.json()["status"] == "running"
        await exec_(api_client, sandbox_id, "echo after > resumed.txt")
        await read_until(comm, seen, lambda s: any(e.get("path") == "/workspace/resumed.txt" for e in s))
        await comm.disconnect()

        # A watch of a directory that goes away ends: {type: end, reason} and a normal close.
        comm = communicator(f"{base}?path=sub&recursive=false", secret)
        assert (await comm.connect())[0]
        await exec_(api_client, sandbox_id, "rm -rf sub")
        rest = await read_until(comm, [], lambda s: any("__closed__" in e for e in s))
        assert {"type": "end", "reason": "root_removed"} in rest, rest
        assert rest[-1] == {"__closed__": 1000}
        assert any(e.get("type") == "remove" and e.get("path") == "/workspace/sub/moved" for e in rest), rest

    async_to_sync(scenario)()
    # Leaving frees the watch in the sandbox.
    wait_for(lambda: inotify_instances(docker_client, sandbox_id) == 0, timeout=30, what="the watches freed")


def test_websocket_refusals(api_client, api_key, create_sandbox, outsider, make_key, owner):
    sandbox_id = create_sandbox(template="python-3")["id"]
    base = f"/ws/sandboxes/{sandbox_id}/files/watch"
    run(api_client, sandbox_id, "echo x > afile")
    read_only = make_key(owner, ["sandboxes:read"])[1]
    no_read = make_key(owner, ["execute"])[1]

    def close_code(path, secret=None):
        async def scenario():
            comm = communicator(path, secret)
            result = await comm.connect()
            await comm.disconnect()
            return result

        return async_to_sync(scenario)()

    assert close_code(base) == (False, 4401)
    # Over HTTP it is a GET only: a HEAD would open a watch whose events nobody gets.
    head = api_client.head(f"/api/v1/sandboxes/{sandbox_id}/files/watch")
    assert head.status_code == 405 and head["Allow"] == "GET, OPTIONS"
    assert close_code(base, make_key(outsider)[1]) == (False, 4404)
    assert close_code("/ws/sandboxes/sbx_nope/files/watch", api_key[1]) == (False, 4404)
    assert close_code(base, no_read) == (False, 4403)
    assert close_code(f"{base}?path=/workspace/missing", api_key[1]) == (False, 4404)
    assert close_code(f"{base}?path=afile", api_key[1]) == (False, 4400)  # not a directory
    assert close_code(f"{base}?path=a%00b", api_key[1]) == (False, 4400)
    assert close_code(f"{base}?timeout=soon", api_key[1]) == (False, 4400)
    assert close_code(f"{base}?exclude=", api_key[1]) == (False, 4400)
    # A paused sandbox: 409, and a key that may only read cannot resume it.
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause").json()["status"] == "paused"
    assert close_code(base, api_key[1]) == (False, 4409)
    assert close_code(f"{base}?autoResume=true", read_only) == (False, 4403)
    connected, _ = close_code(f"{base}?autoResume=true", api_key[1])
    assert connected
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()["status"] == "running"


# ---- Server-Sent Events ----


class Events:
    """An SSE response read in a thread: `events` (parsed data lines) and `comments`."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.events: list[dict] = []
        self.comments: list[str] = []
        self.finished = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with contextlib.suppress(httpx.HTTPError):
            for line in self.response.iter_lines():
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))
                elif line.startswith(":"):
                    self.comments.append(line)
        self.finished = True


def test_server_sent_events(api_client, api_key, create_sandbox, docker_client, outsider, make_key):
    sandbox_id = create_sandbox(template="python-3")["id"]
    headers = {"Authorization": f"Bearer {api_key[1]}", "Accept": "text/event-stream"}
    with (
        live_server(VIBEBOX_SSE_KEEPALIVE_SECONDS="0.5") as (url, _pid),
        httpx.Client(base_url=url, timeout=httpx.Timeout(60, read=None)) as http,
    ):
        path = f"/api/v1/sandboxes/{sandbox_id}/files/watch"
        with http.stream("GET", path, params={"path": "/workspace"}, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = Events(response)
            wait_for(lambda: stream.comments, timeout=30, what="the first comment")  # the watch is in place
            run(api_client, sandbox_id, HUNDRED)
            wait_for(lambda: created(stream.events) >= NAMES, timeout=60, what="100 creates over SSE")
            wait_for(lambda: ": keep-alive" in stream.comments, timeout=30, what="a keep-alive comment")
            assert not [e for e in stream.events if e["type"] == "overflow"]
            assert inotify_instances(docker_client, sandbox_id) == 1
        # The client hung up: the server ends the stream and frees the watch in the sandbox.
        wait_for(lambda: inotify_instances(docker_client, sandbox_id) == 0, timeout=30, what="the watch freed")

        # A watch that ends by itself ends the response with an `end` event.
        run(api_client, sandbox_id, "mkdir -p gone")
        with http.stream("GET", path, params={"path": "gone"}, headers=headers) as response:
            stream = Events(response)
            wait_for(lambda: stream.comments, timeout=30, what="the first comment")
            run(api_client, sandbox_id, "rmdir gone")
            stream.thread.join(60)
            assert stream.finished and stream.events[-1] == {"type": "end", "reason": "root_removed"}

        # The server's timeout (a duration) ends it too.
        with http.stream("GET", path, params={"timeout": "1s"}, headers=headers) as response:
            stream = Events(response)
            stream.thread.join(60)
            assert stream.events[-1] == {"type": "end", "reason": "timeout"}

        # Refusals come as the usual JSON envelope, whatever Accept said.
        def refusal(params=None, key=api_key[1], accept="text/event-stream"):
            answer = http.get(path, params=params, headers={"Authorization": f"Bearer {key}", "Accept": accept})
            return answer.status_code, answer.json()["error"]["code"]

        assert refusal(key="vb_live_nonsense")[0] == 401
        assert http.get(path, headers={"Accept": "text/event-stream"}).status_code == 401
        assert refusal(key=make_key(outsider)[1]) == (404, "sandbox_not_found")
        assert refusal({"path": "/workspace/missing"}) == (404, "file_not_found")
        assert refusal({"path": "a\nb"}) == (400, "invalid_path")
        assert refusal({"exclude": ["ok", ""]}) == (400, "validation_error")
        assert refusal({"timeout": "soon"}) == (400, "invalid_duration")
        assert refusal(accept="application/json") == (406, "not_acceptable")
    wait_for(lambda: inotify_instances(docker_client, sandbox_id) == 0, timeout=30, what="every watch freed")


# ---- a client that does not read ----

# Events with long paths (~ 3 KB each: a file 14 directories of 200-character names deep), 10000 of
# them (~ 30 MB), made in steps of 100 that sandboxd and the server keep up with: what piles up is
# the client's, far more than loopback's socket buffers (a few MiB each way), sandboxd's queue
# (512 KiB) and the server's own buffers hold together.
DEEP = "/".join(f"{level:0200d}" for level in range(14))
SCRIPT = (
    "import time\n"
    "for step in range(100):\n"
    "    for i in range(100):\n"
    f"        open('{DEEP}/n%0200d' % (step * 100 + i), 'w').close()\n"
    "    time.sleep(0.002)\n"
)
MANY = f'python3 -c "{SCRIPT}"'


def test_a_client_that_does_not_read_costs_bounded_memory(api_client, api_key, create_sandbox, docker_client):
    """Neither transport buffers what a client does not take: a WebSocket client that stops
    reading is dropped (4008); an SSE client's stream waits, and sandboxd's own bounded queue
    drops the rest, reported as an `overflow` (queue) once the client reads again."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    run(api_client, sandbox_id, f"mkdir -p ws/{DEEP} sse/{DEEP}")
    headers = {"Authorization": f"Bearer {api_key[1]}"}
    with live_server(VIBEBOX_WS_SLOW_CLIENT_SECONDS="1") as (url, _pid):
        # WebSocket: the client's library stops reading the socket after one queued message, and
        # the socket's receive buffer is small.
        host, port = url.removeprefix("http://").split(":")
        ws_url = url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox_id}/files/watch?path=ws"
        small = socket.create_connection((host, int(port)))
        small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with connect(
            ws_url, sock=small, additional_headers=headers, max_queue=1, max_size=None, ping_interval=None
        ) as ws:
            run(api_client, sandbox_id, f"cd ws && {MANY}")
            # The server gives up on the client that does not read: its watch ends meanwhile.
            wait_for(lambda: inotify_instances(docker_client, sandbox_id) == 0, timeout=60, what="the client dropped")
            # What the server had sent before it gave up is read now, then its close: through a
            # 4 KiB window that read alone took two minutes (a segment per delayed ACK).
            small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            received: list[dict] = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    received.append(json.loads(ws.recv(timeout=60)))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008, (closed.value, len(received))
            assert len(received) < 10000

        # SSE: a raw socket with a small receive buffer that reads nothing while the events come.
        with socket.socket() as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect((host, int(port)))
            raw.sendall(
                f"GET /api/v1/sandboxes/{sandbox_id}/files/watch?path=sse HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {api_key[1]}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            wait_for(lambda: inotify_instances(docker_client, sandbox_id) == 1, timeout=30, what="the SSE watch")
            run(api_client, sandbox_id, f"cd sse && {MANY}")
            reader = raw.makefile("rb")
            creates, overflow = 0, None
            while overflow is None:
                line = reader.readline()
                assert line, "the stream ended"
                if line.startswith(b"data: "):
                    event = json.loads(line[6:])
                    creates += event["type"] == "create"
                    overflow = event if event["type"] == "overflow" else None
            assert overflow["reason"] == "queue" and creates < 10000, (overflow, creates)
            reader.close()  # the socket closes with its last file object
        wait_for(lambda: inotify_instances(docker_client, sandbox_id) == 0, timeout=30, what="the SSE watch freed")
