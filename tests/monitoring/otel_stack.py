"""The stack the traces' and logs' live tests run against: an OTLP/HTTP receiver (tests/monitoring/
otlp.py), a Redis of its own, a webhook receiver, a real Celery worker (the Procfile's, every queue,
no beat: tests/webhooks/conftest.celery_worker) and the live server (the Procfile's uvicorn:
tests/conftest.live_server), both exporting to the receiver and writing JSON log lines to files the
tests read."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import live_server
from tests.monitoring.otlp import OtlpReceiver
from tests.test_make_run import redis_server
from tests.webhooks.conftest import QUIET_PASSES, celery_worker, worker_env


class HookReceiver:
    """A webhook endpoint on loopback that records each request's headers and JSON body."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.requests.append(
                        {"headers": {k.lower(): v for k, v in self.headers.items()}, "json": json.loads(body)}
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def received(self) -> list[dict]:
        with self.lock:
            return list(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Stack:
    url: str
    otlp: OtlpReceiver
    hooks: HookReceiver
    server_log: Path
    worker_log: Path


def log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def new_traceparent() -> tuple[str, str, str]:
    """A caller's W3C traceparent (sampled): (header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


TRACING = {
    "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans leave soon after they end
    "VIBEBOX_LOG_FORMAT": "json",
    "VIBEBOX_WEBHOOK_DISPATCH": "true",  # a create's event queues its sender from the request
    "VIBEBOX_POOL_ENABLED": "true",  # creates ask a template's warm pool first (if it has one)
}


@pytest.fixture(scope="module")
def stack(django_db_setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("otel")
    otlp = OtlpReceiver().start()
    hooks = HookReceiver()
    server_log, worker_log = folder / "server.log", folder / "worker.log"
    tracing = {**TRACING, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint}
    try:
        with redis_server(folder) as redis_url, contextlib.ExitStack() as stack:
            env = worker_env(redis_url, **QUIET_PASSES, **tracing)
            stack.enter_context(celery_worker(env, worker_log))
            log = stack.enter_context(server_log.open("w"))
            url, _pid = stack.enter_context(live_server(output=log, REDIS_URL=redis_url, **tracing))
            yield Stack(url, otlp, hooks, server_log, worker_log)
    finally:
        hooks.stop()
        otlp.stop()
