"""`manage.py backup` (docs/compliance.md, A1.2): one archive (mode 0600) whose manifest names
every member with its size and SHA-256, holding a consistent, checked copy of the live database
with every row, recorded in the audit log; `--keep N`. The restore onto a fresh machine is
tests/sandboxes/test_backup_restore.py."""

import hashlib
import io
import json
import sqlite3
import stat
import tarfile

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.models import AuditEntry
from apps.keys.models import ApiKey
from apps.orgs import services
from apps.orgs.models import Organization

pytestmark = pytest.mark.django_db(transaction=True)


def _backup(tmp_path, *extra) -> str:
    out = io.StringIO()
    call_command("backup", "--output", str(tmp_path), *extra, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def _members(path: str, target) -> dict:
    """The archive's manifest, after extracting its members into `target`."""
    with tarfile.open(path) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
        archive.extractall(target, filter="data")
    return manifest


def test_a_backup_holds_every_row_is_checksummed_and_recorded(owner, make_key, tmp_path):
    org = services.org_create(user=owner, name="Acme", slug="acme")
    key, _ = make_key(owner, org=org)
    path = _backup(tmp_path / "out")
    assert path.startswith(str(tmp_path)) and path.endswith(".tar")
    assert stat.S_IMODE((tmp_path / "out" / path.rsplit("/", 1)[1]).stat().st_mode) == 0o600
    manifest = _members(path, tmp_path / "x")
    assert manifest["format"] == "vibebox-backup" and manifest["database"]["vendor"] == connection.vendor
    for part in manifest["parts"]:
        data = (tmp_path / "x" / part["name"]).read_bytes()
        assert len(data) == part["bytes"] and hashlib.sha256(data).hexdigest() == part["sha256"], part["name"]
    assert {"secret_key", "key_hash_secret", "encryption_key"} == set(manifest["keys"])
    entry = AuditEntry.objects.get(org_id="", action="backup.created")
    assert entry.target_id == path.rsplit("/", 1)[1] and entry.changes["bytes"] > 0
    assert Organization.objects.filter(pk=org.pk).exists() and ApiKey.objects.filter(pk=key.pk).exists()
    if connection.vendor != "sqlite":  # pg_dump's archive: restored and checked in test_backup_restore.py
        assert (tmp_path / "x" / "database.pgdump").read_bytes().startswith(b"PGDMP")
        return
    copy = sqlite3.connect(tmp_path / "x" / "database.sqlite3")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT slug FROM orgs_organization WHERE id = ?", [org.pk]).fetchone() == ("acme",)
        assert copy.execute("SELECT key_hash FROM keys_apikey WHERE id = ?", [key.pk]).fetchone() == (key.key_hash,)
        # Restorable: every table of the live database, with as many rows.
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        for table in tables:
            if table.startswith("audit_"):  # the backup's own entry (and its chain's head) came after the copy
                continue
            count = f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}"  # noqa: S608 (the database's own table names)
            with connection.cursor() as cursor:
                cursor.execute(count)
                live = cursor.fetchone()[0]
            assert copy.execute(count).fetchone()[0] == live, table
    finally:
        copy.close()


def test_without_secret_key_leaves_it_out(owner, tmp_path):
    manifest = _members(_backup(tmp_path / "out", "--without-secret-key"), tmp_path / "x")
    assert "secret_key" not in {part["kind"] for part in manifest["parts"]}
    assert not (tmp_path / "x" / "secret_key").exists() and not manifest["keys"]["secret_key"]["included"]


def test_keep_removes_all_but_the_newest_and_bad_input_is_refused(owner, tmp_path):
    first = _backup(tmp_path)
    second = _backup(tmp_path)
    third = _backup(tmp_path, "--keep", "2")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(name.rsplit("/", 1)[1] for name in (second, third))
    assert first < second < third
    with pytest.raises(CommandError):
        _backup(tmp_path, "--keep", "-1")
    assert len(list(tmp_path.iterdir())) == 2


def _rewritten(path: str, target, *, manifest=None, extra: tuple[str, bytes] | None = None) -> str:
    """A copy of the archive with another manifest and/or one more member."""
    with tarfile.open(path) as source, tarfile.open(target, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "manifest.json" and manifest is not None:
                data = json.dumps(manifest).encode()
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
        if extra:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            out.addfile(info, io.BytesIO(extra[1]))
    return str(target)


def test_restore_refuses_before_changing_anything(owner, tmp_path):
    """Each refusal names its reason; the database keeps its rows (and no `backup.restored`)."""
    org = services.org_create(user=owner, name="Kept", slug="kept")
    path = _backup(tmp_path / "out")
    with tarfile.open(path) as archive:
        manifest = json.loads(archive.extractfile("manifest.json").read())
    cases = {
        "not empty": path,  # this database has a user: --force would be needed
        "format version 2": _rewritten(path, tmp_path / "v2.tar", manifest={**manifest, "version": 2}),
        "cannot be restored into": _rewritten(
            path,
            tmp_path / "kind.tar",
            manifest={**manifest, "database": {**manifest["database"], "vendor": "oracle"}},
        ),
        "newer VibeBox": _rewritten(
            path,
            tmp_path / "newer.tar",
            manifest={**manifest, "database": {**manifest["database"], "migrations": ["orgs.9999_future"]}},
        ),
        "does not name": _rewritten(path, tmp_path / "extra.tar", extra=("../../etc/evil", b"x")),
        "keys differ": _rewritten(
            path,
            tmp_path / "keys.tar",
            manifest={**manifest, "keys": {**manifest["keys"], "encryption_key": {"fingerprint": "0" * 64}}},
        ),
    }
    (tmp_path / "plain.tar").write_bytes(b"not a tar at all")
    cases["Cannot read"] = str(tmp_path / "plain.tar")
    for reason, archive in cases.items():
        with pytest.raises(CommandError, match=reason):
            call_command("restore", archive, stdout=io.StringIO(), stderr=io.StringIO())
    assert Organization.objects.filter(pk=org.pk).exists()
    assert not AuditEntry.objects.filter(action="backup.restored").exists()
