"""Serves the model gateway where sandboxes reach it (docs/claude.md)."""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from apps.sandboxes.engine import sandbox_network_gateway


class Command(BaseCommand):
    help = "Serve the Anthropic-compatible model gateway for sandboxes (on the sandbox network's gateway address)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default=settings.VIBEBOX_GATEWAY_HOST, help="default: the sandbox network's gateway"
        )
        parser.add_argument("--port", type=int, default=settings.VIBEBOX_GATEWAY_PORT)

    def handle(self, *args, host, port, **options):
        if not host:
            host = sandbox_network_gateway()
        self.stderr.write(f"model gateway on http://{host}:{port} (upstream {settings.VIBEBOX_ANTHROPIC_UPSTREAM})")
        uvicorn.run(
            "apps.agents.gateway.asgi:application",
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            log_config=None,  # Django's LOGGING (VIBEBOX_LOG_FORMAT), not uvicorn's own
            timeout_graceful_shutdown=5,
        )
