from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.selectors import node_get
from apps.sandboxes.services.node_images import node_images_sync
from apps.sandboxes.services.nodes import node_prepare, node_ship_image
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = (
        'Stream images from the local engine to a registered, healthy node (docs/nodes.md, "Shipping images"). '
        "Idempotent: an image the node has already (same tag, same id) is not sent again."
    )

    def add_arguments(self, parser):
        parser.add_argument("node")
        parser.add_argument("tags", nargs="*", metavar="TAG", help="local images to ship")
        parser.add_argument(
            "--sandboxd",
            action="store_true",
            help=(
                "also ship sandboxd's image, make its volume and start the relay on the node "
                "(built locally first if missing)"
            ),
        )
        parser.add_argument(
            "--templates",
            action="store_true",
            help="sandboxd and every template image a sandbox can be created from (what beat's sync-node-images does)",
        )

    def handle(self, *args, node, tags, sandboxd, templates, **options):
        if not tags and not sandboxd and not templates:
            raise CommandError("Name at least one image (TAG), or give --sandboxd or --templates.")
        try:
            target = node_get(name=node)
            if templates:
                done = node_images_sync(node=target)
                for tag, sent in done.sent.items():
                    self.stdout.write(f"{node}: {tag} shipped ({sent / 1024**2:.1f} MiB)")
                for tag in done.present:
                    self.stdout.write(f"{node}: {tag} is there already, nothing sent")
                for tag in done.missing:
                    self.stdout.write(f"{node}: {tag} is not on the local engine (not built yet?), skipped")
                for tag, message in done.failed.items():
                    self.stderr.write(f"{node}: {tag} failed: {message}")
                if done.failed:
                    raise CommandError(f"{len(done.failed)} image(s) could not be shipped to {node}.")
            if sandboxd:
                prepared = node_prepare(node=target)
                self._said(node, prepared.image)
                made = "made" if prepared.volume_made else "in place already"
                self.stdout.write(f"{node}: sandboxd volume {prepared.volume} {made}")
                relay = "running already"
                if prepared.relay_started or prepared.relay_reloaded:
                    relay = "started" if prepared.relay_started else "reloaded"
                self.stdout.write(f"{node}: relay on port {prepared.relay_port} {relay}")
            for tag in tags:
                self._said(node, node_ship_image(node=target, tag=tag))
        except errors.ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _said(self, node, shipped) -> None:
        if shipped.sent:
            size, seconds = shipped.sent / 1024**2, shipped.seconds
            self.stdout.write(f"{node}: {shipped.tag} shipped ({size:.1f} MiB in {seconds:.1f} s, {shipped.image_id})")
        else:
            self.stdout.write(f"{node}: {shipped.tag} is there already ({shipped.image_id}), nothing sent")
