from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.services.nodes import node_remove
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = (
        "Forget a registered node (docs/nodes.md) and, when its engine answers, remove what VibeBox made there: its "
        "containers (sandboxes', pooled ones) and their workspaces, the sandbox network and the isolation rules its "
        "relay wrote, then the relay and its files (images and sandboxd's volume stay). Refused while sandboxes (not "
        "destroyed) or snapshots are on it, unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--force",
            action="store_true",
            help=(
                'Remove it all the same: its sandboxes become error ("node removed") and their containers and '
                "workspaces are removed from the node, its snapshots are deleted."
            ),
        )

    def handle(self, *args, name, force, **options):
        try:
            removed = node_remove(name=name, force=force)
        except errors.ApplicationError as exc:
            raise CommandError(exc.message) from None
        if removed.reached:
            self.stdout.write(
                f"node {name} removed: {removed.containers} container(s), {removed.volumes} volume(s), "
                "its sandbox network and rules and its relay removed there"
            )
        else:
            self.stdout.write(f"node {name} removed")
            self.stderr.write(f"node {name}: {removed.error}")
