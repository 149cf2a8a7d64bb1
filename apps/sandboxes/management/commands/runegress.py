"""Serves the egress proxy where sandboxes reach it (docs/operations.md, "Egress policy")."""

import asyncio
import logging

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.sandboxes.egress import run
from apps.sandboxes.engine import sandbox_network_gateway


class Command(BaseCommand):
    help = "Serve the HTTP(S) egress proxy for sandboxes' egress policies (on the sandbox network's gateway address)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default=settings.VIBEBOX_EGRESS_PROXY_HOST, help="default: the sandbox network's gateway"
        )
        parser.add_argument("--port", type=int, default=settings.VIBEBOX_EGRESS_PROXY_PORT)

    def handle(self, *args, host, port, **options):
        if not host:
            host = sandbox_network_gateway()  # also sets the bridge's rules, the proxy's port open
        logging.getLogger("apps.sandboxes.egress").setLevel(logging.INFO)
        self.stderr.write(f"egress proxy on http://{host}:{port}")
        asyncio.run(run(host, port, ready=lambda: self.stderr.write("egress proxy ready")))
