"""GET /metrics: every process's metrics in Prometheus's text format (docs/monitoring.md, "Metrics").

Access: with VIBEBOX_METRICS_TOKEN set, `Authorization: Bearer <token>` (else 401
metrics_token_required); without it, loopback clients only (else 403 metrics_loopback_only).
The client's address is the one uvicorn gives (its --proxy-headers trust only
FORWARDED_ALLOW_IPS), so a proxy in front makes every client look like the proxy: set a token then.
"""

import hmac
import ipaddress
import os
import re

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from vibebox import exceptions as errors
from vibebox import metrics
from vibebox.api.errors import envelope

from .collectors import PlatformCollector

_LIVE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def _refusal(exc: errors.ApplicationError) -> JsonResponse:
    response = JsonResponse(envelope(exc.code, exc.message, exc.details), status=exc.status)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def access_problem(request) -> errors.ApplicationError | None:
    """Why `request` may not read the metrics; None when it may."""
    token = settings.VIBEBOX_METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return errors.MetricsTokenRequired()
    try:
        loopback = ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        loopback = False
    return None if loopback else errors.MetricsLoopbackOnly()


def forget_dead_processes(directory: str) -> None:
    """Live gauges (WebSocket connections) of processes that are gone without saying so (killed,
    crashed): their files are dropped, as an exiting process drops its own (vibebox.metrics)."""
    for name in os.listdir(directory):
        found = _LIVE_FILE.match(name)
        if not found:
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            metrics.mark_process_dead(pid, directory)
        except PermissionError:  # alive, someone else's
            pass


def _registry() -> CollectorRegistry:
    directory = metrics.multiprocess_dir()
    if not directory:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_ProcessMetrics())
    else:
        forget_dead_processes(directory)
        registry = CollectorRegistry(auto_describe=False)
        multiprocess.MultiProcessCollector(registry, path=directory)
    registry.register(PlatformCollector())
    return registry


class _ProcessMetrics:
    """This process's own metrics (single-process mode): the default registry's."""

    def collect(self):
        return REGISTRY.collect()


@require_GET
def metrics_view(request):
    problem = access_problem(request)
    if problem is not None:
        return _refusal(problem)
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
