"""A VibeBox webhook receiver with the standard library only (plus `vibebox_sdk` for the signature).

    WEBHOOK_SECRET=whsec_... python receiver.py          # PORT=8000 HOST=127.0.0.1 WEBHOOK_DB=webhooks.sqlite3

For every POST it:
1. checks the signature and the timestamp with `verify_webhook` (400 when they are wrong: a
   forgery, a body changed on the way, or a replay);
2. records the event in a SQLite table keyed by `webhook-id` (the event's id, the same on every
   retry): a delivery whose id is there already is a duplicate, answered 200 and not processed again;
3. answers 2xx at once, and processes the event afterwards on a worker thread (VibeBox waits 15 s
   at most for an answer, then retries). An event recorded but not processed (the process stopped)
   is processed when the receiver starts again.

Replace `process_event` with what your system does with an event.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vibebox_sdk import WebhookVerificationError, verify_webhook, webhook_secret_key

MAX_BODY = 1024 * 1024  # VibeBox's events are far smaller

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_events (
    webhook_id   TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    received_at  REAL NOT NULL,
    deliveries   INTEGER NOT NULL DEFAULT 1,
    processed_at REAL
)
"""


class Store:
    """The dedupe table: one row per webhook-id, whatever how many times it was delivered."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)
        self.lock = threading.Lock()

    def record(self, webhook_id: str, event: dict, payload: str) -> bool:
        """Stores a delivery; True when its id is new (process it), False for a duplicate."""
        with self.lock:
            inserted = self.db.execute(
                "INSERT OR IGNORE INTO webhook_events (webhook_id, type, payload, received_at) VALUES (?, ?, ?, ?)",
                (webhook_id, str(event.get("type")), payload, time.time()),
            ).rowcount
            if not inserted:
                self.db.execute(
                    "UPDATE webhook_events SET deliveries = deliveries + 1 WHERE webhook_id = ?", (webhook_id,)
                )
            return bool(inserted)

    def processed(self, webhook_id: str) -> None:
        with self.lock:
            self.db.execute(
                "UPDATE webhook_events SET processed_at = ? WHERE webhook_id = ?", (time.time(), webhook_id)
            )

    def unprocessed(self) -> list[tuple[str, dict]]:
        with self.lock:
            rows = self.db.execute(
                "SELECT webhook_id, payload FROM webhook_events WHERE processed_at IS NULL ORDER BY received_at"
            ).fetchall()
        return [(webhook_id, json.loads(payload)) for webhook_id, payload in rows]


def process_event(webhook_id: str, event: dict) -> None:
    """Your work goes here (it runs after the answer was sent). This one prints the event."""
    data = event.get("data") or {}
    print(f"processed {webhook_id} {event.get('type')} {data.get('id', '')}".rstrip(), flush=True)


def worker(store: Store, work: queue.Queue) -> None:
    while True:
        webhook_id, event = work.get()
        try:
            process_event(webhook_id, event)
        except Exception as error:  # keep the row unprocessed: it is tried again at the next start
            print(f"failed {webhook_id}: {error!r}", file=sys.stderr, flush=True)
            continue
        store.processed(webhook_id)


def make_handler(secret: str, store: Store, work: queue.Queue) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self.answer(411, {"error": "length_required"})
            if int(length) > MAX_BODY:
                left = int(length)  # read it all, unkept: answering before reading may reset the connection
                while left > 0 and (chunk := self.rfile.read(min(left, 65536))):
                    left -= len(chunk)
                return self.answer(413, {"error": "too_large"})
            body = self.rfile.read(int(length))
            try:
                event = verify_webhook(body, self.headers, secret)  # raw bytes, as received
            except WebhookVerificationError as error:
                return self.answer(400, {"error": error.code})
            webhook_id = self.headers["webhook-id"]
            if not store.record(webhook_id, event, body.decode()):
                return self.answer(200, {"duplicate": True})
            work.put((webhook_id, event))  # processed after the answer
            return self.answer(202, {"accepted": True})

        def answer(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # one line per request on stderr
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    return Handler


def main() -> None:
    secret = os.environ.get("WEBHOOK_SECRET")
    if not secret:
        sys.exit("set WEBHOOK_SECRET to the endpoint's secret (whsec_...)")
    webhook_secret_key(secret)  # a value that is not a secret stops here, not at the first delivery
    store = Store(os.environ.get("WEBHOOK_DB", "webhooks.sqlite3"))
    work: queue.Queue = queue.Queue()
    for pending in store.unprocessed():  # recorded before a stop, never processed
        work.put(pending)
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer((host, port), make_handler(secret, store, work))
    print(f"listening on http://{host}:{server.server_address[1]}", flush=True)
    threading.Thread(target=worker, args=(store, work), daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
