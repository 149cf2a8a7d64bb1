"""The organization's audit log page (`/org/audit/`, a tab of the organization pages): newest first,
filtered by actor, action family, target and time, a page at a time (keyset on `seq`: "Load more"
appends the next rows with htmx, or opens them as a page without it), and the filtered log as a
download (CSV or JSON lines, the REST API's export: apps/audit/export.py).

Reading it needs the audit.read permission (a 403 page naming it otherwise), as for the API.
"""

import json
from datetime import UTC

from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest
from django.http import Http404
from django.shortcuts import render
from django.utils.dateparse import parse_datetime
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from apps.audit import export
from apps.audit import selectors as audit_selectors
from apps.audit.models import AuditEntry
from apps.orgs import selectors as org_selectors

from .orgs import _actor, _page

AUDIT_READ = "audit.read"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
FILTERS = ("actor", "action", "target", "since", "until")
SUMMARY_VALUE = 60  # characters of one value in the changes column
SUMMARY_TOTAL = 200


def _when(raw: str) -> tuple[object, str | None]:
    """(the time, None) or (None, the problem). ISO 8601; without a zone (a browser's
    datetime-local field), UTC."""
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        return None, "is a time like 2026-12-01T09:30 (UTC) or 2026-12-01T09:30:00+01:00."
    return (value if value.tzinfo else value.replace(tzinfo=UTC)), None


def _filters(request) -> tuple[dict, dict, list[str]]:
    """(what the form shows, the selector's arguments, problems): a bad time is left out and said."""
    shown = {name: request.GET.get(name, "").strip()[:200] for name in FILTERS}
    query = {name: shown[name] or None for name in ("actor", "action", "target")}
    problems = []
    for name in ("since", "until"):
        query[name] = None
        if shown[name]:
            query[name], problem = _when(shown[name])
            if problem:
                problems.append(f"{name.title()} {problem}")
    return shown, query, problems


def _page_size(request) -> int:
    raw = request.GET.get("limit", "")
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE:
        return int(raw)
    return PAGE_SIZE


def _value(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= SUMMARY_VALUE else text[: SUMMARY_VALUE - 1] + "…"


def summarize(changes: dict) -> str:
    """One line: `field: value`, or `field: before → after` for a change's [before, after]."""
    parts = []
    for field, value in changes.items():
        if isinstance(value, list) and len(value) == 2 and not any(isinstance(v, (dict, list)) for v in value):
            parts.append(f"{field}: {_value(value[0])} → {_value(value[1])}")
        else:
            parts.append(f"{field}: {_value(value)}")
    text = ", ".join(parts)
    return text if len(text) <= SUMMARY_TOTAL else text[: SUMMARY_TOTAL - 1] + "…"


def _families(org_id: str) -> list[str]:
    """The action families present in the log (`sandbox.`, `member.`…), for the filter."""
    actions = AuditEntry.objects.filter(org_id=org_id).order_by().values_list("action", flat=True).distinct()
    return sorted({action.split(".", 1)[0] + "." for action in actions})


def _query(shown: dict, **extra) -> str:
    return urlencode({**{k: v for k, v in shown.items() if v}, **extra})


@login_required
@require_GET
def audit_page(request):
    actor = _actor(request, AUDIT_READ)
    shown, query, problems = _filters(request)
    limit = _page_size(request)
    entries = audit_selectors.entry_list(org_id=actor.org.pk, **query)
    before = request.GET.get("before", "")
    if before:
        if not (before.isascii() and before.isdigit()):
            raise Http404("No such page of the audit log.")
        entries = entries.filter(seq__lt=int(before))
    rows = list(entries[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    for entry in rows:
        entry.summary = summarize(entry.changes)
        entry.changes_json = json.dumps(entry.changes, ensure_ascii=False, sort_keys=True)
    extra = {"limit": limit} if limit != PAGE_SIZE else {}
    context = {
        "entries": rows,
        "filters": shown,
        "filter_problems": problems,
        "next_query": _query(shown, before=rows[-1].seq, **extra) if more else "",
        "paged": bool(before),
        "first_query": _query(shown, **extra),
        "export_query": _query(shown),
        "export_formats": export.FORMATS,
    }
    if request.htmx and request.GET.get("partial") == "rows":
        return render(request, "dashboard/partials/audit_rows.html", context)
    families = _families(actor.org.pk)
    if shown["action"] and shown["action"] not in families:
        families.append(shown["action"])  # an exact action, from a link
    members = [m.user.get_username() for m in org_selectors.member_list(org=actor.org).order_by("user__username")]
    return _page(request, "dashboard/org_audit.html", "audit", actor, families=families, usernames=members, **context)


@login_required
@require_GET
def audit_export(request):
    """The filtered log, oldest first, as a download (`?format=csv|jsonl`, the filters of the page)."""
    actor = _actor(request, AUDIT_READ)
    kind = request.GET.get("format", "jsonl")
    if kind not in export.FORMATS:
        raise Http404("The export is csv or jsonl.")
    _shown, query, problems = _filters(request)
    if problems:
        raise BadRequest(" ".join(problems))
    entries = audit_selectors.entry_list(org_id=actor.org.pk, **query)
    return export.download(entries, org_slug=actor.org.slug, kind=kind)
