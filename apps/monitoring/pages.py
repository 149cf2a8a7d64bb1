"""The /status page: component health for everyone; the SLO table for staff users too."""

import logging

from django.shortcuts import render

from . import health, slo

# The stylesheet's state colours (static/css/vibebox.css): green, amber, red.
logger = logging.getLogger(__name__)

STATUS_CLASSES = {health.OK: "status-running", health.DEGRADED: "status-paused", health.DOWN: "status-error"}


def status_page(request):
    status = health.platform_status()
    components = [{**component, "css": STATUS_CLASSES[component["status"]]} for component in status["components"]]
    report, report_failed = None, False
    if request.user.is_authenticated and request.user.is_staff:
        try:
            report = slo.slo_report()
        except Exception:  # the health part still shows; the reason goes to the log
            logger.exception("the SLO report failed")
            report_failed = True
    context = {
        "nav": "status",
        "overall": status["status"],
        "overall_css": STATUS_CLASSES[status["status"]],
        "components": components,
        "checked_at": status["checkedAt"],
        "report": report,
        "report_failed": report_failed,
        "burn_windows": list(slo.BURN_WINDOWS),
    }
    return render(request, "monitoring/status.html", context)
