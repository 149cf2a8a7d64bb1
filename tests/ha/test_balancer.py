"""HAProxy with deploy/haproxy/haproxy.cfg in front of three web processes: every request lands on a
random one, WebSockets upgrade through it, and a process that goes away is taken out."""

import collections
import json
import urllib.request

import pytest
from websockets.sync.client import connect

from tests.ha.stack import ha_stack, haproxy_binary

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not haproxy_binary(), reason="haproxy is not installed (make proxies)"),
]


def backend_of(url: str, secret: str) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {secret}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        json.load(answer)
        return answer.headers["X-VibeBox-Backend"]


def test_requests_spread_over_every_web_process(api_key, templates, capsys):
    with ha_stack() as stack:
        served = collections.Counter(backend_of(f"{stack.url}/api/v1/sandboxes", api_key[1]) for _ in range(90))
        with capsys.disabled():  # the numbers show in make test-ha's output
            print(f"\nHA spread: 90 API calls through HAProxy -> {dict(sorted(served.items()))}")
        assert set(served) == {"web1", "web2", "web3"}
        # HAProxy's own count agrees (its `stot`: sessions per server, health checks aside).
        assert sum(int(row["stot"]) for row in stack.stats().values()) >= 90


def test_a_websocket_upgrades_through_haproxy(api_key, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    with ha_stack() as stack:
        url = stack.url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox_id}/exec"
        with connect(url, additional_headers={"Authorization": f"Bearer {api_key[1]}"}) as socket:
            socket.send(json.dumps({"command": "echo through-haproxy"}))
            frames = []
            while not any(frame.get("type") == "exit" for frame in frames):
                frames.append(json.loads(socket.recv(timeout=60)))
        output = "".join(frame.get("data", "") for frame in frames if frame.get("type") == "stdout")
        assert "through-haproxy" in output, frames
