"""`manage.py backup [--output DIR] [--volumes] [--snapshots] [--without-secret-key] [--keep N]`:
one archive of what a restore needs (apps/sandboxes/services/backup.py, docs/operations.md "Backups")."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.services.backup import BackupError, backup_create
from vibebox.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Back up the database, the secret key and template definitions (optionally volumes and snapshots)."

    def add_arguments(self, parser):
        parser.add_argument("--output", default=str(Path(settings.DATA_DIR) / "backups"), help="Directory.")
        parser.add_argument("--volumes", action="store_true", help="Every live sandbox's workspace volume too.")
        parser.add_argument("--snapshots", action="store_true", help="Every snapshot's image and archive too.")
        parser.add_argument(
            "--without-secret-key", action="store_true", help="Leave DATA_DIR/secret_key out (keep it elsewhere)."
        )
        parser.add_argument("--keep", type=int, default=0, help="Keep only the newest N backups there (0: all).")

    def handle(self, *args, output, volumes, snapshots, without_secret_key, keep, **options):
        try:
            result = backup_create(
                output=Path(output), volumes=volumes, snapshots=snapshots, secret_key=not without_secret_key, keep=keep
            )
        except (BackupError, ApplicationError) as exc:  # the engine's refusals too
            raise CommandError(f"{exc} {getattr(exc, 'details', '') or ''}".strip()) from None
        self.stdout.write(str(result.path))
        if result.removed:
            self.stderr.write(f"removed {len(result.removed)} older backup(s): {', '.join(result.removed)}")
