from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.sandboxes.services.nodes import RELAY_PORT, node_add
from vibebox import exceptions as errors


def _read(path: str | None, flag: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{flag} {path}: {exc}") from None


class Command(BaseCommand):
    help = (
        "Register a Docker engine as a node (docs/nodes.md): connects over TCP with mutual TLS and "
        "saves the node only once its engine answered."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the node's name: lowercase letters, digits, dashes")
        parser.add_argument("url", help="the engine's address, tcp://HOST:2376")
        parser.add_argument("--tlscacert", required=True, help="the CA that signed the engine's certificate (PEM)")
        parser.add_argument("--tlscert", help="the client certificate (PEM)")
        parser.add_argument("--tlskey", help="the client key (PEM, no passphrase; stored encrypted)")
        parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="a label (repeat)")
        parser.add_argument(
            "--relay-port",
            type=int,
            default=RELAY_PORT,
            help=f"the port the node's relay listens on (default {RELAY_PORT}; started by shipimage NODE --sandboxd)",
        )

    def handle(self, *args, name, url, tlscacert, tlscert, tlskey, label, relay_port, **options):
        labels = {}
        for item in label:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--label {item!r}: expected KEY=VALUE")
            labels[key] = value
        try:
            node = node_add(
                name=name,
                docker_url=url,
                ca=_read(tlscacert, "--tlscacert"),
                cert=_read(tlscert, "--tlscert"),
                key=_read(tlskey, "--tlskey"),
                labels=labels,
                relay_port=relay_port,
            )
        except errors.ApplicationError as exc:
            reason = exc.details.get("reason")
            raise CommandError(f"node {name} not added: {exc.message}" + (f" ({reason})" if reason else "")) from None
        self.stdout.write(
            f"node {node.name} added: {node.docker_url}, Docker {node.engine_version}, "
            f"{node.cpus} CPUs, {node.memory // 1024**2} MiB"
        )
