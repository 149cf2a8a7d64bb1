"""Writes for API keys."""

import datetime as dt
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from vibebox import exceptions as errors

from .models import ApiKey, ApiKeyUsage
from .scopes import DEFAULT_SCOPES, parse_scopes
from .secrets import display_prefix, generate_key, hash_key

_RATE = re.compile(r"^[1-9]\d{0,6}/(s|sec|second|m|min|minute|h|hour|d|day)$")
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LAST_USED_PRECISION = dt.timedelta(seconds=60)


def rate_per_second(rate: str) -> float:
    count, period = rate.split("/")
    return int(count) / _PERIOD_SECONDS[period[0]]


def api_key_create(
    *,
    user,
    name: str,
    scopes: list[str] | str | None = None,
    expires_at: dt.datetime | None = None,
    test: bool = False,
    rate_limit: str = "",
    creator: ApiKey | None = None,
    rotated_from: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its secret, which is never shown again.

    When `creator` (the key making the request) is given, the new key can be no broader:
    its scopes are a subset, it expires no later, it is a test key if the creator is one,
    and its rate limit is no higher.
    """
    try:
        scope_list = parse_scopes(scopes) if scopes is not None else None
    except ValueError as exc:
        raise errors.InvalidScope(str(exc)) from None
    if rate_limit and not _RATE.match(rate_limit):
        raise errors.ValidationFailed(
            "rateLimit must look like '100/min' (periods: s, min, h, day).",
            details={"fields": {"rateLimit": [{"message": "invalid rate", "code": "invalid"}]}},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.ValidationFailed("expiresAt must be in the future.")
    if creator is not None:
        if scope_list is None:
            scope_list = list(creator.scopes)
        broader = sorted(set(scope_list) - set(creator.scopes))
        if broader:
            raise errors.ScopeEscalation(details={"scopes": broader})
        if creator.expires_at is not None:
            if expires_at is None:
                expires_at = creator.expires_at
            elif expires_at > creator.expires_at:
                _escalation("expiresAt")
        if creator.is_test and not test:
            _escalation("test")
        creator_rate = creator.rate_limit or settings.VIBEBOX_RATE_LIMIT
        if rate_limit and rate_per_second(rate_limit) > rate_per_second(creator_rate):
            _escalation("rateLimit")
        rate_limit = rate_limit or creator.rate_limit
    if scope_list is None:
        scope_list = list(DEFAULT_SCOPES)
    secret = generate_key(test=test)
    key = ApiKey.objects.create(
        user=user,
        name=name,
        key_hash=hash_key(secret),
        key_prefix=secret[:8],
        display=display_prefix(secret),
        scopes=scope_list,
        rate_limit=rate_limit,
        expires_at=expires_at,
        rotated_from=rotated_from,
    )
    return key, secret


def _escalation(field: str):
    raise errors.ScopeEscalation(f"A key cannot create a key broader than itself ({field}).", details={"field": field})


def api_key_rotate(*, key: ApiKey, grace_seconds: float | None = None) -> tuple[ApiKey, str]:
    """A new key with the same name, scopes and limits; the old one expires after the grace period."""
    if not key.is_active():
        raise errors.ValidationFailed("Only an active key can be rotated.")
    grace = settings.VIBEBOX_KEY_ROTATION_GRACE if grace_seconds is None else grace_seconds
    with transaction.atomic():
        new_key, secret = api_key_create(
            user=key.user,
            name=key.name,
            scopes=list(key.scopes),
            expires_at=key.expires_at,
            test=key.is_test,
            rate_limit=key.rate_limit,
            rotated_from=key,
        )
        old_expiry = timezone.now() + dt.timedelta(seconds=grace)
        if key.expires_at is None or key.expires_at > old_expiry:
            ApiKey.objects.filter(pk=key.pk).update(expires_at=old_expiry)
    return new_key, secret


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    """Revokes the key; the ephemeral sandboxes it created are destroyed with it."""
    from apps.sandboxes.services import sandboxes_destroy_ephemeral_of_key

    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db()
    transaction.on_commit(lambda: sandboxes_destroy_ephemeral_of_key(key_id=key.pk))
    return key


def api_key_record_use(*, key: ApiKey) -> None:
    """Counts one request for today and refreshes last use (at most once a minute)."""
    now = timezone.now()
    day = now.date()
    if not ApiKeyUsage.objects.filter(key=key, day=day).update(requests=F("requests") + 1):
        try:
            with transaction.atomic():
                ApiKeyUsage.objects.create(key=key, day=day, requests=1)
        except IntegrityError:  # created by a concurrent request
            ApiKeyUsage.objects.filter(key=key, day=day).update(requests=F("requests") + 1)
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
