"""The /status page: component health for everyone; the SLO table for staff users too."""

import logging

from django.shortcuts import render

from . import health, slo

# The stylesheet's state colours (static/css/vibebox.css): green, amber, red.
logger = logging.getLogger(__name__)

STATUS_CLASSES = {health.OK: "status-running", health.DEGRADED: "status-paused", health.DOWN: "status-error"}


NONE = "\u2013"  # an en dash: no value (no events)


def _percent(fraction: float | None, digits: int = 3) -> str:
    return NONE if fraction is None else f"{round(fraction * 100, digits):g} %"


def _shown(item: dict) -> dict:
    """One SLO of the report with its numbers as the page shows them."""
    return {
        **item,
        "objective_shown": _percent(item["objective"]),
        "sli_shown": _percent(item["sli"]),
        "budget_shown": _percent(item["errorBudgetRemaining"], 1),
        "burn_shown": [(label, NONE if rate is None else f"{rate:.2f}") for label, rate in item["burnRates"].items()],
    }


def status_page(request):
    status = health.platform_status()
    components = [{**component, "css": STATUS_CLASSES[component["status"]]} for component in status["components"]]
    report, report_failed = None, False
    if request.user.is_authenticated and request.user.is_staff:
        try:
            report = slo.slo_report()
            report = {**report, "slos": [_shown(item) for item in report["slos"]]}
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
