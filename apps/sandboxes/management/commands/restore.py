"""`manage.py restore ARCHIVE [--force] [--no-volumes] [--no-snapshots]`: a `manage.py backup`
archive put back, after checking all of it (apps/sandboxes/services/backup.py, docs/operations.md
"Backups"). Run it with the server stopped, then `manage.py migrate` and start the server."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.services.backup import BackupError, backup_restore
from vibebox.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Restore a `manage.py backup` archive (onto a fresh machine; --force replaces existing data)."

    def add_arguments(self, parser):
        parser.add_argument("archive", help="The backup's .tar file.")
        parser.add_argument(
            "--force", action="store_true", help="Replace a database with users, and same-named volumes."
        )
        parser.add_argument("--no-volumes", action="store_true", help="Leave the archive's workspace volumes out.")
        parser.add_argument("--no-snapshots", action="store_true", help="Leave the archive's snapshots out.")

    def handle(self, *args, archive, force, no_volumes, no_snapshots, **options):
        try:
            done = backup_restore(
                archive_path=Path(archive), force=force, volumes=not no_volumes, snapshots=not no_snapshots
            )
        except (BackupError, ApplicationError) as exc:  # the engine's refusals too
            raise CommandError(f"{exc} {getattr(exc, 'details', '') or ''}".strip()) from None
        self.stdout.write(json.dumps(done, sort_keys=True))
