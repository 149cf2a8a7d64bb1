"""A real webhook receiver on loopback (stdlib http.server in a thread) that checks every
signature with the standardwebhooks reference library, independently of the server's code; and a
real Celery worker (the Procfile's) for the tests that need one."""

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from tests.database import child_database_url


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


ROOT = Path(__file__).resolve().parent.parent.parent
# Beat's other passes, held off in a worker started for webhooks (they would only add noise).
QUIET_PASSES = {
    "VIBEBOX_RECONCILE_INTERVAL": "1h",
    "VIBEBOX_POOL_INTERVAL": "1h",
    "VIBEBOX_USAGE_FLUSH_INTERVAL": "1h",
    "VIBEBOX_AUDIT_PRUNE_INTERVAL": "1h",
    "VIBEBOX_WEBHOOK_PRUNE_INTERVAL": "1h",
}


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker on the test database and `redis_url` (a Redis of the test's own:
    another session's worker must not take its tasks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=child_database_url(),
        REDIS_URL=redis_url,
        VIBEBOX_PORT="1",  # names the worker (Procfile); nothing listens
        **extra,
    )
    return env


def worker_queues() -> list[str]:
    """Every queue a task may be sent to: the default one, `webhooks`, and any the routes name."""
    routes = getattr(django_settings, "CELERY_TASK_ROUTES", None) or {}
    routed = {route["queue"] for route in routes.values() if isinstance(route, dict) and "queue" in route}
    default = getattr(django_settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"
    return sorted({default, "celery", "webhooks", *routed})


def procfile(name: str) -> str:
    """The command of the Procfile's process `name`."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:"))
    return line.split(":", 1)[1]


def worker_command(*, beat_schedule: Path | None = None, line: str = "") -> str:
    """The Procfile's `worker` line, consuming every queue (worker_queues) whatever queues the line
    names, so one worker runs the webhooks' tasks as well as the rest; or with `line`, that
    Procfile line as it is (`webhooks`: the `webhooks` queue alone, a thread pool). With
    `beat_schedule`, beat embedded (retries and the passes that find due deliveries)."""
    if line:
        command = procfile(line)
    else:
        command = re.sub(r"\s(?:-Q|--queues)(?:=|\s+)\S+", "", procfile("worker"))
        command += f" --queues={','.join(worker_queues())}"
    if beat_schedule is not None:
        command += f" --beat --schedule={beat_schedule}"
    return command


def kill_worker(process: subprocess.Popen) -> None:
    """SIGKILL to the worker's own process group (its pool children with it, also when the master
    is gone already)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@contextlib.contextmanager
def celery_worker(
    env: dict, log: Path, *, beat_schedule: Path | None = None, line: str = ""
) -> Iterator[subprocess.Popen]:
    """A real Celery worker (worker_command) in a process group of its own, its output in `log`;
    stopped when the block ends (SIGTERM, up to 30 s for a warm shutdown, then SIGKILL to the group)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["bash", "-c", worker_command(beat_schedule=beat_schedule, line=line)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
        kill_worker(process)
