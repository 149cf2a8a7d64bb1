"""examples/webhooks: each receiver (Python's http.server, Node's node:http) run as a process on a
loopback port, sent deliveries signed as the server signs them, by the Standard Webhooks reference
library (`standardwebhooks`), not by our SDK.

What the server's side (apps/webhooks) will add: the same receivers fed by a live server's
deliveries (retries, a killed worker). Here the deliveries are made by the test.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import standardwebhooks
from conftest import ROOT

EXAMPLES = ROOT / "examples" / "webhooks"
TS_SDK = ROOT / "sdk" / "typescript"
NODE = shutil.which("node") or "node"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()  # as the server makes them


@dataclass
class Receiver:
    kind: str
    process: subprocess.Popen
    url: str
    store: Path
    output: list[str] = field(default_factory=list)  # stdout lines: "listening on ...", "processed <id> ..."
    errors: list[str] = field(default_factory=list)  # stderr

    def stored(self) -> dict[str, dict]:
        """The dedupe store: webhook-id -> {"type", "deliveries", "processed"}."""
        if self.kind == "python":
            if not self.store.exists():
                return {}
            with contextlib.closing(sqlite3.connect(self.store)) as db:
                rows = db.execute("SELECT webhook_id, type, deliveries, processed_at FROM webhook_events").fetchall()
            return {row[0]: {"type": row[1], "deliveries": row[2], "processed": row[3] is not None} for row in rows}
        if not self.store.exists():
            return {}
        events = json.loads(self.store.read_text())["events"]
        return {
            webhook_id: {"type": e["type"], "deliveries": e["deliveries"], "processed": e["processedAt"] is not None}
            for webhook_id, e in events.items()
        }

    def processed_lines(self, webhook_id: str) -> list[str]:
        return [line for line in list(self.output) if line.startswith(f"processed {webhook_id} ")]

    def wait_processed(self, webhook_id: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.stored().get(webhook_id)
            if entry and entry["processed"] and self.processed_lines(webhook_id):
                return entry
            time.sleep(0.05)
        raise AssertionError(f"{webhook_id} not processed: {self.stored()} {self.output}")


@pytest.fixture(scope="module")
def node_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where `@vibebox/sdk` is installed as npm would: the SDK compiled from this checkout
    into node_modules/@vibebox/sdk/dist, its package.json, and its dependency `ws`."""
    app = tmp_path_factory.mktemp("node-app")
    package = app / "node_modules" / "@vibebox" / "sdk"
    package.mkdir(parents=True)
    shutil.copy(TS_SDK / "package.json", package / "package.json")
    built = subprocess.run(
        [NODE, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json", "--outDir", str(package / "dist")],
        cwd=TS_SDK,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (app / "node_modules" / "ws").symlink_to(TS_SDK / "node_modules" / "ws")
    shutil.copy(EXAMPLES / "node" / "receiver.mjs", app / "receiver.mjs")
    return app


def start(kind: str, secret: str, folder: Path, node_app: Path | None = None) -> Receiver:
    env = {**os.environ, "WEBHOOK_SECRET": secret, "PORT": "0", "HOST": "127.0.0.1"}
    if kind == "python":
        store = folder / "webhooks.sqlite3"
        env |= {"WEBHOOK_DB": str(store), "PYTHONPATH": str(ROOT / "sdk" / "python" / "src"), "PYTHONUNBUFFERED": "1"}
        command, cwd = [sys.executable, str(EXAMPLES / "python" / "receiver.py")], folder
    else:
        assert node_app is not None
        store = folder / "webhooks.json"
        env["WEBHOOK_STORE"] = str(store)
        command, cwd = [NODE, "receiver.mjs"], node_app
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output: list[str] = []
    errors: list[str] = []
    listening = threading.Event()

    def read() -> None:
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            if line.startswith("listening on "):
                listening.set()

    threading.Thread(target=read, daemon=True).start()
    threading.Thread(target=lambda: errors.extend(process.stderr), daemon=True).start()  # request logs
    started = listening.wait(60)
    found = [match.group(1) for line in list(output) if (match := re.match(r"listening on (http://\S+)", line))]
    if not (started and found):
        process.kill()  # never left running by a failed start
        process.wait(10)
        raise AssertionError(f"{kind} receiver did not start: {output} {errors}")
    return Receiver(kind, process, found[0], store, output, errors)


def stop(receiver: Receiver) -> None:
    receiver.process.terminate()
    try:
        receiver.process.wait(10)
    except subprocess.TimeoutExpired:
        receiver.process.kill()
        receiver.process.wait(10)


@pytest.fixture(params=["python", "node"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def receiver_factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator:
    started: list[Receiver] = []
    app = request.getfixturevalue("node_app") if kind == "node" else None

    def make(secret: str, *, after: Receiver | None = None) -> Receiver:
        """A receiver with its own store, or `after`'s (a restart)."""
        folder = after.store.parent if after else tmp_path / f"receiver{len(started)}"
        folder.mkdir(exist_ok=True)
        receiver = start(kind, secret, folder, app)
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        if receiver.process.poll() is None:
            stop(receiver)


def event_body(event_type: str = "sandbox.created", sandbox_id: str = "sbx_hook1") -> str:
    event = {
        "type": event_type,
        "timestamp": "2026-12-03T11:00:00.000000Z",
        "data": {"id": sandbox_id, "template": "python-3", "metadata": {"ci": "build-7", "note": "é ✓"}},
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def post(
    receiver: Receiver,
    body: str,
    secrets_: list[str],
    webhook_id: str,
    *,
    at: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A delivery as the server sends it: signed by each secret (two during a rotation)."""
    stamp = int(time.time()) if at is None else at
    when = datetime.fromtimestamp(stamp, tz=UTC)
    signature = " ".join(standardwebhooks.Webhook(s).sign(webhook_id, when, body) for s in secrets_)
    sent = {
        "content-type": "application/json",
        "user-agent": "VibeBox-Webhooks/test",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        **(headers or {}),
    }
    return httpx.post(receiver.url + "/", content=body.encode(), headers=sent, timeout=15)


def test_a_valid_delivery_is_accepted_and_processed_once(receiver_factory):
    secret = new_secret()
    receiver = receiver_factory(secret)
    started = time.monotonic()
    answer = post(receiver, event_body(), [secret], "evt_once")
    assert answer.status_code == 202, answer.text
    assert time.monotonic() - started < 10  # answered at once, inside the server's 15 s even on a busy machine
    entry = receiver.wait_processed("evt_once")
    assert entry == {"type": "sandbox.created", "deliveries": 1, "processed": True}
    assert receiver.processed_lines("evt_once") == ["processed evt_once sandbox.created sbx_hook1"]


def test_a_duplicate_webhook_id_is_accepted_but_not_processed_again(receiver_factory):
    secret = new_secret()
    receiver = receiver_factory(secret)
    assert post(receiver, event_body(), [secret], "evt_dup").status_code == 202
    receiver.wait_processed("evt_dup")
    # the server's retry: the same id and body, a new attempt timestamp, so a new signature
    retry = post(receiver, event_body(), [secret], "evt_dup", at=int(time.time()) + 1)
    assert retry.status_code == 200 and retry.json() == {"duplicate": True}
    assert receiver.stored()["evt_dup"] == {"type": "sandbox.created", "deliveries": 2, "processed": True}
    other = post(receiver, event_body("sandbox.stopped"), [secret], "evt_other")
    assert other.status_code == 202
    receiver.wait_processed("evt_other")  # later events are processed: the duplicate did not block them
    assert len(receiver.processed_lines("evt_dup")) == 1
    assert set(receiver.stored()) == {"evt_dup", "evt_other"}


def test_the_dedupe_store_outlives_a_restart(receiver_factory):
    secret = new_secret()
    first = receiver_factory(secret)
    assert post(first, event_body(), [secret], "evt_restart").status_code == 202
    first.wait_processed("evt_restart")
    stop(first)
    second = receiver_factory(secret, after=first)
    again = post(second, event_body(), [secret], "evt_restart")
    assert again.status_code == 200 and again.json() == {"duplicate": True}
    assert second.stored()["evt_restart"]["deliveries"] == 2
    time.sleep(0.5)  # time for a wrong second processing to show
    assert second.processed_lines("evt_restart") == []


def test_an_event_recorded_but_not_processed_is_processed_at_the_next_start(receiver_factory, kind):
    """A receiver that stopped between its answer and the work: the row says unprocessed."""
    secret = new_secret()
    first = receiver_factory(secret)
    assert post(first, event_body(), [secret], "evt_pending").status_code == 202
    first.wait_processed("evt_pending")
    stop(first)
    # what a crash after the answer leaves: the event recorded, not processed
    if kind == "python":
        with contextlib.closing(sqlite3.connect(first.store)) as db, db:
            db.execute("UPDATE webhook_events SET processed_at = NULL")
    else:
        store = json.loads(first.store.read_text())
        store["events"]["evt_pending"]["processedAt"] = None
        first.store.write_text(json.dumps(store))
    second = receiver_factory(secret, after=first)
    assert second.wait_processed("evt_pending")["deliveries"] == 1
    assert len(second.processed_lines("evt_pending")) == 1


def test_a_bad_signature_is_refused_and_not_stored(receiver_factory):
    secret = new_secret()
    receiver = receiver_factory(secret)
    wrong = post(receiver, event_body(), [new_secret()], "evt_forged")
    assert wrong.status_code == 400 and wrong.json() == {"error": "webhook_signature_invalid"}
    stamp = int(time.time())
    valid = standardwebhooks.Webhook(secret).sign("evt_forged", datetime.fromtimestamp(stamp, tz=UTC), event_body())
    changed = httpx.post(  # a valid signature over another body: changed on the way
        receiver.url + "/",
        content=event_body(sandbox_id="sbx_other").encode(),
        headers={"webhook-id": "evt_forged", "webhook-timestamp": str(stamp), "webhook-signature": valid},
        timeout=15,
    )
    assert changed.status_code == 400 and changed.json() == {"error": "webhook_signature_invalid"}
    missing = post(receiver, event_body(), [secret], "evt_forged", headers={"webhook-signature": ""})
    assert missing.status_code == 400 and missing.json() == {"error": "webhook_headers_missing"}
    assert receiver.stored() == {}
    assert receiver.processed_lines("evt_forged") == []


def test_an_old_or_future_timestamp_is_refused(receiver_factory):
    secret = new_secret()
    receiver = receiver_factory(secret)
    for offset in (-600, 600):  # validly signed: a replay of a captured delivery, or a clock far off
        answer = post(receiver, event_body(), [secret], "evt_replay", at=int(time.time()) + offset)
        assert answer.status_code == 400 and answer.json() == {"error": "webhook_timestamp_out_of_tolerance"}
    assert receiver.stored() == {}


def test_during_a_secret_rotation_either_secret_works(receiver_factory):
    old, new = new_secret(), new_secret()
    with_old = receiver_factory(old)
    assert post(with_old, event_body(), [old, new], "evt_rot1").status_code == 202
    with_new = receiver_factory(new)
    assert post(with_new, event_body(), [old, new], "evt_rot2").status_code == 202
    with_old.wait_processed("evt_rot1")
    with_new.wait_processed("evt_rot2")


def test_a_body_above_a_mebibyte_is_refused(receiver_factory):
    secret = new_secret()
    receiver = receiver_factory(secret)
    body = event_body().replace("build-7", "x" * (1024 * 1024))
    answer = post(receiver, body, [secret], "evt_big")
    assert answer.status_code == 413 and answer.json() == {"error": "too_large"}
    assert receiver.stored() == {}
    assert post(receiver, event_body(), [secret], "evt_small").status_code == 202  # still serving
