"""The server keeps no sandbox state (issue 19): a background process started through one web
server lives on in the sandbox's sandboxd when that server is killed with SIGKILL, and another
server lists it, replays its output from the start, follows it live and kills it; the reconcile
pass records the end that the dead server could not. A terminal does the same: another server
lists it, a client of it joins and types into it, and ends it."""

import datetime as dt
import json
import os
import signal
import urllib.request

import pytest
from django.utils import timezone
from websockets.sync.client import connect

from apps.sandboxes.models import Execution
from apps.sandboxes.reconcile import sandbox_reconcile
from tests.conftest import live_server
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TICKS = "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done"


def call(url: str, secret: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.load(response)


def test_a_background_process_survives_a_killed_server_and_another_serves_it(api_key, create_sandbox):
    secret = api_key[1]
    sandbox_id = create_sandbox(template="python-3")["id"]
    with live_server() as (first_url, first_pid):
        status, started = call(
            first_url, secret, "POST", f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": TICKS, "background": True}
        )
        assert status == 202, started
        process_id = started["processId"]
        wait_for(lambda: Execution.objects.filter(pk=process_id).exists())
        os.kill(first_pid, signal.SIGKILL)  # no shutdown, no clean-up: the process's server is gone

    with live_server() as (url, _):
        status, listed = call(url, secret, "GET", f"/api/v1/sandboxes/{sandbox_id}/processes")
        assert status == 200 and [p["processId"] for p in listed["processes"]] == [process_id], listed
        socket_url = url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox_id}/processes/{process_id}"
        with connect(socket_url, additional_headers={"Authorization": f"Bearer {secret}"}) as connection:
            text = ""
            while "tick 30\n" not in text:  # replayed from the start, then live (a tick every 0.2 s)
                message = json.loads(connection.recv(timeout=60))
                assert message["type"] == "stdout", message
                text += message["data"]
            assert text.startswith("tick 1\ntick 2\n")
            status, killed = call(url, secret, "POST", f"/api/v1/sandboxes/{sandbox_id}/processes/{process_id}/kill")
            assert status == 200 and killed["processId"] == process_id
            while (message := json.loads(connection.recv(timeout=60)))["type"] != "exit":
                assert message["type"] == "stdout"
        assert message["executionId"] == process_id and message["status"] == "failed", message

    # Nobody followed it to its end: the reconcile pass (Celery beat) records it from sandboxd.
    assert Execution.objects.get(pk=process_id).status == Execution.Status.RUNNING
    report = sandbox_reconcile(now=timezone.now() + dt.timedelta(seconds=60))
    assert report.processes_recorded == 1, report.as_dict()
    row = Execution.objects.get(pk=process_id)
    assert row.status == Execution.Status.FAILED and row.stdout.startswith("tick 1\ntick 2\n")


def recv_until(connection, needle: bytes) -> bytes:
    """A terminal's frames until `needle` shows up (JSON messages as their text)."""
    seen = b""
    while needle not in seen:
        frame = connection.recv(timeout=60)
        seen += frame if isinstance(frame, bytes) else frame.encode()
    return seen


def test_a_terminal_survives_a_killed_server_and_another_serves_it(api_key, create_sandbox, docker_client):
    secret = api_key[1]
    headers = {"Authorization": f"Bearer {secret}"}
    sandbox_id = create_sandbox(template="python-3")["id"]
    path = f"/ws/sandboxes/{sandbox_id}/terminal"
    with (
        live_server() as (first_url, first_pid),
        connect(first_url.replace("http://", "ws://") + path, additional_headers=headers) as connection,
    ):
        session = json.loads(connection.recv(timeout=60))
        connection.send(b"cd /tmp; sleep 700 & echo first-$((20+1))\n")
        recv_until(connection, b"first-21")
        os.kill(first_pid, signal.SIGKILL)  # no shutdown: its client's connection just breaks

    container = docker_client.containers.get(sandbox_id)
    assert "sleep 700" in container.exec_run(["ps", "-eo", "args"]).output.decode()
    with live_server() as (url, _):
        status, listed = call(url, secret, "GET", f"/api/v1/sandboxes/{sandbox_id}/terminals")
        assert status == 200 and [t["sessionId"] for t in listed["terminals"]] == [session["sessionId"]], listed
        socket_url = url.replace("http://", "ws://") + f"{path}?session={session['sessionId']}"
        with connect(socket_url, additional_headers=headers) as joined:
            assert json.loads(joined.recv(timeout=60))["sessionId"] == session["sessionId"]
            assert b"first-21" in recv_until(joined, b"first-21")  # the recent output
            joined.send(b"echo second-$((40+2)) in $(pwd)\n")
            recv_until(joined, b"second-42 in /tmp")  # the same shell
            terminal_url = f"{url}/api/v1/sandboxes/{sandbox_id}/terminals/{session['sessionId']}"
            request = urllib.request.Request(terminal_url, headers=headers, method="DELETE")
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 204
            assert b'"exit"' in recv_until(joined, b'"exit"')
    assert wait_for(lambda: "sleep 700" not in container.exec_run(["ps", "-eo", "args"]).output.decode())


def test_a_process_ends_with_its_sandbox_and_its_record_says_so(api_client, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    started = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "sleep 600", "background": True}, format="json"
    )
    assert started.status_code == 202, started.content
    process_id = started.json()["processId"]
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop").status_code == 200
    wait_for(lambda: Execution.objects.get(pk=process_id).status != Execution.Status.RUNNING)
    row = Execution.objects.get(pk=process_id)
    # sandboxd ends its commands when the container stops (SIGTERM): the exit is recorded; had
    # the connection broken first, the record would say the process ended with its sandbox.
    assert row.finished_at and (row.status, row.exit_code) in (("failed", 143), ("failed", 137), ("error", None))
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}/processes").json()["processes"] == []
