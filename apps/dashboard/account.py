"""The account pages: the template catalogue, API keys (create, rotate, revoke, usage) and usage.

They go through the same services and selectors as the API (apps/keys/api/views.py), scoped to
the signed-in user: another user's key is a 404 page. A session user creates keys for
themselves, with no creating key to narrow them (the API's `creator` is None for sessions).
"""

import datetime as dt

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.keys import selectors as key_selectors
from apps.keys import services as key_services
from apps.keys.scopes import ALL_SCOPES, DEFAULT_SCOPES
from apps.marketplace.models import BuildState
from apps.marketplace.selectors import template_list
from apps.sandboxes.models import Execution, Sandbox
from vibebox import exceptions as errors
from vibebox.units import parse_duration

EXPIRY_CHOICES = [("", "Never"), ("1d", "1 day"), ("7d", "7 days"), ("30d", "30 days"), ("90d", "90 days")]
USAGE_DAYS = 30


# ---- templates ----


UNFINISHED_BUILDS = (BuildState.QUEUED, BuildState.BUILDING)


def build_percent(template) -> int | None:
    """How far a building template's image is (0-100), or None when it is not building or its
    build has not counted its steps yet."""
    progress = template.build_progress or {}
    if template.build_state != BuildState.BUILDING or not progress.get("steps"):
        return None
    return max(0, min(100, int(progress.get("step", 0)) * 100 // int(progress["steps"])))


@login_required
def templates_page(request):
    """The catalogue with each template's build state. While any image is queued or building, the
    list re-fetches itself (`?partial=list`) every few seconds; once all are ready or failed, the
    answer carries no polling attribute and the polling stops."""
    templates = list(template_list())
    for template in templates:
        template.build_percent = build_percent(template)
    context = {
        "templates": templates,
        "building": any(t.build_state in UNFINISHED_BUILDS for t in templates),
        "nav": "templates",
    }
    if request.htmx and request.GET.get("partial") == "list":
        return render(request, "dashboard/partials/template_list.html", context)
    return render(request, "dashboard/templates_page.html", context)


# ---- API keys ----


def _get_key(request, key_id):
    try:
        return key_selectors.api_key_get(user=request.user, id=key_id)
    except errors.KeyNotFound:
        raise Http404("No such key.") from None


def _keys_page(request, *, form=None, errors_=(), new_key=None, secret=None, usage_key=None, usage=None):
    form = form or {"name": "", "scopes": list(DEFAULT_SCOPES), "expires": ""}
    context = {
        "keys": key_selectors.api_key_list(user=request.user),
        "all_scopes": ALL_SCOPES,
        "expiry_choices": EXPIRY_CHOICES,
        "form": form,
        "form_errors": list(errors_),
        "new_key": new_key,
        "secret": secret,
        "usage_key": usage_key,
        "usage": usage,
        "now": timezone.now(),
        "nav": "keys",
    }
    return render(request, "dashboard/keys.html", context)


@login_required
def keys_page(request):
    return _keys_page(request)


@login_required
@require_POST
def key_create(request):
    name = request.POST.get("name", "").strip()
    scopes = request.POST.getlist("scopes")
    expires = request.POST.get("expires", "").strip()
    form = {"name": name, "scopes": scopes, "expires": expires}
    problems = []
    if not name:
        problems.append("Give the key a name.")
    elif len(name) > 100:
        problems.append("The name is at most 100 characters.")
    if not scopes:
        problems.append("Choose at least one scope.")
    expires_at = None
    if expires:
        try:
            seconds = parse_duration(expires)
        except ValueError as exc:
            problems.append(f"Expiry: {exc}")
        else:
            if seconds <= 0:
                problems.append("Expiry must be in the future.")
            else:
                expires_at = timezone.now() + dt.timedelta(seconds=seconds)
    if not problems:
        try:
            key, secret = key_services.api_key_create(
                user=request.user, name=name, scopes=scopes, expires_at=expires_at, creator=None
            )
        except errors.ApplicationError as exc:
            problems.append(f"{exc.message} ({exc.code})")
        else:
            return _keys_page(request, new_key=key, secret=secret)
    # 200 like the other dashboard forms: htmx (boosted forms) does not swap 4xx responses.
    return _keys_page(request, form=form, errors_=problems)


@login_required
@require_POST
def key_rotate(request, key_id):
    key = _get_key(request, key_id)
    try:
        new_key, secret = key_services.api_key_rotate(key=key)
    except errors.ApplicationError as exc:
        messages.error(request, f"{key.name}: {exc.message}")
        return redirect("dashboard:keys")
    messages.success(request, f"{key.name} rotated: the old key keeps working during the grace period.")
    return _keys_page(request, new_key=new_key, secret=secret)


@login_required
@require_POST
def key_revoke(request, key_id):
    key = _get_key(request, key_id)
    key_services.api_key_revoke(key=key)
    messages.success(request, f"{key.name} ({key.display}…) revoked.")
    return redirect("dashboard:keys")


@login_required
def key_usage(request, key_id):
    key = _get_key(request, key_id)
    usage = key_selectors.api_key_usage(key=key)
    if request.htmx and request.GET.get("partial"):
        return render(request, "dashboard/partials/keys_usage.html", {"key": key, "usage": usage})
    return _keys_page(request, usage_key=key, usage=usage)


# ---- usage ----


def usage_days(user, days: int = USAGE_DAYS) -> list[dict]:
    """Sandboxes created and execution seconds per day (UTC) for the last `days` days, oldest first."""
    today = timezone.now().date()
    since = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(since, dt.time.min), dt.UTC)
    created = dict(
        Sandbox.objects.filter(owner=user, created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values_list("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    executed = dict(
        Execution.objects.filter(sandbox__owner=user, started_at__gte=start)
        .annotate(day=TruncDate("started_at", tzinfo=dt.UTC))
        .values_list("day")
        .annotate(ms=Sum("duration_ms"))
        .values_list("day", "ms")
    )
    rows = []
    for offset in range(days):
        day = since + dt.timedelta(days=offset)
        rows.append(
            {"day": day, "sandboxes": created.get(day, 0), "seconds": round((executed.get(day) or 0) / 1000, 1)}
        )
    return rows


@login_required
def usage_page(request):
    rows = usage_days(request.user)
    chart = {
        "labels": [row["day"].isoformat() for row in rows],
        "sandboxes": [row["sandboxes"] for row in rows],
        "seconds": [row["seconds"] for row in rows],
    }
    context = {
        "rows": rows,
        "chart": chart,
        "total_sandboxes": sum(row["sandboxes"] for row in rows),
        "total_seconds": round(sum(row["seconds"] for row in rows), 1),
        "days": USAGE_DAYS,
        "nav": "usage",
    }
    return render(request, "dashboard/usage.html", context)
