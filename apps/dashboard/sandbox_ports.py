"""The sandbox page's Ports tab (preview URLs, docs/api.md "Preview URLs").

The ports a server listens on in the sandbox and its template's declared ones, refreshed
by htmx. Their links go through `sandbox_port_open`, which signs a fresh preview token for the
signed-in user and redirects to the tokened URL (the preview host swaps it for its own cookie), so
no token is ever written into the page. Reads, the public flag and tokens come from
apps/sandboxes/preview (the same code as the REST endpoints).
"""

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.keys.actors import actor_of
from apps.sandboxes import selectors
from apps.sandboxes.models import Status
from apps.sandboxes.preview import links, ports, services
from vibebox import exceptions as errors

from .views import get_sandbox, sandbox_page

logger = logging.getLogger(__name__)

LINK_SECONDS = 3600  # a link from the tab works for an hour (the cookie it becomes, as long)


def _port_rows(request, sandbox) -> tuple[list[dict], str]:
    """The tab's rows (declared and public ports also while the sandbox is not running, as the API
    lists them) and a problem to show instead (sandboxd could not tell)."""
    try:
        listed = ports.port_list(sandbox)
    except errors.ApplicationError as exc:
        logger.info("ports of %s: %s", sandbox.id, exc.message)
        return [], f"{exc.message} ({exc.code})"
    origin = request.build_absolute_uri("/")
    rows = [services.port_answer(sandbox, info, origin=origin) for info in listed]  # as the API answers
    return rows, ""


def _ports_context(request, sandbox) -> dict:
    rows, problem = _port_rows(request, sandbox)
    can_manage = True
    try:
        selectors.sandbox_get(actor=actor_of(request), ref=sandbox.pk, need=selectors.MANAGE)
    except errors.ApplicationError:
        can_manage = False
    return {"ports": rows, "problem": problem, "running": sandbox.status == Status.RUNNING, "can_manage": can_manage}


@login_required
@require_GET
def sandbox_ports(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    context = _ports_context(request, sandbox)
    if request.htmx and request.GET.get("partial") == "table":
        return render(request, "dashboard/partials/ports_table.html", {"sandbox": sandbox, **context})
    return sandbox_page(request, sandbox, "ports", "dashboard/sandbox_ports.html", **context)


@login_required
@require_GET
def sandbox_port_open(request, sandbox_id, port):
    """Signs a preview token for `port` (an hour) and redirects to the host form (`?form=path`:
    the path form) with it."""
    sandbox = get_sandbox(request, sandbox_id)
    try:
        port = ports.parse_port(port)
    except errors.ApplicationError:
        raise Http404("No such port.") from None
    form = "path" if request.GET.get("form") == "path" else "host"
    link = links.signed_url(sandbox.pk, port, form=form, seconds=LINK_SECONDS, origin=request.build_absolute_uri("/"))
    response = redirect(link.url)
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def sandbox_port_public(request, sandbox_id, port):
    """Makes a port public or private again (what managing the sandbox needs; audited by the service)."""
    sandbox = get_sandbox(request, sandbox_id, need=selectors.MANAGE)
    try:
        port = ports.parse_port(port)
        services.port_public_set(sandbox=sandbox, port=port, public=request.POST.get("public") == "true")
    except errors.ApplicationError as exc:
        messages.error(request, exc.message)
    if request.htmx:
        context = _ports_context(request, sandbox)
        return render(request, "dashboard/partials/ports_table.html", {"sandbox": sandbox, **context})
    return redirect(reverse("dashboard:sandbox-ports", args=[sandbox.id]))
