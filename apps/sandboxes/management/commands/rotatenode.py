from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.services.nodes import node_relay_rotate
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = (
        "Mint new credentials for a node's relay (a new CA, server and client certificate) and have the relay read "
        "them while it runs, in steps where it accepts every process's row (docs/nodes.md, \"Rotating the relay's "
        'credentials"): it takes VIBEBOX_NODE_ROTATION_GRACE (30 s) and three reloads, and a node sync meanwhile is '
        "refused. Sandboxes keep running and open tunnels are kept; the old client certificate is refused afterwards. "
        "A relay from an older image is restarted instead (its open tunnels cut). "
        "The node must be healthy and prepared."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            rotated = node_relay_rotate(name=name)
        except errors.ApplicationError as exc:
            reason = exc.details.get("reason")
            raise CommandError(f"node {name}: {exc.message}" + (f" ({reason})" if reason else "")) from None
        self.stdout.write(
            f"node {name}: relay credentials rotated (client certificate {rotated.old[:16]}… -> {rotated.new[:16]}…), "
            f"relay on port {rotated.prepared.relay_port} {'reloaded' if rotated.reloaded else 'restarted'}"
        )
