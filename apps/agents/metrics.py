"""Claude's performance over time, for the dashboard (per sandbox and per organization): asks,
success rate and average duration from the asks, tokens and cost from the gateway's records
(ModelUsage). Two aggregate queries whatever the number of asks, sandboxes or days."""

import datetime as dt

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.orgs.actors import Actor
from apps.sandboxes import selectors as sandbox_selectors
from apps.sandboxes.models import Status

from .models import ClaudeAsk, ModelUsage

DAYS = 30
ENDED = [ClaudeAsk.Status.COMPLETED, ClaudeAsk.Status.FAILED, ClaudeAsk.Status.CANCELLED, ClaudeAsk.Status.TIMEOUT]


def org_sandboxes(actor: Actor):
    """The sandboxes whose Claude metrics the actor sees: those they may read in the organization
    they act in (sandbox_list's rule), destroyed ones included (their records stay)."""
    return sandbox_selectors.sandbox_list(actor=actor, status=list(Status.values)).values("pk")


def claude_metrics(*, sandboxes, days: int = DAYS) -> dict:
    """Per day (UTC, oldest first, every day of the window) and in total: asks started, ended,
    completed, success rate (completed / ended), average duration of ended asks, model requests,
    input and output tokens, cost (the gateway's). `sandboxes`: a queryset of sandbox ids or rows."""
    today = timezone.now().astimezone(dt.UTC).date()
    since = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
    asks = {
        row["day"]: row
        for row in ClaudeAsk.objects.filter(sandbox__in=sandboxes, started_at__gte=start)
        .annotate(day=TruncDate("started_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(
            asks=Count("id"),
            ended=Count("id", filter=Q(status__in=ENDED)),
            completed=Count("id", filter=Q(status=ClaudeAsk.Status.COMPLETED)),
            timed=Count("duration_ms", filter=Q(status__in=ENDED)),
            duration=Sum("duration_ms", filter=Q(status__in=ENDED)),
        )
    }
    usage = {
        row["day"]: row
        for row in ModelUsage.objects.filter(sandbox__in=sandboxes, created_at__gte=start)
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(requests=Count("id"), input=Sum("input_tokens"), output=Sum("output_tokens"), cost=Sum("cost_usd"))
    }
    rows = []
    for offset in range(days):
        day = since + dt.timedelta(days=offset)
        a, u = asks.get(day, {}), usage.get(day, {})
        rows.append(
            _row(
                day=day,
                asks=a.get("asks", 0),
                ended=a.get("ended", 0),
                completed=a.get("completed", 0),
                timed=a.get("timed", 0),
                duration=a.get("duration") or 0,
                requests=u.get("requests", 0),
                tokens_in=u.get("input") or 0,
                tokens_out=u.get("output") or 0,
                cost=float(u.get("cost") or 0),
            )
        )
    total = _row(
        day=None, **{name: sum(r[name] for r in rows) for name in ("asks", "ended", "completed", "requests")},
        timed=sum(r["_timed"] for r in rows), duration=sum(r["_duration"] for r in rows),
        tokens_in=sum(r["input_tokens"] for r in rows), tokens_out=sum(r["output_tokens"] for r in rows),
        cost=sum(r["cost_usd"] for r in rows),
    )  # fmt: skip
    return {"days": rows, "total": total, "since": since, "window": days}


def _row(*, day, asks, ended, completed, timed, duration, requests, tokens_in, tokens_out, cost) -> dict:
    return {
        "day": day,
        "asks": asks,
        "ended": ended,
        "completed": completed,
        "success_rate": round(completed / ended, 4) if ended else None,
        "avg_duration_ms": round(duration / timed) if timed else None,
        "requests": requests,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": round(cost, 6),
        "_timed": timed,
        "_duration": duration,
    }
