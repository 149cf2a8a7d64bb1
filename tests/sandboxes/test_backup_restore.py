"""Disaster recovery (docs/operations.md, "Backups"): `manage.py backup --volumes`, then a fresh
machine (a new VIBEBOX_DATA_DIR and an empty database; the sandbox's container and workspace volume
gone from the engine), `manage.py restore` there, and everything works again through the real
server: the sandbox's record, the API key, the webhook (it delivers, signed with its restored
secret, to a receiver on loopback), and the sandbox itself: recovered (its container made again,
POST …/recover), started, its workspace's files there. On SQLite and on PostgreSQL
(`scripts/test-postgres.sh`)."""

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import connection
from standardwebhooks.webhooks import Webhook as Verifier

from apps.sandboxes.models import Snapshot
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.specs import disk_limits_on
from tests.conftest import ROOT, live_server
from tests.database import child_database_url

pytestmark = pytest.mark.django_db(transaction=True)
WEBHOOK_ENV = {"VIBEBOX_WEBHOOK_ALLOW_HTTP": "1", "VIBEBOX_WEBHOOK_ALLOW_PRIVATE": "1", "VIBEBOX_WEBHOOK_DISPATCH": "0"}


@pytest.fixture
def receiver():
    """A webhook receiver on loopback: records each request's body and headers."""
    received: list[tuple[bytes, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def fresh_database(tmp_path):
    """An empty database of the test's kind, as a DATABASE_URL: a new SQLite file, or a new
    PostgreSQL database on the test's server (dropped afterwards)."""
    if connection.vendor == "sqlite":
        yield f"sqlite://{tmp_path / 'fresh' / 'vibebox.sqlite3'}"
        return
    name = f"{connection.settings_dict['NAME']}_restored"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    own = quote(connection.settings_dict["NAME"], safe="")
    yield child_database_url().replace(f"/{own}?", f"/{quote(name, safe='')}?")
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _call(url: str, key: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.parametrize("workspace", ["volume", "layer"])
def test_backup_then_restore_onto_a_fresh_machine(
    workspace, settings, api_client, api_key, create_sandbox, receiver, fresh_database, tmp_path
):
    """`workspace`: the sandbox's /workspace in a named volume (no disk limit), or in its
    container's layer (a disk limit, where the engine enforces them: docs/operations.md)."""
    if workspace == "volume":
        settings.VIBEBOX_DEFAULT_DISK = 0
    settings.VIBEBOX_WEBHOOK_ALLOW_HTTP = settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE = True
    settings.VIBEBOX_WEBHOOK_DISPATCH = False
    receiver_url, received = receiver
    sandbox = create_sandbox(name="keepme")
    done = api_client.post(
        f"/api/v1/sandboxes/{sandbox['id']}/exec",
        {"command": "echo restored-content > /workspace/hello.txt"},
        format="json",
    )
    assert done.status_code == 200 and done.json()["exitCode"] == 0, done.content
    hook = api_client.post("/api/v1/webhooks", {"url": receiver_url, "events": ["*"]}, format="json")
    assert hook.status_code == 201, hook.content
    hook = hook.json()
    volume = f"{sandbox['id']}-workspace"
    if workspace == "volume":
        assert get_driver().volume_exists(volume)

    out = io.StringIO()
    call_command("backup", "--volumes", "--output", str(tmp_path / "backups"), stdout=out, stderr=io.StringIO())
    archive = Path(out.getvalue().strip())
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as opened:
        manifest = json.loads(opened.extractfile("manifest.json").read())
    assert manifest["database"]["vendor"] == connection.vendor
    assert {p["kind"] for p in manifest["parts"]} >= {"database", "secret_key", "volume"}
    saved = next(p for p in manifest["parts"] if p["kind"] == "volume")
    expected = "container" if workspace == "layer" and disk_limits_on() else "volume"
    assert saved["volume"] == volume and saved["source"] == expected

    # The machine is lost: its container and volume, its data directory and its database.
    get_driver().remove(sandbox["id"], volume=volume)
    assert not get_driver().volume_exists(volume)
    fresh = tmp_path / "fresh"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "VIBEBOX_DATA_DIR": str(fresh),
        "DATABASE_URL": fresh_database,
        **WEBHOOK_ENV,
    }

    # A wrong key is refused before anything changes.
    wrong = _manage({**env, "VIBEBOX_SECRET_KEY": "not-the-key"}, "restore", str(archive))
    assert wrong.returncode != 0 and "VIBEBOX_SECRET_KEY" in wrong.stderr, wrong.stderr
    assert "nothing was restored" in wrong.stderr and not get_driver().volume_exists(volume)
    # A damaged archive too.
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as opened:
        offset = opened.getmember(manifest["parts"][0]["name"]).offset_data + 4096  # inside the database
    data = bytearray(archive.read_bytes())
    data[offset] ^= 0xFF
    damaged.write_bytes(bytes(data))
    refused = _manage(env, "restore", str(damaged))
    assert refused.returncode != 0 and "damaged" in refused.stderr, refused.stderr

    restored = _manage(env, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["volumes"] == 1
    assert (fresh / "secret_key").read_text().strip() == django_settings.SECRET_KEY
    again = _manage(env, "restore", str(archive))
    assert again.returncode != 0 and "not empty" in again.stderr and "--force" in again.stderr, again.stderr
    migrated = _manage(env, "migrate", "--no-input", "-v0")
    assert migrated.returncode == 0, migrated.stderr

    # The start-up reconcile (as `make run`'s) finds the sandbox's container gone. Under an instance
    # label of its own: the fresh database knows none of this test session's other containers (its
    # warm pools...), which a reconcile under the session's label would remove as orphans.
    reconciled = _manage({**env, "VIBEBOX_TEST_INSTANCE": "restored"}, "reconcile", "--startup")
    assert reconciled.returncode == 0, reconciled.stderr

    # The key authenticates through the real server; the records are there; the sandbox is
    # recovered (its container made again, its workspace from the restored volume) and runs.
    server_env = {"VIBEBOX_DATA_DIR": str(fresh), "DATABASE_URL": fresh_database, **WEBHOOK_ENV}
    if workspace == "volume":  # the fresh machine configured as the lost one
        server_env["VIBEBOX_DEFAULT_DISK"] = "0"
    with live_server(**server_env) as (url, _):
        status, body = _call(f"{url}/api/v1/sandboxes/{sandbox['id']}", api_key[1])
        assert status == 200 and body["name"] == "keepme", body
        assert body["status"] == "error" and body["statusReason"] == "container vanished", body
        status, body = _call(f"{url}/api/v1/sandboxes/{sandbox['id']}", "vb_live_wrong")
        assert status == 401
        status, body = _call(f"{url}/api/v1/webhooks/{hook['id']}/test", api_key[1], "POST", {})
        assert status in (200, 201, 202), body
        status, body = _call(f"{url}/api/v1/sandboxes/{sandbox['id']}/recover", api_key[1], "POST", {})
        assert status == 200 and body["status"] == "stopped", body
        copied = workspace == "layer" and disk_limits_on()
        assert ("copied from the restored volume" if copied else "its workspace volume") in body["statusReason"], body
        status, body = _call(f"{url}/api/v1/sandboxes/{sandbox['id']}/start", api_key[1], "POST", {})
        assert status == 200 and body["status"] == "running", body
        status, ran = _call(
            f"{url}/api/v1/sandboxes/{sandbox['id']}/exec", api_key[1], "POST", {"command": "cat hello.txt"}
        )
        assert status == 200 and ran["stdout"] == "restored-content\n", ran

    # The webhook delivers, signed with its restored secret.
    sent = _manage(
        env,
        "shell",
        "-c",
        "from apps.webhooks.tasks import deliver_webhook; from apps.audit.models import AuditEntry;"
        f"print(deliver_webhook({hook['id']!r}), AuditEntry.objects.filter(action='backup.restored').count())",
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.split()[-1] == "1"  # the restore is in the audit log
    assert received, sent.stdout
    for body, headers in received:
        Verifier(hook["secret"]).verify(body, headers)
    kinds = [json.loads(body)["type"] for body, _ in received]
    # The test event, the reconcile's finding, and what the recovered sandbox did.
    assert sorted(kinds) == sorted(
        ["webhook.test", "sandbox.error", "sandbox.recovered", "sandbox.started", "execution.completed"]
    ), kinds

    # The recovered sandbox's container goes with the test (its id and name are the original's).
    if copied:  # its volume was only the backup's carrier, removed once copied in
        assert not get_driver().volume_exists(volume)
    get_driver().remove(sandbox["id"], volume=volume)


def test_snapshots_come_back_and_a_new_sandbox_starts_from_one(
    api_client, api_key, create_sandbox, cleanup_sandbox_ids, fresh_database, tmp_path
):
    """`--snapshots`: the snapshot's image and workspace archive are in the archive; on the fresh
    machine (the image gone from the engine, a new data directory) a sandbox is created from the
    restored snapshot through the live server and has the files."""
    source = create_sandbox(name="snapped")["id"]
    done = api_client.post(
        f"/api/v1/sandboxes/{source}/exec", {"command": "echo from-snapshot > /workspace/s.txt"}, format="json"
    )
    assert done.status_code == 200 and done.json()["exitCode"] == 0, done.content
    snap = api_client.post(f"/api/v1/sandboxes/{source}/snapshots", {}, format="json")
    assert snap.status_code == 201, snap.content
    snap = snap.json()
    image = Snapshot.objects.get(pk=snap["id"]).image

    out = io.StringIO()
    call_command("backup", "--snapshots", "--output", str(tmp_path / "backups"), stdout=out, stderr=io.StringIO())
    archive = Path(out.getvalue().strip())
    get_driver().image_remove(image)
    assert not get_driver().image_exists(image)
    fresh = tmp_path / "fresh"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "VIBEBOX_DATA_DIR": str(fresh)}
    env["DATABASE_URL"] = fresh_database
    restored = _manage(env, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["snapshot_images"] == 1
    assert get_driver().image_exists(image) and (fresh / "snapshots" / f"{snap['id']}.tar").exists()

    with live_server(VIBEBOX_DATA_DIR=str(fresh), DATABASE_URL=fresh_database) as (url, _):
        status, copy = _call(f"{url}/api/v1/sandboxes", api_key[1], "POST", {"snapshot": snap["id"]})
        if status == 201:
            cleanup_sandbox_ids.append(copy["id"])
        assert status == 201 and copy["status"] == "running", copy
        status, ran = _call(f"{url}/api/v1/sandboxes/{copy['id']}/exec", api_key[1], "POST", {"command": "cat s.txt"})
        assert status == 200 and ran["stdout"] == "from-snapshot\n", ran
