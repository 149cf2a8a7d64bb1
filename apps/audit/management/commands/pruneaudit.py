from django.core.management.base import BaseCommand

from apps.audit import services


class Command(BaseCommand):
    help = "Archives, then removes, audit entries older than VIBEBOX_AUDIT_RETENTION_DAYS (what the daily task does)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help="retention in days (default: the setting)")

    def handle(self, *args, days=None, **options):
        done = services.prune(days=days)
        for org_id, count in done.items():
            self.stdout.write(f"{org_id or '(platform)'}: {count} archived to {services.archive_dir()}")
        self.stdout.write(f"{sum(done.values())} entries archived and removed")
