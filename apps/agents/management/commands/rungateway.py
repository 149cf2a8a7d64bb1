"""Serves the model gateway where sandboxes reach it (docs/claude.md)."""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from apps.sandboxes.runtime import get_driver
from apps.sandboxes.specs import base_labels, network_name


class Command(BaseCommand):
    help = "Serve the Anthropic-compatible model gateway for sandboxes (on the sandbox network's gateway address)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default=settings.VIBEBOX_GATEWAY_HOST, help="default: the sandbox network's gateway"
        )
        parser.add_argument("--port", type=int, default=settings.VIBEBOX_GATEWAY_PORT)

    def handle(self, *args, host, port, **options):
        if not host:
            driver = get_driver()
            driver.ensure_network(network_name(), base_labels())
            host = driver.network_gateway(network_name())
        self.stderr.write(f"model gateway on http://{host}:{port} (upstream {settings.VIBEBOX_ANTHROPIC_UPSTREAM})")
        uvicorn.run(
            "apps.agents.gateway.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
