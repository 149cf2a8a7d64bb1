"""`manage.py backupdb` (docs/compliance.md, A1.2): a consistent, checked copy of the live
database that opens on its own and holds every row, recorded in the audit log."""

import io
import sqlite3
import stat

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
    call_command("backupdb", "--output", str(tmp_path), *extra, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_a_backup_holds_every_row_opens_alone_and_is_recorded(owner, make_key, tmp_path):
    org = services.org_create(user=owner, name="Acme", slug="acme")
    key, _ = make_key(owner, org=org)
    path = _backup(tmp_path)
    assert path.startswith(str(tmp_path)) and path.endswith(".sqlite3")
    assert stat.S_IMODE((tmp_path / path.rsplit("/", 1)[1]).stat().st_mode) == 0o600
    copy = sqlite3.connect(path)
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
    entry = AuditEntry.objects.get(org_id="", action="backup.created")
    assert entry.target_id == path.rsplit("/", 1)[1] and entry.changes["bytes"] > 0
    assert Organization.objects.filter(pk=org.pk).exists() and ApiKey.objects.filter(pk=key.pk).exists()


def test_keep_removes_all_but_the_newest_and_bad_input_is_refused(owner, tmp_path):
    first = _backup(tmp_path)
    second = _backup(tmp_path)
    third = _backup(tmp_path, "--keep", "2")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(name.rsplit("/", 1)[1] for name in (second, third))
    assert first < second < third
    with pytest.raises(CommandError):
        _backup(tmp_path, "--keep", "-1")
    assert len(list(tmp_path.iterdir())) == 2
