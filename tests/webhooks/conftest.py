"""A real webhook receiver on loopback (stdlib http.server in a thread) that checks every
signature with the standardwebhooks reference library, independently of the server's code."""

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError


class Receiver:
    """Records what it is sent; answers with the next of `answers` (a status code, or
    ("sleep", seconds, status)), then `default`. `secrets` are the secrets it verifies with: a
    request is `verified` by each that matches. `seen` dedupes by webhook-id, as receivers should."""

    def __init__(self):
        self.requests: list[dict] = []
        self.answers: list = []
        self.default = 200
        self.secrets: list[str] = []
        self.seen: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.server = None
        self.url = ""

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length", "0"))
        body = handler.rfile.read(length)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        verified = []
        for secret in self.secrets:
            try:
                Verifier(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        with self.lock:
            answer = self.answers.pop(0) if self.answers else self.default
            record = {
                "path": handler.path,
                "headers": headers,
                "body": body,
                "json": json.loads(body),
                "verified": verified,
            }
            self.requests.append(record)
            self.seen.setdefault(headers.get("webhook-id", ""), record)
        if isinstance(answer, tuple) and answer[0] == "sleep":
            time.sleep(answer[1])
            answer = answer[2]
        with contextlib.suppress(OSError):  # the sender may have given up meanwhile
            payload = b'{"ok": true}'
            handler.send_response(answer)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            state.handle(self)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.server = server
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    """Tests talk only to loopback over http; senders run when a test calls them (no Celery)."""
    settings.VIBEBOX_WEBHOOK_ALLOW_HTTP = True
    settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE = True
    settings.VIBEBOX_WEBHOOK_DISPATCH = False
    settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [0.0, 0.0, 0.0]
    settings.VIBEBOX_WEBHOOK_TIMEOUT = 15.0
    return settings


@pytest.fixture
def hook(api_client, receiver):
    """Creates a webhook to the receiver through the API; answers its JSON (with `secret`)."""

    def make(events=("*",), client=None, **body):
        response = (client or api_client).post(
            "/api/v1/webhooks", {"url": receiver.url, "events": list(events), **body}, format="json"
        )
        assert response.status_code == 201, response.content
        created = response.json()
        receiver.secrets.append(created["secret"])
        return created

    return make
