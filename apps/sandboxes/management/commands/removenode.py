from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.services.nodes import node_remove
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = "Forget a registered node (docs/nodes.md). Its engine and containers are left as they are."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            node_remove(name=name)
        except errors.ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"node {name} removed")
