"""The /status page: component health for everyone; the SLO table for staff users too."""

from django.shortcuts import render

from . import health, slo

# The stylesheet's state colours (static/css/vibebox.css): green, amber, red.
STATUS_CLASSES = {health.OK: "status-running", health.DEGRADED: "status-paused", health.DOWN: "status-error"}


def status_page(request):
    status = health.platform_status()
    components = [{**component, "css": STATUS_CLASSES[component["status"]]} for component in status["components"]]
    report = slo.slo_report() if request.user.is_authenticated and request.user.is_staff else None
    context = {
        "nav": "status",
        "overall": status["status"],
        "overall_css": STATUS_CLASSES[status["status"]],
        "components": components,
        "checked_at": status["checkedAt"],
        "report": report,
        "burn_windows": list(slo.BURN_WINDOWS),
    }
    return render(request, "monitoring/status.html", context)
