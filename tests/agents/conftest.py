"""A throwaway VibeBox with its model gateway, for tests that drive Claude Code or the gateway from a
real sandbox: uvicorn + `manage.py rungateway` (bench/common.live_server), whose upstream is a local
stub of the Anthropic API (there is never a real key) and whose operator key is OPERATOR_KEY."""

import json
import sys
import urllib.error
from pathlib import Path

import pytest

from tests import anthropic_stub, sessions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from common import api, live_server

OPERATOR_KEY = "sk-ant-operator-" + "x" * 24
TEMPLATE = "node-22-claude-code"


def call(server, method, path, body=None):
    """(status, body) for any status: errors are answers too."""
    try:
        return api(server.url, server.key, method, path, body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def sh(server, sandbox, command) -> dict:
    status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/exec", {"command": command})
    assert status == 200, body
    return body


@pytest.fixture(scope="module")
def stub():
    found, server = anthropic_stub.start()
    yield found
    server.shutdown()


@pytest.fixture(scope="module")
def server(stub, request, docker_client):
    """One server per test module (its own instance label, starting with the module's name, short
    enough for a bridge name, and claimed like a test session's: tests/sessions.py)."""
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "")[:4]
    with (
        sessions.claimed(docker_client, sessions.new_label(prefix, 10)) as label,
        live_server(
            label,
            gateway=True,
            VIBEBOX_ANTHROPIC_UPSTREAM=stub.url,
            VIBEBOX_ANTHROPIC_API_KEY=OPERATOR_KEY,
            # Webhooks to a loopback address nobody serves, written and never sent (tests read them).
            VIBEBOX_WEBHOOK_ALLOW_HTTP="1",
            VIBEBOX_WEBHOOK_ALLOW_PRIVATE="1",
            VIBEBOX_WEBHOOK_DISPATCH="0",
        ) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def sandbox(server):
    """A Claude Code sandbox on that server, for the module."""
    status, body = call(server, "POST", "/api/v1/sandboxes", {"template": TEMPLATE})
    assert status == 201, body
    yield body["id"]
    call(server, "DELETE", f"/api/v1/sandboxes/{body['id']}")
