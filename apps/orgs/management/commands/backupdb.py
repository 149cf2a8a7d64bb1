"""`manage.py backupdb [--output DIR] [--keep N]`: a consistent copy of the SQLite database, taken
while the server runs (SQLite's online backup API, page by page under its own locks), checked with
`PRAGMA integrity_check`, written as `vibebox-<UTC time>.sqlite3` (mode 0600: it holds every row)
and recorded in the platform's audit chain (`backup.created`). `--keep N` then removes all but the
newest N. PostgreSQL is backed up with its own tools (pg_dump): docs/operations.md, "Backups".

The copy is not enough alone: `var/secret_key` (the API keys' HMAC) and VIBEBOX_ENCRYPTION_KEY (the
secrets at rest) must be kept too, elsewhere."""

import os
import sqlite3
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from apps.audit.services import record

PREFIX = "vibebox-"
SUFFIX = ".sqlite3"


class Command(BaseCommand):
    help = "Copy the SQLite database consistently while the server runs (for PostgreSQL use pg_dump)."

    def add_arguments(self, parser):
        parser.add_argument("--output", default=str(Path(settings.DATA_DIR) / "backups"), help="Directory.")
        parser.add_argument("--keep", type=int, default=0, help="Keep only the newest N backups there (0: all).")

    def handle(self, *args, output, keep, **options):
        connection = connections["default"]
        if connection.vendor != "sqlite":
            raise CommandError("The database is not SQLite: back it up with pg_dump (docs/operations.md, Backups).")
        if keep < 0:
            raise CommandError("--keep is 0 (keep all) or more.")
        folder = Path(output)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = folder / f"{PREFIX}{timezone.now():%Y%m%dT%H%M%S%fZ}{SUFFIX}"
        partial = target.with_name(target.name + ".partial")
        connection.ensure_connection()
        copy = sqlite3.connect(partial)
        try:
            os.chmod(partial, 0o600)
            connection.connection.backup(copy)
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            copy.close()
        if verdict != "ok":
            partial.unlink(missing_ok=True)
            raise CommandError(f"The copy failed its integrity check: {verdict}")
        partial.rename(target)  # a file named like a backup is a whole one
        size = target.stat().st_size
        record("backup.created", org_id="", target_type="backup", target_id=target.name, changes={"bytes": size})
        removed = []
        if keep:
            backups = sorted(folder.glob(f"{PREFIX}*{SUFFIX}"))
            for old in backups[:-keep]:
                old.unlink()
                removed.append(old.name)
        self.stdout.write(str(target))
        if removed:
            self.stderr.write(f"removed {len(removed)} older backup(s): {', '.join(removed)}")
