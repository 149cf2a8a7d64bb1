from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.services.nodes import node_remove
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = (
        "Forget a registered node (docs/nodes.md). Its engine and containers are left as they are. Refused while "
        "sandboxes (not destroyed) or snapshots are on it, unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--force",
            action="store_true",
            help='Remove it all the same: its sandboxes become error ("node removed"), its snapshots are deleted.',
        )

    def handle(self, *args, name, force, **options):
        try:
            node_remove(name=name, force=force)
        except errors.ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"node {name} removed")
