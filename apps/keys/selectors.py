"""Reads for API keys, scoped to their owner."""

import datetime as dt

from django.db.models import QuerySet, Sum
from django.utils import timezone

from apps.orgs import selectors as org_selectors
from apps.orgs.actors import Actor
from vibebox import exceptions as errors

from . import usage
from .models import ApiKey, ApiKeyUsage
from .secrets import hash_key, well_formed


def api_key_list(*, user, everyone_in: Actor | None = None) -> QuerySet[ApiKey]:
    """The user's keys; `everyone_in`: every member's keys in that actor's organization (keys.manage)."""
    if everyone_in is not None:
        everyone_in.require("keys.manage")
        return ApiKey.objects.filter(org=everyone_in.org).select_related("user", "org")
    return ApiKey.objects.filter(user=user).select_related("user", "org")


def api_key_get(*, user, id: str, manager: Actor | None = None) -> ApiKey:
    """One of the user's keys; with `manager`, also another member's key in that actor's
    organization, if the actor holds keys.manage (else 403 naming it). Any other key: 404."""
    key = ApiKey.objects.filter(pk=id).select_related("user", "org").first()
    if key is not None and key.user_id == user.pk:
        return key
    if key is None or manager is None or key.org_id != manager.org.pk:
        raise errors.KeyNotFound()
    manager.require("keys.manage")
    return key


def api_key_authenticate(*, secret: str) -> ApiKey | None:
    """The active key with this secret, or None (malformed, unknown, expired or revoked, its user
    inactive or no longer a member of the key's organization). The key carries its user's
    permissions in its organization (`key.permissions`), read now."""
    if not well_formed(secret):
        return None
    try:  # get(), not first(): no ORDER BY to build on every request (key_hash is unique)
        key = ApiKey.objects.select_related("user", "org").get(key_hash=hash_key(secret))
    except ApiKey.DoesNotExist:
        return None
    if not key.is_active() or not key.user.is_active:
        return None
    if key.org_id is not None:
        # Kept with the key (keycache): any change of a role, team or membership bumps the cache.
        key.permissions = org_selectors.member_permissions(org=key.org, user=key.user)
        if key.permissions is None:  # no longer a member of the key's organization
            return None
    return key


def api_key_usage(*, key: ApiKey, days: int = 30) -> dict:
    since = timezone.now().date() - dt.timedelta(days=days - 1)
    waiting = usage.pending(key=key)  # counted, not yet flushed into the database
    per_day = dict(ApiKeyUsage.objects.filter(key=key, day__gte=since).values_list("day", "requests"))
    for day, requests in waiting.items():
        if day >= since:
            per_day[day] = per_day.get(day, 0) + requests
    total = ApiKeyUsage.objects.filter(key=key).aggregate(total=Sum("requests"))["total"] or 0
    return {
        "keyId": key.id,
        "lastUsedAt": key.last_used_at,
        "totalRequests": total + sum(waiting.values()),
        "days": [{"date": day.isoformat(), "requests": per_day[day]} for day in sorted(per_day)],
    }
