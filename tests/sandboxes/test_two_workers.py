"""Two web workers behind one uvicorn (`VIBEBOX_WEB_WORKERS=2`, issue 19): every connection lands on
whichever worker accepts it, and processes, terminals and streamed exec work the same, because
their state lives in sandboxd, not in a worker. The test holds connections open on both workers at
once (seen from /proc: which worker holds which socket) and uses a process and a terminal from both.
"""

import json
import os
import urllib.request
from contextlib import ExitStack

import pytest
from websockets.sync.client import connect

from tests.conftest import live_server
from tests.sandboxes.test_stateless import TICKS, call, recv_until
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _workers(master: int) -> list[int]:
    """uvicorn's worker processes (its children but multiprocessing's resource tracker)."""
    with open(f"/proc/{master}/task/{master}/children") as children:
        pids = [int(pid) for pid in children.read().split()]
    workers = []
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if b"spawn_main" in cmdline.read():
                workers.append(pid)
    return workers


def _established_sockets(port: int) -> set[str]:
    """Inodes of the server side of established TCP connections on `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    inodes.add(fields[9])
    return inodes


def _holders(workers: list[int], port: int) -> dict[int, int]:
    """How many of the server's established connections each worker holds."""
    inodes = _established_sockets(port)
    held = {}
    for pid in workers:
        count = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:  # closed meanwhile
                continue
            count += target.startswith("socket:[") and target[8:-1] in inodes
        held[pid] = count
    return held


def test_processes_terminals_and_streams_work_across_two_workers(api_key, create_sandbox):
    secret = api_key[1]
    headers = {"Authorization": f"Bearer {secret}"}
    sandbox_id = create_sandbox(template="python-3")["id"]
    with live_server(workers=2) as (url, master), ExitStack() as stack:
        ws = url.replace("http://", "ws://")
        port = int(url.rsplit(":", 1)[1])
        workers = wait_for(lambda: len(_workers(master)) == 2 and _workers(master), what="two uvicorn workers")
        wait_for(lambda: all(_healthy(url) for _ in range(4)), what="both workers answering")

        status, started = call(
            url, secret, "POST", f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": TICKS, "background": True}
        )
        assert status == 202, started
        process_id = started["processId"]

        # One terminal; clients join it until both workers hold some of the open connections.
        first = stack.enter_context(connect(f"{ws}/ws/sandboxes/{sandbox_id}/terminal", additional_headers=headers))
        session = json.loads(first.recv(timeout=60))["sessionId"]
        followers, joined = [], []
        for number in range(24):
            follower = stack.enter_context(
                connect(f"{ws}/ws/sandboxes/{sandbox_id}/processes/{process_id}", additional_headers=headers)
            )
            text = ""
            while "tick 2\n" not in text:  # each replays the process's output from its start
                message = json.loads(follower.recv(timeout=60))
                assert message["type"] == "stdout", message
                text += message["data"]
            assert text.startswith("tick 1\n")
            followers.append(follower)
            client = stack.enter_context(
                connect(f"{ws}/ws/sandboxes/{sandbox_id}/terminal?session={session}", additional_headers=headers)
            )
            assert json.loads(client.recv(timeout=60))["sessionId"] == session
            client.send(f"echo joined-$((1000+{number}))\n".encode())
            recv_until(client, f"joined-{1000 + number}".encode())
            recv_until(first, f"joined-{1000 + number}".encode())  # one shell, seen by every client
            joined.append(client)
            held = _holders(workers, port)
            if number >= 3 and all(held.values()):
                break
        assert all(held.values()), f"every connection landed on one worker: {held}"

        # Streamed exec over WebSocket and REST calls, several times over, whichever worker answers.
        for number in range(6):
            with connect(f"{ws}/ws/sandboxes/{sandbox_id}/exec", additional_headers=headers) as streamed:
                streamed.send(json.dumps({"command": ["echo", f"streamed-{number}"]}))
                out = ""
                while (message := json.loads(streamed.recv(timeout=60)))["type"] != "exit":
                    out += message.get("data", "")
                assert message["exitCode"] == 0 and out == f"streamed-{number}\n", (message, out)
            status, listed = call(url, secret, "GET", f"/api/v1/sandboxes/{sandbox_id}/processes")
            assert [p["processId"] for p in listed["processes"]] == [process_id], listed
            status, terminals = call(url, secret, "GET", f"/api/v1/sandboxes/{sandbox_id}/terminals")
            assert [t["sessionId"] for t in terminals["terminals"]] == [session], terminals

        # Ending them through any worker reaches every client, on both workers.
        status, killed = call(url, secret, "POST", f"/api/v1/sandboxes/{sandbox_id}/processes/{process_id}/kill")
        assert status == 200 and killed["processId"] == process_id
        for follower in followers:
            while (message := json.loads(follower.recv(timeout=60)))["type"] != "exit":
                assert message["type"] == "stdout"
            assert message["executionId"] == process_id
        request = urllib.request.Request(
            f"{url}/api/v1/sandboxes/{sandbox_id}/terminals/{session}", headers=headers, method="DELETE"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 204
        for client in [first, *joined]:
            recv_until(client, b'"exit"')


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False
