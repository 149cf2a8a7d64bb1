"""Interactive terminals: the real ASGI app (tests/ws.py) and a live uvicorn server driven
by a real WebSocket client, against real containers."""

import asyncio
import dataclasses
import json
import time

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.sandboxes import terminals
from tests.conftest import live_server
from tests.waiting import async_wait_for, wait_for
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def communicator(path: str, secret: str | None = None, subprotocol: str | None = None) -> Communicator:
    headers = [(b"host", b"testserver")]
    if secret:
        headers.append((b"authorization", f"Bearer {secret}".encode()))
    return Communicator(application, path, headers=headers, subprotocols=[subprotocol] if subprotocol else None)


async def open_terminal(path: str, secret: str) -> tuple[Communicator, dict]:
    comm = communicator(path, secret)
    connected, code = await comm.connect(timeout=20)
    assert connected, code
    first = await comm.receive_output(timeout=10)
    return comm, json.loads(first["text"])


async def read_until(comm: Communicator, needle: bytes, timeout: float = 15.0) -> bytes:
    """Output until `needle` appears; JSON messages and closes end up in the result as text."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        output = await comm.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            raise AssertionError(f"closed ({output.get('code')}) before {needle!r}; got {seen[-500:]!r}")
        seen += output.get("bytes") or (output.get("text") or "").encode()
    return seen


async def next_message(comm: Communicator, timeout: float = 15.0) -> dict:
    """The next JSON message or close, skipping output."""
    deadline = time.monotonic() + timeout
    while True:
        output = await comm.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if output["type"] == "websocket.close":
            return {"type": "__closed__", "code": output.get("code")}
        if output.get("text"):
            return json.loads(output["text"])


def processes(docker_client, sandbox_id: str) -> str:
    container = docker_client.containers.get(sandbox_id)
    return container.exec_run(["ps", "-eo", "args"]).output.decode()


async def running(docker_client, sandbox_id: str, command: str) -> None:
    """Waits until `command` runs in the sandbox (a line of `ps -eo args`)."""
    await async_wait_for(
        lambda: asyncio.to_thread(lambda: command in processes(docker_client, sandbox_id).splitlines()),
        what=f"{command!r} to run",
    )


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


# ---- through the ASGI app ----


def test_auth_refusals(api_key, sandbox_id, owner, outsider, make_key, api_client):
    path = f"/ws/sandboxes/{sandbox_id}/terminal"
    read_only = make_key(owner, ["sandboxes:read"])[1]
    outsider_key = make_key(outsider)[1]

    async def scenario():
        assert await communicator(path).connect() == (False, 4401)
        assert await communicator(path, "vb_live_nonsense").connect() == (False, 4401)
        assert await communicator(path, read_only).connect() == (False, 4403)
        assert await communicator(path, outsider_key).connect() == (False, 4404)
        assert await communicator(path + "?shell=python", api_key[1]).connect() == (False, 4400)
        assert await communicator(path + "?cols=0", api_key[1]).connect() == (False, 4400)
        assert await communicator(path + "?session=term_nope", api_key[1]).connect() == (False, 4404)
        # browsers pass the key as a subprotocol, which the server echoes
        comm = communicator(path, subprotocol=f"vibebox.{api_key[1]}")
        connected, protocol = await comm.connect(timeout=20)
        assert connected and protocol == f"vibebox.{api_key[1]}"
        session = json.loads((await comm.receive_output(timeout=10))["text"])
        # an outsider cannot join the session, even knowing its id
        joined = communicator(f"{path}?session={session['sessionId']}", outsider_key)
        assert await joined.connect() == (False, 4404)
        await comm.disconnect()

    async_to_sync(scenario)()
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop").status_code == 200
    assert async_to_sync(communicator(path, api_key[1]).connect)() == (False, 4409)


def test_type_resize_and_exit(api_key, sandbox_id):
    async def scenario():
        comm, session = await open_terminal(f"/ws/sandboxes/{sandbox_id}/terminal?cols=120&rows=40", api_key[1])
        assert session["type"] == "session" and session["sessionId"].startswith("term_")
        assert (session["cols"], session["rows"], session["shell"]) == (120, 40, "bash")
        await comm.send_to(text_data="stty size; echo hi-$((40+2))\n")
        assert b"40 120\r\nhi-42" in await read_until(comm, b"hi-42")
        await comm.send_json_to({"type": "resize", "cols": 101, "rows": 33})
        await comm.send_to(bytes_data=b"pwd; stty size\n")
        assert b"/workspace\r\n33 101" in await read_until(comm, b"33 101")
        await comm.send_json_to({"type": "resize", "cols": 0, "rows": 5})
        assert (await next_message(comm))["error"]["code"] == "validation_error"
        await comm.send_to(text_data='{"type": "input", "data": "exit 3\\n"}')
        assert await next_message(comm) == {"type": "exit", "exitCode": 3}
        assert await next_message(comm) == {"type": "__closed__", "code": 1000}

    async_to_sync(scenario)()


def test_sh_and_cwd(api_key, sandbox_id):
    async def scenario():
        comm, session = await open_terminal(f"/ws/sandboxes/{sandbox_id}/terminal?shell=sh&cwd=/tmp", api_key[1])
        assert (session["shell"], session["cols"], session["rows"]) == ("sh", 80, 24)
        await comm.send_to(text_data='echo "$0 in $(pwd) as $(id -un) $((6*7))"\n')
        assert b"sh in /tmp as sandbox 42" in await read_until(comm, b"sandbox 42")
        await comm.disconnect()

    async_to_sync(scenario)()


def test_stopping_the_sandbox_ends_its_terminal(api_key, sandbox_id, api_client):
    async def scenario():
        comm, _ = await open_terminal(f"/ws/sandboxes/{sandbox_id}/terminal", api_key[1])
        await comm.send_to(text_data="echo up-$((2+2))\n")
        await read_until(comm, b"up-4")
        response = await asyncio.to_thread(api_client.post, f"/api/v1/sandboxes/{sandbox_id}/stop")
        assert response.status_code == 200
        assert (await next_message(comm))["type"] == "exit"
        assert await next_message(comm) == {"type": "__closed__", "code": 1000}

    async_to_sync(scenario)()


BACKGROUND = "sleep 500 & nohup sleep 501 >/dev/null 2>&1 & setsid sleep 502 & echo ok-$((1+1))\n"


def no_sleeps_left(docker_client, sandbox_id: str) -> None:
    assert wait_for(lambda: "sleep 50" not in processes(docker_client, sandbox_id)), processes(
        docker_client, sandbox_id
    )
    assert "bash" not in processes(docker_client, sandbox_id)


def test_last_client_leaving_keeps_the_shell_and_a_kill_ends_everything(api_key, api_client, sandbox_id, docker_client):
    path = f"/ws/sandboxes/{sandbox_id}/terminal"
    url = f"/api/v1/sandboxes/{sandbox_id}/terminals"

    async def scenario():
        comm, session = await open_terminal(f"{path}?cols=90&rows=30", api_key[1])
        await comm.send_to(text_data=BACKGROUND)
        await read_until(comm, b"ok-2")
        await comm.send_to(text_data="sleep 503\n")
        await running(docker_client, sandbox_id, "sleep 503")
        await comm.disconnect()
        await asyncio.sleep(1)
        # nobody is attached: the shell and all it started live on
        for command in ("sleep 500", "sleep 501", "sleep 502", "sleep 503"):
            await running(docker_client, sandbox_id, command)
        # a client joining by id sees it, its recent output and its size, and types into it
        joined, again = await open_terminal(f"{path}?session={session['sessionId']}", api_key[1])
        assert again == {**session, "cols": 90, "rows": 30}
        assert b"ok-2" in await read_until(joined, b"ok-2")
        await joined.send_to(text_data="\x03echo back-$((4*4))\n")
        await read_until(joined, b"back-16")
        listed = (await asyncio.to_thread(api_client.get, url)).json()["terminals"]
        assert [(t["sessionId"], t["shell"], t["cols"], t["rows"], t["running"], t["attached"]) for t in listed] == [
            (session["sessionId"], "bash", 90, 30, True, 1)
        ]
        assert listed[0]["startedAt"] and listed[0]["argv"][-1] == "bash"

        await joined.send_json_to({"type": "kill"})
        message = await next_message(joined)
        assert message["type"] == "exit" and message["exitCode"] == 137, message
        assert await next_message(joined) == {"type": "__closed__", "code": 1000}
        return session["sessionId"]

    session_id = async_to_sync(scenario)()
    no_sleeps_left(docker_client, sandbox_id)
    assert api_client.get(url).json() == {"terminals": []}
    assert async_to_sync(communicator(f"{path}?session={session_id}", api_key[1]).connect)() == (False, 4404)


def test_delete_ends_a_terminal_and_everything_it_started(
    api_key, api_client, sandbox_id, docker_client, make_key, owner, outsider_client, client
):
    path = f"/ws/sandboxes/{sandbox_id}/terminal"
    url = f"/api/v1/sandboxes/{sandbox_id}/terminals"
    read_only = make_key(owner, ["sandboxes:read"])[1]
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {read_only}")

    def refusals(session_id):
        assert [t["sessionId"] for t in reader.get(url).json()["terminals"]] == [session_id]
        assert reader.delete(f"{url}/{session_id}").status_code == 403
        assert outsider_client.get(url).status_code == 404
        assert outsider_client.delete(f"{url}/{session_id}").json()["error"]["code"] == "sandbox_not_found"
        assert client.get(url).status_code == 401
        for unknown in ("term_nope", "exec_x", "term_" + "x" * 100, "term_a%20b"):
            response = api_client.delete(f"{url}/{unknown}")
            assert response.status_code == 404 and response.json()["error"]["code"] == "terminal_not_found", unknown
        assert "sleep 502" in processes(docker_client, sandbox_id)  # nothing was ended meanwhile

    async def scenario():
        comm, session = await open_terminal(path, api_key[1])
        await comm.send_to(text_data=BACKGROUND)
        await read_until(comm, b"ok-2")
        await asyncio.to_thread(refusals, session["sessionId"])
        response = await asyncio.to_thread(api_client.delete, f"{url}/{session['sessionId']}")
        assert response.status_code == 204, response.content
        message = await next_message(comm)
        assert message["type"] == "exit" and message["exitCode"] == 137, message
        assert await next_message(comm) == {"type": "__closed__", "code": 1000}
        return session["sessionId"]

    session_id = async_to_sync(scenario)()
    no_sleeps_left(docker_client, sandbox_id)
    assert api_client.delete(f"{url}/{session_id}").json()["error"]["code"] == "terminal_not_found"
    assert api_client.get(url).json() == {"terminals": []}


def test_idle_terminal_is_closed(api_key, sandbox_id, settings, docker_client):
    settings.VIBEBOX_TERMINAL_IDLE_TIMEOUT = 1.5

    async def scenario():
        comm, _ = await open_terminal(f"/ws/sandboxes/{sandbox_id}/terminal", api_key[1])
        await comm.send_to(text_data="sleep 600\n")
        assert await next_message(comm) == {"type": "exit", "exitCode": None, "reason": "idle"}
        assert await next_message(comm) == {"type": "__closed__", "code": 4408}

    async_to_sync(scenario)()
    assert wait_for(lambda: "sleep 600" not in processes(docker_client, sandbox_id))


def test_a_client_that_missed_output_is_told_how_much(api_key, sandbox_id, monkeypatch):
    """A client whose attach starts at output sandboxd no longer keeps gets
    {"type": "truncated", "droppedBytes"} for the gap, then the output after it. Here a client
    joins with a listing of the terminal read before it printed more than sandboxd's buffer
    (256 KiB), as when it joins while the terminal prints fast; a client that falls behind while
    the shell prints on gets the same."""
    path = f"/ws/sandboxes/{sandbox_id}/terminal"
    listed = terminals._in_daemon
    monkeypatch.setattr(  # as listed before the flood: nothing printed yet
        terminals,
        "_in_daemon",
        lambda sandbox: [dataclasses.replace(t, output_bytes=0, buffered_from=0) for t in listed(sandbox)],
    )

    async def scenario():
        comm, session = await open_terminal(path, api_key[1])
        await comm.send_to(text_data="head -c 600000 /dev/zero | tr '\\0' a; echo; echo flood-$((1+1))\n")
        await read_until(comm, b"flood-2", timeout=60)
        joined, _ = await open_terminal(f"{path}?session={session['sessionId']}", api_key[1])
        first = await joined.receive_output(timeout=15)
        message = json.loads(first.get("text") or "null")
        assert message and message["type"] == "truncated", first
        assert 600000 - 256 * 1024 < message["droppedBytes"] < 600000, message
        after = await read_until(joined, b"flood-2")
        assert after.startswith(b"a" * 1000) and b"truncated" not in after, after[:200]
        await joined.send_json_to({"type": "kill"})
        assert (await next_message(joined))["type"] == "exit"
        assert (await next_message(comm))["type"] == "exit"

    async_to_sync(scenario)()


def test_a_terminal_whose_opening_was_abandoned_is_ended(api_key, api_client, sandbox_id, monkeypatch):
    """A connection given up while sandboxd opens its terminal (here: cancelled, as an ASGI server
    cancels an application it gives up on) leaves no terminal behind: nobody knows its id, and it
    would live, uncounted, until its idle timeout."""
    from apps.sandboxes.runtime.docker import DockerDriver

    opened = DockerDriver.terminal_open

    def slow_open(self, *args, **kwargs):
        time.sleep(2)  # the connection is given up meanwhile
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(DockerDriver, "terminal_open", slow_open)
    url = f"/api/v1/sandboxes/{sandbox_id}/terminals"

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{sandbox_id}/terminal", api_key[1])
        with pytest.raises(asyncio.TimeoutError):
            await comm.connect(timeout=1)  # then the communicator cancels the application

    async_to_sync(scenario)()
    time.sleep(3)  # the open has gone through meanwhile
    wait_for(lambda: api_client.get(url).json()["terminals"] == [], timeout=15, what="no terminal left")


# ---- a live server and a real WebSocket client ----


@pytest.fixture
def uvicorn_server(transactional_db, templates):
    """The live server, dropping slow clients after 2 s; yields (ws url, pid)."""
    with live_server(VIBEBOX_WS_SLOW_CLIENT_SECONDS="2") as (url, pid):
        yield url.replace("http", "ws"), pid


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        line = next(line for line in handle if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


class Terminal:
    """A real WebSocket client on a terminal, with the output seen so far."""

    def __init__(self, ws):
        self.ws = ws
        self.output = b""
        self.session = None

    @classmethod
    async def open(cls, base: str, sandbox_id: str, secret: str, query: str = "", **options) -> "Terminal":
        ws = await connect(
            f"{base}/ws/sandboxes/{sandbox_id}/terminal{query}",
            additional_headers={"Authorization": f"Bearer {secret}"},
            max_size=None,
            **options,
        )
        terminal = cls(ws)
        terminal.session = json.loads(await asyncio.wait_for(ws.recv(), 20))
        return terminal

    async def expect(self, needle: bytes, timeout: float = 15.0) -> bytes:
        async with asyncio.timeout(timeout):
            while needle not in self.output:
                frame = await self.ws.recv()
                self.output += frame if isinstance(frame, bytes) else frame.encode()
        seen, self.output = self.output, self.output[self.output.index(needle) + len(needle) :]
        return seen

    async def type(self, text: str) -> None:
        await self.ws.send(text.encode())

    async def kill(self, timeout: float = 30.0) -> bytes:
        """Ends the terminal for every client; answers what came until the close (1000)."""
        await self.ws.send(json.dumps({"type": "kill"}))
        async with asyncio.timeout(timeout):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frame = await self.ws.recv()
                    self.output += frame if isinstance(frame, bytes) else frame.encode()
        assert closed.value.rcvd.code == 1000, closed.value
        return self.output


def test_real_client_resize_cat_ctrl_c_and_shared_session(uvicorn_server, api_key, sandbox_id, docker_client):
    base, _ = uvicorn_server
    secret = api_key[1]

    async def scenario():
        agent = await Terminal.open(base, sandbox_id, secret, "?cols=100&rows=30")
        await agent.type("stty size; echo ready-$((2*4))\n")
        assert b"30 100" in await agent.expect(b"ready-8")
        await agent.ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}))
        await agent.type("stty size\n")
        await agent.expect(b"43 132")

        # cat echoes what is typed (the terminal's echo, then cat's copy); Ctrl-D ends it
        await agent.type("cat\n")
        await running(docker_client, sandbox_id, "cat")  # what is typed now goes to cat
        await agent.type("meow-line\n")
        seen = await agent.expect(b"meow-line\r\nmeow-line")
        assert seen.count(b"meow-line") >= 2
        await agent.type("\x04echo cat-done-$((3*3))\n")
        await agent.expect(b"cat-done-9")

        # Ctrl-C interrupts a foreground sleep long before it ends
        await agent.type("sleep 100\n")
        await running(docker_client, sandbox_id, "sleep 100")
        started = time.monotonic()
        await agent.type("\x03")
        await agent.type("echo rc=$?-$((5*5))\n")
        assert b"rc=130-25" in await agent.expect(b"-25", timeout=60)
        assert time.monotonic() - started < 60  # interrupted: the sleep had 100 s to go

        # a person joins the agent's session: both see the same output, either can type
        person = await Terminal.open(base, sandbox_id, secret, f"?session={agent.session['sessionId']}")
        assert person.session["sessionId"] == agent.session["sessionId"]
        assert (person.session["cols"], person.session["rows"]) == (132, 43)
        await agent.type("echo shared-$((6*7))\n")
        await agent.expect(b"shared-42")
        await person.expect(b"shared-42")
        await person.type("echo from-person-$((7*7))\n")
        await agent.expect(b"from-person-49")
        await person.expect(b"from-person-49")

        # the agent leaves; the shell lives on for the person, who ends it
        await agent.type("sleep 500 &\n")
        await person.expect(b"sleep 500")
        await agent.ws.close()
        await person.type("echo still-$((8*8))\n")
        await person.expect(b"still-64")
        assert "sleep 500" in await asyncio.to_thread(processes, docker_client, sandbox_id)
        assert b'"exit"' in await person.kill()

    async_to_sync(scenario)()
    assert wait_for(lambda: "sleep 500" not in processes(docker_client, sandbox_id)), processes(
        docker_client, sandbox_id
    )


def test_flood_to_a_client_that_never_reads_keeps_server_memory_bounded(
    uvicorn_server, api_key, sandbox_id, docker_client
):
    base, pid = uvicorn_server
    secret = api_key[1]

    async def scenario():
        warm = await Terminal.open(base, sandbox_id, secret)  # load everything a terminal needs once
        await warm.type("echo warm-$((1+2))\n")
        await warm.expect(b"warm-3")
        await warm.kill()
        await async_wait_for(  # its session has ended: the shell is gone
            lambda: asyncio.to_thread(lambda: "bash" not in processes(docker_client, sandbox_id)),
            what="the warm-up terminal's shell to go",
        )
        before = rss_mib(pid)

        # without compression, or `yes` would squeeze a thousandfold into the socket buffers
        flooded = await Terminal.open(base, sandbox_id, secret, compression=None)
        await flooded.type("yes flood-flood-flood-flood\n")
        other = await Terminal.open(base, sandbox_id, secret)
        await running(docker_client, sandbox_id, "yes flood-flood-flood-flood")
        # another terminal of the same server is served while the flood is held back
        await other.type("echo alive-$((9*9))\n")
        await other.expect(b"alive-81", timeout=60)
        peak = before
        for _ in range(10):  # 5 s more without reading the flooded terminal
            await asyncio.sleep(0.5)
            peak = max(peak, rss_mib(pid))

        # the flooded client was dropped (4008): draining it ends in that close, after a bounded amount
        received = 0
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(30):
                while True:
                    received += len(await flooded.ws.recv())
        # the shell ran on without its client: ended by the other client's server, by id
        killer = await Terminal.open(base, sandbox_id, secret, f"?session={flooded.session['sessionId']}")
        await killer.kill()
        await other.ws.close()
        return before, peak, received, closed.value.rcvd.code

    before, peak, received, code = async_to_sync(scenario)()
    assert code == 4008
    assert peak - before < 50, (before, peak)
    assert received < 64 * 1024**2, received
    assert wait_for(lambda: "yes flood" not in processes(docker_client, sandbox_id)), processes(
        docker_client, sandbox_id
    )


# ---- what the server takes from sandboxd, and gives it ----


GOOD_ENTRY = {
    "exec_id": "term_x",
    "argv": ["sh", "-c", "…", "sh", "bash"],
    "user": "sandbox",
    "pid": 7,
    "started_at": "2026-01-01T00:00:00.000Z",
    "running": True,
    "exit_code": None,
    "timed_out": False,
    "idle": False,
    "finished_at": None,
    "cols": 80,
    "rows": 24,
    "attached": 1,
    "output_bytes": 100,
    "buffered_from": 0,
}


@pytest.mark.parametrize(
    "change",
    [
        {"exec_id": 3},
        {"exec_id": "t" * 200},
        {"argv": "sh"},
        {"argv": [1]},
        {"argv": ["x"] * 100},
        {"started_at": 5},
        {"running": "yes"},
        {"idle": 1},
        {"exit_code": 300},
        {"cols": 0},
        {"rows": 1001},
        {"attached": -1},
        {"output_bytes": 1.5},
        {"buffered_from": 101},
        {"cols": None},
    ],
)
def test_a_terminal_list_entry_from_sandboxd_is_checked(change):
    from apps.sandboxes.runtime.docker import _terminal_info

    assert _terminal_info(GOOD_ENTRY).argv[-1] == "bash"
    with pytest.raises((KeyError, TypeError, ValueError)):
        _terminal_info({**GOOD_ENTRY, **change})


def test_resizes_go_in_order_with_the_keystrokes_and_count_against_the_bound():
    from apps.sandboxes.runtime.base import RESIZE_COST, ExecControl

    control = ExecControl()
    control.write(b"ab")
    control.resize(100, 30)
    control.write(b"cd")
    control.resize(90, 20)
    assert control.buffered == 4 + 2 * RESIZE_COST
    assert control.take()[0] == b"ab" and control.take_resize() == (100, 30)
    assert control.take_resize() is None  # keystrokes come first
    assert control.take()[0] == b"cd" and control.take_resize() == (90, 20)
    assert control.buffered == 0 and control.take()[0] == b""
    control.close()
    control.write(b"after")  # goes nowhere, raises nothing
    control.resize(1, 1)
