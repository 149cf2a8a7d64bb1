"""End-to-end fixtures for the SDK and CLI: a real VibeBox server on loopback, the real Docker engine.

The server is the one the benchmarks use (bench/common.py): uvicorn with the Procfile's flags, its
own data directory and SQLite database, and its own instance label, so these tests never touch the
Django test suite's containers and a sweep at the end proves nothing leaked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest
from vibebox_sdk import Sandbox, VibeBox

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bench"))

from common import LiveServer, live_server  # noqa: E402

sys.path.insert(0, str(ROOT))
from tests import anthropic_stub, sessions  # noqa: E402  (a local Anthropic API: there is never a real key)
from tests.webhooks.conftest import Receiver  # noqa: E402  (verifies with the reference library)

# Claimed like a Django test session's label (tests/sessions.py): a killed SDK run's containers
# are swept by the next session that finds their owner dead.
INSTANCE = sessions.new_label("sdk", 10)


def _leftovers(client: docker.DockerClient) -> list:
    """This session's containers still in the engine."""
    return client.containers.list(all=True, filters={"label": [f"vibebox.instance={INSTANCE}"]})


OPERATOR_KEY = "sk-ant-operator-" + "s" * 24
# Webhooks go to receivers on loopback over http, and are sent when a test runs the sender
# (`deliver()` below): no Celery worker serves this server, and a queued task would reach whichever
# worker listens on the shared broker.
WEBHOOKS = {
    "VIBEBOX_WEBHOOK_ALLOW_HTTP": "1",
    "VIBEBOX_WEBHOOK_ALLOW_PRIVATE": "1",
    "VIBEBOX_WEBHOOK_DISPATCH": "0",
    "VIBEBOX_WEBHOOK_RETRY_SCHEDULE": "0s,0s",
}


@pytest.fixture(scope="session")
def anthropic() -> Iterator[anthropic_stub.Stub]:
    """The Anthropic API stub the server's model gateway forwards to (scripted per test)."""
    stub, http = anthropic_stub.start()
    yield stub
    http.shutdown()


@pytest.fixture(scope="session")
def server(anthropic: anthropic_stub.Stub) -> Iterator[LiveServer]:
    """One server for the whole session; yields url, key (all scopes, user = the instance name), env.
    Its model gateway runs too, forwarding to the `anthropic` stub."""
    engine = docker.from_env()
    sessions.sweep_dead(engine)
    gateway = {"VIBEBOX_ANTHROPIC_UPSTREAM": anthropic.url, "VIBEBOX_ANTHROPIC_API_KEY": OPERATOR_KEY}
    with (
        sessions.claimed(engine, INSTANCE),
        live_server(INSTANCE, gateway=True, VIBEBOX_POOL_ENABLED="1", **gateway, **WEBHOOKS) as running,  # warm
    ):
        yield running
        running.manage("warmpools", "--drain")  # pooled containers are the server's, not leaks
        leftovers = [c.name for c in _leftovers(engine)]
    # live_server has removed this instance's containers, volumes and network by now.
    engine.close()
    assert not leftovers, f"SDK tests left containers behind: {leftovers}"


@pytest.fixture(scope="session")
def vb(server: LiveServer) -> Iterator[VibeBox]:
    with VibeBox(api_key=server.key, base_url=server.url) as client:
        yield client


@pytest.fixture(scope="session")
def outsider_key(server: LiveServer) -> str:
    """A key of another user: every sandbox above is a 404 to it."""
    return server.create_key("outsider")


@pytest.fixture
def sandbox(vb: VibeBox) -> Iterator[Sandbox]:
    """A running python-3 sandbox, destroyed afterwards."""
    box = vb.sandbox("python-3")
    yield box
    box.destroy()


@pytest.fixture
def node_sandbox(vb: VibeBox) -> Iterator[Sandbox]:
    box = vb.sandbox("node-20")
    yield box
    box.destroy()


@pytest.fixture
def cli_env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    """Environment for running the `vibebox` command against the test server, with a private config dir."""
    return {
        **os.environ,
        "VIBEBOX_API_URL": server.url,
        "VIBEBOX_API_KEY": server.key,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }


VIBEBOX = str(Path(sys.executable).with_name("vibebox"))


def cli(
    env: dict[str, str], *args: str, input: str | None = None, timeout: float = 180, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Runs `vibebox args...` (the installed command); stdin is `input`, else /dev/null (never a terminal)."""
    stdin = None if input is not None else subprocess.DEVNULL
    return subprocess.run(
        [VIBEBOX, *args], env=env, input=input, stdin=stdin, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def deliver(server: LiveServer, webhook_id: str) -> int:
    """Runs the webhook's sender once against the server's database (as beat's pass would queue
    it): answers how many attempts it made."""
    code = f"from apps.webhooks.delivery import deliver_webhook; print(deliver_webhook({webhook_id!r}))"
    return int(server.manage("shell", "-c", code).strip().splitlines()[-1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on loopback that verifies signatures with the reference library."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            state.handle(self)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()
