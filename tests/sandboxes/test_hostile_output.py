"""Everything that comes out of a sandbox is hostile (issue 17, item 3).

A fake sandboxd (tests/sandboxes/fake_agent.py, put where the server looks for the sandbox's
sandboxd by tests/sandboxes/fakes.py) floods, drips, answers malformed or forged answers; through
a live server, `POST …/exec` answers a clean error envelope within the command's deadline, the
server's memory stays put, and another sandbox's commands keep working meanwhile. A command that
prints gigabytes through the normal paths is capped too.
"""

import contextlib
import json
import threading
import urllib.error
import urllib.request

import pytest
from websockets.sync.client import connect

from apps.sandboxes.runtime import bounded, sandboxd_client
from tests.conftest import live_server
from tests.sandboxes import fakes
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        line = next(line for line in handle if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def post_exec(url: str, secret: str, sandbox_id: str, body: dict, timeout: float) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/api/v1/sandboxes/{sandbox_id}/exec",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def start_fake_agent(url: str, secret: str, docker_client, sandbox_id: str, mode: str) -> None:
    """The sandbox's sandboxd replaced by a fake answering in `mode`. The server cached the real
    one's address: nothing answers there any more, so the next command looks it up again and
    finds the fake."""
    fakes.replace(docker_client, sandbox_id, mode)


@pytest.fixture
def server(transactional_db, templates):
    with live_server() as (url, pid):
        yield url, pid


@pytest.fixture
def sandboxes(server, api_key, create_sandbox):
    """(victim, bystander): two sandboxes whose sandboxd answers through the live server."""
    url, _ = server
    ids = [create_sandbox(template="python-3")["id"] for _ in range(2)]
    body = {"command": "true"}
    for sandbox_id in ids:
        wait_for(lambda sandbox_id=sandbox_id: post_exec(url, api_key[1], sandbox_id, body, 30)[0] == 200)
    return ids


def assert_clean_error(status: int, body: dict, reason: str) -> None:
    assert status == 502, body
    assert body["error"]["code"] == "runtime_error", body
    assert body["error"]["details"]["reason"] == reason, body
    assert body["requestId"]


def bystander_works(url: str, secret: str, bystander: str, rounds: int = 3) -> int:
    done = 0
    for i in range(rounds):
        status, body = post_exec(url, secret, bystander, {"command": f"echo ok-{i}"}, 60)
        assert status == 200 and body["stdout"] == f"ok-{i}\n", body
        done += 1
    return done


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("flood", "sandboxd_too_large"),
        ("chunked", "sandboxd_malformed"),
        ("malformed", "sandboxd_malformed"),
        ("types", "sandboxd_malformed"),
        ("bomb", "sandboxd_malformed"),
        ("overlong", "sandboxd_malformed"),
        ("unsigned", "sandboxd_identity"),
    ],
)
def test_a_hostile_sandboxd_answer_is_a_clean_error(server, api_key, sandboxes, docker_client, mode, reason):
    url, pid = server
    victim, bystander = sandboxes
    bystander_works(url, api_key[1], bystander)  # warm: the code paths are loaded before measuring
    before = rss(pid)
    start_fake_agent(url, api_key[1], docker_client, victim, mode)
    outcome = {}

    def attack():
        outcome["answer"] = post_exec(url, api_key[1], victim, {"command": "echo hi", "timeout": 5}, 120)

    thread = threading.Thread(target=attack)
    thread.start()
    assert bystander_works(url, api_key[1], bystander) == 3
    thread.join(120)
    assert not thread.is_alive(), "the server did not answer"
    assert_clean_error(*outcome["answer"], reason)
    assert rss(pid) - before < 50 * MiB


def test_a_dripping_sandboxd_is_cut_off_at_the_deadline_while_others_work(server, api_key, sandboxes, docker_client):
    url, pid = server
    victim, bystander = sandboxes
    bystander_works(url, api_key[1], bystander)
    before = rss(pid)
    start_fake_agent(url, api_key[1], docker_client, victim, "drip")
    outcome = {}
    timeout = 10  # the server waits timeout + SLACK: time enough for the bystander on a busy machine

    def attack():
        outcome["answer"] = post_exec(url, api_key[1], victim, {"command": "echo hi", "timeout": timeout}, 120)

    thread = threading.Thread(target=attack)
    thread.start()
    wait_for(lambda: "POST" in fakes.in_container(docker_client, victim, "cat /tmp/fake-log"), what="the drip to begin")
    # Commands of another sandbox keep working while the server waits on the drip.
    assert bystander_works(url, api_key[1], bystander) == 3
    assert thread.is_alive()  # …while the victim's request was still waiting on its sandboxd
    thread.join(timeout + sandboxd_client.SLACK + 60)
    assert not thread.is_alive(), "the server did not cut the drip off"
    assert_clean_error(*outcome["answer"], "sandboxd_deadline")
    assert rss(pid) - before < 50 * MiB


def test_an_older_sandboxd_that_hands_out_no_next_nonce_still_serves(server, api_key, sandboxes, docker_client):
    """A sandbox started before next nonces (docs/sandboxd.md, protocol 4) keeps working: each
    command greets it again."""
    url, _ = server
    victim, _ = sandboxes
    start_fake_agent(url, api_key[1], docker_client, victim, "older")
    for _ in range(3):
        status, body = post_exec(url, api_key[1], victim, {"command": "echo hi"}, 60)
        assert status == 200 and body["stdout"] == "hi\n", body
    log = fakes.in_container(docker_client, victim, "cat /tmp/fake-log")
    assert log.count("GET /hello") == log.count("POST /exec") == 3


@pytest.mark.parametrize("mode", ["hello-flood", "hello-drip"])
def test_a_sandboxd_that_fails_the_identity_exchange_gets_nothing(server, api_key, sandboxes, docker_client, mode):
    """Nothing is sent to it: the server greets it again for a while (a sandboxd just started
    answers late), then answers a clean 502 sandboxd_unavailable; no command ran anywhere."""
    url, pid = server
    victim, bystander = sandboxes
    before = rss(pid)
    start_fake_agent(url, api_key[1], docker_client, victim, mode)
    status, body = post_exec(url, api_key[1], victim, {"command": "echo never", "timeout": 5}, 120)
    assert_clean_error(status, body, "sandboxd_unavailable")
    assert "POST" not in fakes.in_container(docker_client, victim, "cat /tmp/fake-log")
    assert bystander_works(url, api_key[1], bystander) == 3
    assert rss(pid) - before < 50 * MiB


@pytest.mark.parametrize("user", ["", "root"], ids=["sandbox-user", "root"])
def test_a_command_printing_gigabytes_is_capped(server, api_key, sandboxes, user):
    url, pid = server
    victim, bystander = sandboxes
    bystander_works(url, api_key[1], bystander)
    before = rss(pid)
    size = 2 * 1024 * MiB if not user else 1024 * MiB
    body = {"command": f"yes | head -c {size}", "timeout": 600, **({"user": user} if user else {})}
    status, answer = post_exec(url, api_key[1], victim, body, 660)
    assert status == 200, answer
    assert answer["truncated"] is True and answer["exitCode"] == 0
    assert len(answer["stdout"]) <= 10 * MiB
    assert rss(pid) - before < 50 * MiB
    assert bystander_works(url, api_key[1], bystander) == 3


def test_stdin_a_command_never_reads_is_held_back_not_buffered(server, api_key, sandboxes):
    """A key holder streams stdin into a command that never reads it: the server holds at most
    about STDIN_BUFFER of it (the stream stops reading its client), not all of it. Messages are
    not compressed: with permessage-deflate, 200 MiB of one repeated byte is 200 KiB on the wire,
    and one read of the socket was inflated and queued whole (+144 MiB)."""
    url, pid = server
    victim, bystander = sandboxes
    before = rss(pid)
    socket_url = url.replace("http://", "ws://") + f"/ws/sandboxes/{victim}/exec"
    chunk = json.dumps({"type": "stdin", "data": "x" * MiB})
    sent = [0]

    def flood(connection):
        with contextlib.suppress(Exception):  # ends when the test closes the connection
            for _ in range(200):
                connection.send(chunk)
                sent[0] += 1

    # The client offers compression (websockets does by default); the server declines it.
    with connect(socket_url, additional_headers={"Authorization": f"Bearer {api_key[1]}"}) as connection:
        assert connection.response.headers.get("Sec-WebSocket-Extensions") is None
        connection.send(json.dumps({"command": "sleep 60", "timeout": "90s"}))
        thread = threading.Thread(target=flood, args=(connection,), daemon=True)
        thread.start()
        thread.join(timeout=20)  # the server stops reading long before 200 MiB
        assert sent[0] < 100
        assert rss(pid) - before < 50 * MiB
        assert bystander_works(url, api_key[1], bystander) == 3


def test_execute_return_values_printed_by_the_sandbox_are_checked(api_client, create_sandbox):
    """`returnValue` is parsed from what the sandbox prints: deep or non-finite JSON is answered as
    the text it is, never a 500."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    deep = 'import os, sys\n_ = sys.stdout.write("\\n" + os.environ["VBX_MARKER"] + "[" * 100000 + "]" * 100000)'
    cases = {"float('nan')": "NaN", "1e308 * 10": "Infinity", deep: "[" * 100000 + "]" * 100000}
    for code, expected in cases.items():
        response = api_client.post(
            f"/api/v1/sandboxes/{sandbox_id}/execute", {"code": code, "language": "python"}, format="json"
        )
        assert response.status_code == 200, response.content[:300]
        assert response.json()["returnValue"] == expected
    nested = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/execute",
        {"code": "{'a': [1, 2.5, None]}", "language": "python"},
        format="json",
    )
    assert nested.json()["returnValue"] == {"a": [1, 2.5, None]}


def test_the_bounded_readers_hold_no_more_than_their_limits():
    """Docker frames claiming 4 GiB and lines without end are passed on as they arrive."""
    frames = bounded.Frames()
    header = bytes([2, 0, 0, 0]) + (0xFFFFFFFF).to_bytes(4, "big")
    assert frames.feed(header[:5]) == [] and frames.partial
    assert frames.feed(header[5:] + b"abc") == [("stderr", b"abc")]
    assert frames.feed(b"d" * 100) == [("stderr", b"d" * 100)]

    lines = bounded.Lines(10)
    assert lines.feed(b"short\n" + b"x" * 25) == [(b"short", False), (b"x" * 10, True), (b"x" * 10, True)]
    assert len(lines._buffer) == 5
    assert lines.feed(b"y\nz") == [(b"xxxxxy", False)] and lines.flush() == [(b"z", False)]

    for bad in ("NaN", "[1e999]", '{"a": Infinity}', "[" * 65 + "]" * 65):
        with pytest.raises(ValueError):
            bounded.loads(bad, max_bytes=1000)
    with pytest.raises(ValueError):
        bounded.loads("[1]" + " " * 1000, max_bytes=1000)
    assert bounded.loads('{"a": [1, 2.5, null]}', max_bytes=1000) == {"a": [1, 2.5, None]}
