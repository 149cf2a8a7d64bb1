"""ASGI entry point of the model gateway (`manage.py rungateway` serves it)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")
django.setup()

from vibebox import tracing  # noqa: E402
from vibebox.logs import RequestContext  # noqa: E402

from .proxy import application as proxy  # noqa: E402  (needs Django set up first)

# Traces when OTEL_EXPORTER_OTLP_ENDPOINT is set: a span per request, the upstream call (httpx) in
# it; request ids and the access line as the web server's (vibebox/logs.py).
tracing.configure()
application = tracing.asgi(RequestContext(proxy))

__all__ = ["application"]
