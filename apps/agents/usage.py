"""Model usage through the gateway: tokens from Anthropic's answers, cost from the price table."""

import json
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Sum

from .models import ModelUsage

FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def prices(model: str) -> tuple[float, float, float, float]:
    for family, table in settings.VIBEBOX_CLAUDE_PRICES.items():
        if family in (model or "").lower():
            return table
    return (0.0, 0.0, 0.0, 0.0)


def cost(model: str, usage: dict) -> Decimal:
    per_million = prices(model)
    total = sum(Decimal(str(rate)) * int(usage.get(name) or 0) for rate, name in zip(per_million, FIELDS, strict=True))
    return (total / Decimal(1_000_000)).quantize(Decimal("0.000001"))


class UsageMeter:
    """Reads usage out of a Messages API answer, streamed (SSE) or whole (JSON)."""

    def __init__(self, streamed: bool):
        self.streamed = streamed
        self.model = ""
        self.usage: dict[str, int] = {}
        self._buffer = b""
        self._body = b""

    def feed(self, chunk: bytes) -> None:
        if not self.streamed:
            self._body += chunk
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                self._event(line[5:].strip())

    def _event(self, raw: bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            return
        if event.get("type") == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model") or self.model
            self._take(message.get("usage") or {})
        elif event.get("type") == "message_delta":
            self._take(event.get("usage") or {})

    def _take(self, usage: dict) -> None:
        for name in FIELDS:  # message_delta carries cumulative counts
            if isinstance(usage.get(name), int):
                self.usage[name] = usage[name]

    def finish(self) -> None:
        if not self.streamed and self._body:
            try:
                message = json.loads(self._body)
            except ValueError:
                return
            if isinstance(message, dict):
                self.model = message.get("model") or self.model
                self._take(message.get("usage") or {})


def record(*, setup, ask, session, path: str, status: int, model: str, usage: dict, own_key: bool) -> ModelUsage:
    return ModelUsage.objects.create(
        sandbox_id=setup.sandbox_id,
        session=session,
        ask=ask,
        api_key_id=(ask.api_key_id if ask else None) or (session.api_key_id if session else None) or setup.api_key_id,
        model=model[:100],
        path=path[:100],
        status=status,
        input_tokens=usage.get("input_tokens", 0),
        output_tokens=usage.get("output_tokens", 0),
        cache_creation_tokens=usage.get("cache_creation_input_tokens", 0),
        cache_read_tokens=usage.get("cache_read_input_tokens", 0),
        cost_usd=cost(model, usage),
        own_key=own_key,
    )


def totals(queryset) -> dict:
    """Sums of a ModelUsage queryset, as the API shows them."""
    sums = queryset.aggregate(
        requests=Count("id"),
        input=Sum("input_tokens"),
        output=Sum("output_tokens"),
        cache_creation=Sum("cache_creation_tokens"),
        cache_read=Sum("cache_read_tokens"),
        cost=Sum("cost_usd"),
    )
    return {
        "requests": sums["requests"],
        "input_tokens": sums["input"] or 0,
        "output_tokens": sums["output"] or 0,
        "cache_creation_tokens": sums["cache_creation"] or 0,
        "cache_read_tokens": sums["cache_read"] or 0,
        "cost_usd": float(sums["cost"] or 0),
    }
