"""Retries and error mapping against a small scripted HTTP server on loopback (no mock of httpx)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from vibebox_sdk import (
    AuthenticationError,
    ConnectionError,
    RateLimitError,
    SandboxNotFoundError,
    ServerError,
    ServiceUnavailableError,
    TemplateBuildingError,
    TemplateUnavailableError,
    TimeoutError,
    ValidationError,
    VibeBox,
    VibeBoxError,
)
from vibebox_sdk.aio import AsyncVibeBox

SANDBOX = {"id": "sbx_1", "name": "one", "template": "python-3", "status": "running"}


class Script:
    """Answers requests from a list of (status, body, headers); `None` as status drops the connection."""

    def __init__(self, answers: list[tuple[int | None, dict, dict]]) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, dict]] = []
        self.bodies: list[bytes] = []


@pytest.fixture
def scripted() -> Iterator[tuple[Script, str]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            script.bodies.append(self.rfile.read(length) if length else b"")
            script.requests.append((self.command, self.path, dict(self.headers)))
            status, body, headers = script.answers.pop(0) if script.answers else (500, {}, {})
            if status is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            headers = dict(headers)
            time.sleep(float(headers.pop("_delay", 0)))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PATCH = _answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield script, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def envelope(code: str, message: str = "no") -> dict:
    return {"error": {"code": code, "message": message, "details": {}}, "requestId": "req_test"}


def test_503_then_200_is_retried(scripted):
    script, url = scripted
    script.answers = [
        (503, envelope("runtime_unavailable"), {}),
        (502, envelope("runtime_error"), {}),
        (200, SANDBOX, {}),
    ]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        sandbox = vb.get("one")
    assert sandbox.id == "sbx_1"
    assert len(script.requests) == 3
    assert script.requests[0][2]["Authorization"] == "Bearer vb_test_x"


def test_429_waits_for_retry_after(scripted):
    script, url = scripted
    script.answers = [(429, envelope("rate_limited"), {"Retry-After": "1"}), (200, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        started = time.monotonic()
        vb.get("one")
        waited = time.monotonic() - started
    assert len(script.requests) == 2
    assert waited >= 0.9


def test_retries_run_out(scripted):
    script, url = scripted
    script.answers = [(503, envelope("runtime_unavailable"), {})] * 3
    with (
        VibeBox(api_key="vb_test_x", base_url=url, max_retries=2) as vb,
        pytest.raises(ServiceUnavailableError) as info,
    ):
        vb.get("one")
    assert len(script.requests) == 3
    assert info.value.request_id == "req_test"
    assert info.value.status == 503


def test_a_long_retry_after_is_not_waited_for(scripted):
    script, url = scripted
    script.answers = [(429, envelope("rate_limited"), {"Retry-After": "3600"})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb, pytest.raises(RateLimitError) as info:
        vb.get("one")
    assert info.value.retry_after == 3600
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "validation_error", ValidationError),
        (401, "invalid_api_key", AuthenticationError),
        (404, "sandbox_not_found", SandboxNotFoundError),
        (500, "internal_error", ServerError),
    ],
)
def test_other_errors_are_not_retried(scripted, status, code, error):
    script, url = scripted
    script.answers = [(status, envelope(code, "refused"), {})] * 4
    with VibeBox(api_key="vb_test_x", base_url=url) as vb, pytest.raises(error) as info:
        vb.get("one")
    assert len(script.requests) == 1
    assert info.value.code == code
    assert info.value.message == "refused"


def test_a_dropped_get_is_retried_a_dropped_post_is_not(scripted):
    script, url = scripted
    script.answers = [(None, {}, {}), (200, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        assert vb.get("one").name == "one"
        assert len(script.requests) == 2
        script.answers = [(None, {}, {}), (200, SANDBOX, {})]
        with pytest.raises(ConnectionError):
            vb.sandbox("python-3")
    assert len(script.requests) == 3


def test_connection_refused_after_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        VibeBox(api_key="vb_test_x", base_url=f"http://127.0.0.1:{port}", max_retries=1) as vb,
        pytest.raises(ConnectionError) as info,
    ):
        vb.get("one")
    assert info.value.code == "connection_error"


def test_no_key_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv("VIBEBOX_API_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(AuthenticationError):
        VibeBox(base_url="http://127.0.0.1:1")


def test_per_call_options(scripted):
    script, url = scripted
    script.answers = [(503, envelope("runtime_unavailable"), {}), (200, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        with pytest.raises(ServiceUnavailableError):
            vb.with_options(max_retries=0).get("one")
        assert len(script.requests) == 1
        sandbox = vb.get("one")  # the client itself still retries
        assert len(script.requests) == 2
        script.answers = [(200, SANDBOX, {"_delay": "2"})]
        with pytest.raises(TimeoutError) as info:
            sandbox.with_options(timeout=0.5, max_retries=0).refresh()
        assert isinstance(info.value, VibeBoxError)


def test_a_502_is_not_retried_for_a_post(scripted):
    """The engine failed after the command may have started: sending it again could run it twice."""
    script, url = scripted
    script.answers = [(502, envelope("runtime_error"), {}), (200, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb, pytest.raises(ServerError):
        vb.sandbox("python-3")
    assert len(script.requests) == 1


def test_a_post_is_sent_again_only_after_a_503_that_started_nothing(scripted):
    script, url = scripted
    script.answers = [(503, envelope("runtime_unavailable"), {}), (201, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        assert vb.sandbox("python-3").id == "sbx_1"
    assert len(script.requests) == 2
    script.answers = [(503, envelope("maintenance"), {}), (201, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb, pytest.raises(ServiceUnavailableError):
        vb.sandbox("python-3")
    assert len(script.requests) == 3
    # the server's Redis was down: the write was refused before anything happened
    script.answers = [(503, envelope("rate_limiter_unavailable"), {}), (201, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        assert vb.sandbox("python-3").id == "sbx_1"
    assert len(script.requests) == 5


@pytest.mark.parametrize("name", [".", "..", ""])
def test_dot_ids_and_names_never_reach_another_endpoint(scripted, name):
    """`quote` leaves `.` and `..` as they are and httpx collapses them: `env.get("..")` would be a GET of
    the sandbox itself (and through the MCP tools, of whatever a model asks for). Refused before sending."""
    script, url = scripted
    script.answers = [(200, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        sandbox = vb.get("one")
        for call in (lambda: sandbox.env.get(name), lambda: sandbox.env.delete(name), lambda: vb.get(name)):
            with pytest.raises(ValidationError) as raised:
                call()
            assert raised.value.code == "invalid_path"
    assert len(script.requests) == 1  # only the first get


BUILDING = {
    "error": {
        "code": "template_building",
        "message": "Template 'go-1.24' is still being built (building); retry in 30s or send \"wait\": true.",
        "details": {"template": "go-1.24", "buildState": "building", "progress": {"step": 3, "steps": 9}},
    },
    "requestId": "req_test",
}


def test_a_template_still_building_is_not_retried_and_says_when_to_retry(scripted):
    """A create of a template whose image is being built: TemplateBuildingError with the server's
    Retry-After (the caller decides: retry later, or create with wait=True)."""
    script, url = scripted
    script.answers = [(503, BUILDING, {"Retry-After": "30"}), (201, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb, pytest.raises(TemplateBuildingError) as info:
        vb.create("go-1.24", name="gopher")
    assert len(script.requests) == 1
    assert isinstance(info.value, ServiceUnavailableError)
    assert info.value.retry_after == 30
    assert info.value.details["buildState"] == "building"
    assert info.value.details["progress"] == {"step": 3, "steps": 9}
    assert json.loads(script.bodies[0]) == {"template": "go-1.24", "name": "gopher"}


def test_wait_is_sent_and_a_failed_template_is_unavailable(scripted):
    script, url = scripted
    script.answers = [(201, SANDBOX, {})]
    with VibeBox(api_key="vb_test_x", base_url=url) as vb:
        assert vb.create("go-1.24", wait=True).id == "sbx_1"
    assert json.loads(script.bodies[-1]) == {"template": "go-1.24", "wait": True}
    failed = envelope("template_unavailable", "Building template 'go-1.24' failed: no space left")
    script.answers = [(503, failed, {})]
    with (
        VibeBox(api_key="vb_test_x", base_url=url, max_retries=0) as vb,
        pytest.raises(TemplateUnavailableError) as info,
    ):
        vb.create("go-1.24", wait=True)
    assert info.value.status == 503
    assert "no space left" in info.value.message


def test_async_create_maps_template_building_and_sends_wait(scripted):
    script, url = scripted
    script.answers = [(503, BUILDING, {"Retry-After": "30"}), (201, SANDBOX, {})]

    async def main() -> None:
        async with AsyncVibeBox(api_key="vb_test_x", base_url=url) as vb:
            with pytest.raises(TemplateBuildingError) as info:
                await vb.create("go-1.24")
            assert info.value.retry_after == 30
            assert (await vb.create("go-1.24", wait=True)).id == "sbx_1"

    asyncio.run(main())
    assert json.loads(script.bodies[-1]) == {"template": "go-1.24", "wait": True}
