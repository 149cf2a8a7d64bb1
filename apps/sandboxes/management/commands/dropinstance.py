from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.engine import instance_drop


class Command(BaseCommand):
    help = (
        "Removes everything this instance (VIBEBOX_INSTANCE) has in the engine: containers, volumes, "
        "its network and firewall rules. For throwaway servers (tests, benchmarks); the database is left alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--yes", action="store_true", help="really do it")

    def handle(self, *args, yes, **options):
        if not yes:
            raise CommandError(f"this removes every container of instance {settings.VIBEBOX_INSTANCE!r}; pass --yes")
        dropped = instance_drop()
        self.stderr.write(
            f"instance {settings.VIBEBOX_INSTANCE}: removed {dropped.containers} containers, "
            f"{dropped.volumes} volumes, network {dropped.network}"
        )
