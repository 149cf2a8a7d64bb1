"""The model gateway when it must not, or cannot, forward (issue 18, missing negative tests).

- A token is good only while its sandbox runs: the token of a stopped, paused or errored sandbox
  is 401 `sandbox_not_running` (it works again once the sandbox runs); of a destroyed one, 401
  `invalid_gateway_token`, like an unknown token.
- No upstream key (no operator key, none given at enable) is 503 `upstream_key_missing`; an
  upstream that cannot be reached (its server stopped: a closed port on loopback) is 502
  `upstream_unreachable`. Nothing reaches the upstream and nothing is metered for any of these.

The real gateway process (`manage.py rungateway`, uvicorn) on loopback, reading the test database
(rows are enough: the gateway asks nothing of the engine), in front of a recording stub of the
Anthropic API, in-process or in a process of its own that the test kills. The last test drives a
real sandbox's lifecycle through a live VibeBox (tests/agents/conftest.py).
"""

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from apps.agents.models import ClaudeSetup, ModelUsage
from apps.agents.setup import TOKEN_PREFIX, token_hash
from apps.sandboxes.models import Sandbox
from bench.common import listens
from tests import anthropic_stub
from tests.agents.conftest import OPERATOR_KEY, TEMPLATE, call, sh
from tests.conftest import free_port, sandbox_row
from tests.database import child_database_url
from vibebox import crypto

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def post(base: str, token: str | None, path: str = "/v1/messages", body: dict | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a call to the gateway, whatever the status."""
    data = json.dumps(MESSAGE if body is None else body).encode()
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
    if token is not None:
        headers["x-api-key"] = token
    request = urllib.request.Request(base + path, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@contextlib.contextmanager
def gateway(*, upstream: str, operator_key: str):
    """`manage.py rungateway` on a free loopback port, on the test database; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": child_database_url(),
        "VIBEBOX_ANTHROPIC_UPSTREAM": upstream,
        "VIBEBOX_ANTHROPIC_API_KEY": operator_key,
    }
    command = [sys.executable, str(ROOT / "manage.py"), "rungateway", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # Django's start alone has taken over 10 s on a busy machine
        while True:
            try:
                if not listens(process.pid, port):  # not yet, or another test's server took the port
                    raise ConnectionRefusedError(f"the gateway does not listen on {port}")
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def local_stub():
    """A recording stub in this process (tests/agents/conftest.py's `stub` serves the live VibeBox)."""
    found, server = anthropic_stub.start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def stub_process():
    """The stub in a process of its own, so that stopping it closes its port and every connection
    to it for real: (url, process)."""
    code = "import time; from tests import anthropic_stub as s; print(s.start()[0].url, flush=True); time.sleep(3600)"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()


@pytest.fixture
def make_token(owner, templates):
    """A sandbox row in `status` with Claude enabled; its gateway token."""

    def make(status: str = "running", own_key: str = "") -> tuple[Sandbox, str]:
        sandbox = sandbox_row(owner, templates[TEMPLATE], name=f"gw-{status}-{secrets.token_hex(4)}", status=status)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        ClaudeSetup.objects.create(
            sandbox=sandbox,
            version="test",
            home="/home/agent",
            token_hash=token_hash(token),
            upstream_key=crypto.encrypt(own_key) if own_key else "",
        )
        return sandbox, token

    return make


def error_of(body: dict) -> tuple[str, str]:
    assert body["type"] == "error" and body["error"]["message"], body
    return body["error"]["type"], body["error"].get("code", "")


@pytest.mark.django_db(transaction=True)
def test_only_a_running_sandboxs_token_is_forwarded(local_stub, make_token):
    stub = local_stub
    _, running = make_token("running")
    refused = {
        status: make_token(status)[1] for status in ("stopped", "paused", "error", "creating", "starting", "stopping")
    }
    gone = {status: make_token(status)[1] for status in ("destroying", "destroyed")}
    with gateway(upstream=stub.url, operator_key=OPERATOR_KEY) as base:
        assert post(base, running)[0] == 200
        for status, token in refused.items():
            answer, body = post(base, token)
            assert (answer, error_of(body)) == (401, ("authentication_error", "sandbox_not_running")), status
            assert status in body["error"]["message"]
            # The MCP server behind the same token refuses alike.
            assert post(base, token, "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"})[0] == 401, status
        for token in [*gone.values(), TOKEN_PREFIX + "unknown", "sk-ant-not-a-gateway-token", ""]:
            answer, body = post(base, token)
            assert (answer, error_of(body)) == (401, ("authentication_error", "invalid_gateway_token")), token
        answer, body = post(base, None)
        assert (answer, error_of(body)) == (401, ("authentication_error", "invalid_gateway_token"))
    # Only the running sandbox's call reached the upstream, and only it was metered.
    assert len(stub.requests) == 1
    assert list(ModelUsage.objects.values_list("status", flat=True)) == [200]


@pytest.mark.django_db(transaction=True)
def test_a_model_request_past_the_model_spend_is_refused(local_stub, make_token):
    """A request on the operator's key asks the organization's model spend first (as a Claude ask
    does): past it, 402 billing_error and nothing reaches the model; with its own key, it goes."""
    from decimal import Decimal

    from apps.billing.models import OrgBilling

    sandbox, token = make_token("running")
    _, own_token = make_token("running", own_key="sk-ant-own-" + "z" * 24)
    with gateway(upstream=local_stub.url, operator_key=OPERATOR_KEY) as base:
        assert post(base, token)[0] == 200
        OrgBilling.objects.update_or_create(org=sandbox.org, defaults={"model_spend_per_month": Decimal("0")})
        answer, body = post(base, token)
        assert (answer, error_of(body)) == (402, ("billing_error", "quota_exceeded")), body
        assert "model_spend_per_month" in body["error"]["message"]
        assert post(base, own_token)[0] == 200  # paid with the caller's own key: not the organization's spend
    assert len(local_stub.requests) == 2 and ModelUsage.objects.filter(sandbox=sandbox).count() == 1


@pytest.mark.django_db(transaction=True)
def test_no_upstream_key_is_503_and_nothing_is_metered(local_stub, make_token):
    stub = local_stub
    without, token = make_token("running")
    with_own, own_token = make_token("running", own_key="sk-ant-own-" + "y" * 24)
    with gateway(upstream=stub.url, operator_key="") as base:
        for path, body in (("/v1/messages", None), ("/v1/messages/count_tokens", None)):
            answer, payload = post(base, token, path, body)
            assert (answer, error_of(payload)) == (503, ("api_error", "upstream_key_missing")), path
        assert stub.requests == [] and not ModelUsage.objects.exists()
        # A sandbox enabled with the caller's own key still works, with that key.
        assert post(base, own_token)[0] == 200
    assert [r["headers"]["x-api-key"] for r in stub.requests] == ["sk-ant-own-" + "y" * 24]
    assert list(ModelUsage.objects.values_list("sandbox_id", flat=True)) == [with_own.id]
    assert without.model_usage.count() == 0


@pytest.mark.django_db(transaction=True)
def test_upstream_down_is_502_and_nothing_is_metered(stub_process, make_token):
    url, upstream = stub_process
    sandbox, token = make_token("running")
    with gateway(upstream=url, operator_key=OPERATOR_KEY) as base:
        assert post(base, token)[0] == 200  # the gateway now holds a kept-alive connection to it
        deadline = time.monotonic() + 30  # recorded just after the answer went out
        while not ModelUsage.objects.exists():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        upstream.send_signal(signal.SIGKILL)  # the upstream's server stops: its port is closed
        upstream.wait(timeout=30)
        for path in ("/v1/messages", "/v1/messages/count_tokens"):
            answer, body = post(base, token, path)
            assert (answer, error_of(body)) == (502, ("api_error", "upstream_unreachable")), path
        port = urlsplit(url).port
        with pytest.raises(ConnectionRefusedError):  # it is down for real, not slow
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        # The gateway itself stays up and keeps refusing what it refuses.
        assert error_of(post(base, "vbgw_unknown")[1])[1] == "invalid_gateway_token"
    # The failed calls reached no model: nothing metered for them (the gateway has exited, so
    # whatever it would have recorded is written).
    assert ModelUsage.objects.count() == 1 and sandbox.model_usage.get().status == 200


# ---- a real sandbox's lifecycle, through a live VibeBox and its gateway ----


def wait_for(base: str, token: str, trigger: str, expect: int, code: str = "", timeout: float = 60) -> int:
    """Calls until the gateway answers `expect` (a valid token is cached for up to 5 s); the
    number of calls it forwarded meanwhile (answered 200)."""
    body = {**MESSAGE, "messages": [{"role": "user", "content": trigger}]}
    forwarded = 0
    deadline = time.monotonic() + timeout
    while True:
        status, payload = post(base, token, body=body)
        forwarded += status == 200
        if status == expect and (not code or payload["error"].get("code") == code):
            return forwarded
        assert time.monotonic() < deadline, (expect, code, status, payload)
        time.sleep(0.5)


def test_tokens_of_stopped_paused_and_destroyed_sandboxes_are_refused(server, stub):
    status, created = call(server, "POST", "/api/v1/sandboxes", {"template": TEMPLATE})
    assert status == 201, created
    sandbox = created["id"]
    try:
        status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/claude/enable", {})
        assert status == 201, body
        token, base = sh(server, sandbox, "printenv ANTHROPIC_API_KEY ANTHROPIC_BASE_URL")["stdout"].split()
        trigger = f"lifecycle-{sandbox}"
        forwarded = wait_for(base, token, trigger, 200)
        for action, expect, code in [
            ("stop", 401, "sandbox_not_running"),
            ("start", 200, ""),
            ("pause", 401, "sandbox_not_running"),
            ("resume", 200, ""),
        ]:
            status, body = call(server, "POST", f"/api/v1/sandboxes/{sandbox}/{action}")
            assert status == 200, (action, body)
            forwarded += wait_for(base, token, trigger, expect, code)
        # Every call that reached the upstream was answered 200 and is metered; no refused one.
        assert len(stub.conversation_requests(trigger)) == forwarded
        deadline = time.monotonic() + 30  # the gateway records a call just after answering it
        while call(server, "GET", f"/api/v1/sandboxes/{sandbox}/claude/status")[1]["usage"]["requests"] != forwarded:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        status, body = call(server, "DELETE", f"/api/v1/sandboxes/{sandbox}")
        assert status in (200, 202, 204), body
        forwarded += wait_for(base, token, trigger, 401, "invalid_gateway_token")
    finally:
        call(server, "DELETE", f"/api/v1/sandboxes/{sandbox}")
    assert len(stub.conversation_requests(trigger)) == forwarded
