from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes import sandboxd
from vibebox import exceptions as errors


class Command(BaseCommand):
    help = "Build sandboxd (gofmt, go vet, a static binary in a read-only volume) unless built; --check runs go test."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="run sandboxd's go test suite (always runs)")
        parser.add_argument(
            "--relay",
            action="store_true",
            help="also build the nodes' relay image (sandboxd with iptables; node_prepare builds it when missing)",
        )

    def handle(self, *args, check, relay, **options):
        try:
            if relay:
                self.stderr.write(f"sandboxd: relay image {sandboxd.relay_build(log=self.stderr.write)}")
            if check:
                sandboxd.check(log=self.stderr.write)
                self.stderr.write("sandboxd: go test passed")
            else:
                self.stderr.write(f"sandboxd: volume {sandboxd.build(log=self.stderr.write)}")
        except errors.ApplicationError as exc:
            raise CommandError(f"sandboxd: {exc.message}") from None
