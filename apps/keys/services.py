"""Writes for API keys."""

import datetime as dt
import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.orgs import selectors as org_selectors
from apps.orgs.models import Organization
from apps.orgs.services import personal_org_ensure
from vibebox import exceptions as errors

from . import keycache, signals, usage
from .models import ApiKey
from .scopes import DEFAULT_SCOPES, parse_scopes
from .secrets import display_prefix, generate_key, hash_key, well_formed
from .selectors import api_key_authenticate

RATE_PATTERN = re.compile(r"^[1-9]\d{0,6}/(s|sec|second|m|min|minute|h|hour|d|day)$")
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LAST_USED_PRECISION = dt.timedelta(seconds=60)


def rate_per_second(rate: str) -> float:
    count, period = rate.split("/")
    return int(count) / _PERIOD_SECONDS[period[0]]


def api_key_create(
    *,
    user,
    name: str,
    org: Organization | None = None,
    scopes: list[str] | str | None = None,
    expires_at: dt.datetime | None = None,
    test: bool = False,
    rate_limit: str = "",
    creator: ApiKey | None = None,
    rotated_from: ApiKey | None = None,
    sandbox_id: str = "",
) -> tuple[ApiKey, str]:
    """Creates a key and returns it with its secret, which is never shown again.

    When `creator` (the key making the request) is given, the new key can be no broader
    (`api_key_ensure_no_broader`); what the request leaves out (scopes, expiry, rate limit) is
    the creator's. `sandbox_id` binds the key to a sandbox: destroying it revokes the key.
    `org` is where the key acts (the user must be a member; default: the creator's organization,
    else the user's personal one).
    """
    try:
        scope_list = parse_scopes(scopes) if scopes is not None else None
    except ValueError as exc:
        raise errors.InvalidScope(str(exc)) from None
    if rate_limit and not RATE_PATTERN.match(rate_limit):
        raise errors.ValidationFailed(
            "rateLimit must look like '100/min' (periods: s, min, h, day).",
            details={"fields": {"rateLimit": [{"message": "invalid rate", "code": "invalid"}]}},
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.ValidationFailed("expiresAt must be in the future.")
    if creator is not None:
        if scope_list is None:
            scope_list = list(creator.scopes)
        if expires_at is None:
            expires_at = creator.expires_at
        rate_limit = rate_limit or creator.rate_limit
        api_key_ensure_no_broader(
            creator=creator, action="create", scopes=scope_list, expires_at=expires_at, test=test, rate_limit=rate_limit
        )
    if scope_list is None:
        scope_list = list(DEFAULT_SCOPES)
    if org is None:
        org = creator.org if creator is not None and creator.org_id else personal_org_ensure(user=user)
    elif org_selectors.membership_get(org=org, user=user) is None:
        raise errors.OrgNotFound(details={"org": org.slug})
    secret = generate_key(test=test)
    with transaction.atomic():
        key = _create(
            user=user,
            org=org,
            name=name,
            secret=secret,
            scopes=scope_list,
            rate_limit=rate_limit,
            expires_at=expires_at,
            rotated_from=rotated_from,
            sandbox_id=sandbox_id,
        )
        changes = {"name": name, "user": user.get_username(), "scopes": scope_list, "test": test}
        if expires_at is not None:
            changes["expiresAt"] = expires_at.isoformat()
        if sandbox_id:
            changes["sandbox"] = sandbox_id
        if rotated_from is None:
            record("key.created", target=key, changes=changes)
        signals.api_key_event.send(sender=ApiKey, key=key, type="key.created")
    return key, secret


def _create(*, user, org, name, secret, scopes, rate_limit, expires_at, rotated_from, sandbox_id) -> ApiKey:
    return ApiKey.objects.create(
        user=user,
        org=org,
        name=name,
        key_hash=hash_key(secret),
        key_prefix=secret[:8],
        display=display_prefix(secret),
        scopes=scopes,
        rate_limit=rate_limit,
        expires_at=expires_at,
        rotated_from=rotated_from,
        sandbox_id=sandbox_id,
    )


def acting_org(*, user, key: ApiKey | None = None) -> Organization:
    """The organization a request acts in: its key's, else (a signed-in user, a management
    command) the user's personal one."""
    if key is not None and key.org_id is not None:
        return key.org
    return personal_org_ensure(user=user)


def api_key_broader_than(
    *, creator: ApiKey, scopes, expires_at: dt.datetime | None, test: bool, rate_limit: str
) -> dict[str, object]:
    """What a key with these properties has beyond `creator`, by API field name (empty: nothing).

    The one "never broader than the calling key" rule, for create, rotate and revoke: scopes a
    subset, expiry no later (never-expiring is the latest), a test key only reaches test keys, rate
    limit no higher (an empty one is the server default).
    """
    broader: dict[str, object] = {}
    extra = [scope for scope in scopes if scope not in creator.scopes]
    if extra:
        broader["scopes"] = extra
    if creator.expires_at is not None and (expires_at is None or expires_at > creator.expires_at):
        broader["expiresAt"] = expires_at
    if creator.is_test and not test:
        broader["test"] = False
    rate = rate_limit or settings.VIBEBOX_RATE_LIMIT
    if rate_per_second(rate) > rate_per_second(creator.rate_limit or settings.VIBEBOX_RATE_LIMIT):
        broader["rateLimit"] = rate
    return broader


def api_key_ensure_no_broader(*, creator: ApiKey | None, action: str, **properties) -> None:
    """Raises `scope_escalation` naming what is broader; no creator (a signed-in user) is not limited."""
    if creator is None:
        return
    broader = api_key_broader_than(creator=creator, **properties)
    if not broader:
        return
    details: dict[str, object] = {"broader": list(broader)}
    if "scopes" in broader:
        details["scopes"] = broader["scopes"]
    raise errors.ScopeEscalation(
        f"A key cannot {action} a key broader than itself ({', '.join(broader)}).", details=details
    )


def _ensure_may_act_on(*, key: ApiKey, creator: ApiKey | None, action: str) -> None:
    """A key may always act on itself; on another key only if that one is no broader."""
    if creator is None or creator.pk == key.pk:
        return
    api_key_ensure_no_broader(
        creator=creator,
        action=action,
        scopes=key.scopes,
        expires_at=key.expires_at,
        test=key.is_test,
        rate_limit=key.rate_limit,
    )


def api_key_rotate(
    *, key: ApiKey, grace_seconds: float | None = None, creator: ApiKey | None = None
) -> tuple[ApiKey, str]:
    """A new key with the same name, scopes and limits; the old one expires after the grace period.

    `creator` (the calling key) may rotate itself or a key no broader than itself.
    """
    _ensure_may_act_on(key=key, creator=creator, action="rotate")
    if not key.is_active():
        raise errors.KeyInactive("Only an active key can be rotated.")  # a state, not bad input: 409
    grace = settings.VIBEBOX_KEY_ROTATION_GRACE if grace_seconds is None else grace_seconds
    with transaction.atomic():
        new_key, secret = api_key_create(
            user=key.user,
            name=key.name,
            org=key.org,
            scopes=list(key.scopes),
            expires_at=key.expires_at,
            test=key.is_test,
            rate_limit=key.rate_limit,
            rotated_from=key,
            sandbox_id=key.sandbox_id,
        )
        old_expiry = timezone.now() + dt.timedelta(seconds=grace)
        if key.expires_at is None or key.expires_at > old_expiry:
            ApiKey.objects.filter(pk=key.pk).update(expires_at=old_expiry)
            keycache.bump()
        record("key.rotated", target=key, changes={"newKey": new_key.pk, "oldExpiresAt": old_expiry.isoformat()})
    return new_key, secret


def api_key_revoke(*, key: ApiKey, creator: ApiKey | None = None) -> ApiKey:
    """Revokes the key; the ephemeral sandboxes it created are destroyed with it.

    `creator` (the calling key) may revoke itself or a key no broader than itself.
    """
    _ensure_may_act_on(key=key, creator=creator, action="revoke")
    with transaction.atomic():
        now = timezone.now()
        if ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now):
            record("key.revoked", target=key, changes={"name": key.name, "user": key.user.get_username()})
            key.revoked_at = now
            signals.api_key_event.send(sender=ApiKey, key=key, type="key.revoked")
    keycache.bump()
    key.refresh_from_db()
    transaction.on_commit(lambda: signals.api_key_revoked.send(sender=ApiKey, key=key))
    return key


def api_keys_revoke_for_sandbox(*, sandbox_id: str, keep: ApiKey | None = None) -> list[str]:
    """Revokes the keys bound to a sandbox (made for it, e.g. by claude/enable), but `keep`.

    Called by the sandbox's destroy and by enabling Claude again; answers the revoked ids.
    """
    if not sandbox_id:
        return []
    bound = ApiKey.objects.filter(sandbox_id=sandbox_id, revoked_at__isnull=True)
    if keep is not None:
        bound = bound.exclude(pk=keep.pk)
    revoked = []
    for key in bound:
        api_key_revoke(key=key)
        revoked.append(key.pk)
    return revoked


def api_key_use(*, secret: str) -> ApiKey | None:
    """The active key with this secret, with one request counted; None when there is none
    (malformed, unknown, expired, revoked, or its user inactive). A key seen before costs one Redis
    round trip and no query (keycache.py)."""
    if not well_formed(secret):
        return None
    key_hash, now = hash_key(secret), timezone.now()
    key, generation = keycache.get(key_hash)
    if (
        key is not None
        and key.is_active(now)
        and key.user.is_active
        and usage.count_if_current(key=key, now=now, generation=generation)
    ):
        _record_last_use(key, key_hash, now)
        return key
    generation = keycache.current()  # before the read: a change meanwhile moves it past this
    key = api_key_authenticate(secret=secret)
    if key is None:
        return None
    keycache.put(key_hash, key, generation)
    usage.count(key=key, now=now)
    _record_last_use(key, key_hash, now)
    return key


def _record_last_use(key: ApiKey, key_hash: str, now: dt.datetime) -> None:
    """Refreshes the key's last use, at most once a minute."""
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
        keycache.used(key_hash, now)
