"""Sign-in lockout for the two password forms: the dashboard's /login/ and /admin/login/.

After VIBEBOX_LOGIN_MAX_FAILURES failed sign-ins for one user name (case-folded) from one address
(REMOTE_ADDR) within VIBEBOX_LOGIN_COOLOFF, that pair is locked out for VIBEBOX_LOGIN_COOLOFF: the
form answers 429 with the reason and Retry-After, without checking the password, so even the right
one is refused. Other user names and other addresses are not affected; a successful sign-in clears
the count.

Design: counters in the shared Redis cache, like the per-key API rate limit (apps/keys/throttles.py),
rather than django-axes. These two forms are the only places a password is checked, and a form
subclass covers both (the admin takes `AdminSite.login_form`); axes would add a dependency, a
middleware, an authentication backend in front of every `authenticate()` (which then requires the
request, as Django's test `Client.login` does not pass it) and a database row per failed attempt
that an attacker can grow. Redis keys expire on their own and every server process counts together.
When Redis is down the lockout cannot be counted, so sign-in fails closed (issue 18): the form
answers 503 "try again later" with Retry-After, before the password is checked; otherwise an
outage would be a window for unlimited password guessing. A successful sign-in whose count cannot
be cleared still signs in (the count expires on its own).
"""

import functools
import hashlib
import logging
import math
import time

import redis
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError

logger = logging.getLogger(__name__)


def _ident(username: str, address: str) -> str:
    return hashlib.sha256(f"{username.casefold()}\0{address}".encode()).hexdigest()


RETRY_AFTER_UNAVAILABLE = 30  # seconds to wait when the lockout cannot be counted


class Uncountable(Exception):
    """Redis is unreachable: the lockout can be neither checked nor counted."""


def locked_for(ident: str) -> float:
    """Seconds the pair is still locked out (0: not locked); Uncountable when Redis is down."""
    try:
        until = cache.get(f"login-locked:{ident}")
    except redis.RedisError as exc:
        raise Uncountable(str(exc)) from None
    return max(0.0, until - time.time()) if until else 0.0


def record_failure(ident: str) -> float:
    """Counts a failed sign-in; answers the lockout's length when this one reached the limit."""
    cooloff = float(settings.VIBEBOX_LOGIN_COOLOFF)
    key = f"login-failures:{ident}"
    try:
        cache.add(key, 0, timeout=cooloff)
        failures = cache.incr(key)
        if failures < settings.VIBEBOX_LOGIN_MAX_FAILURES:
            return 0.0
        cache.set(f"login-locked:{ident}", time.time() + cooloff, timeout=cooloff)
        cache.delete(key)
    except redis.RedisError as exc:
        raise Uncountable(str(exc)) from None
    logger.warning("sign-in locked out for %ss after %s failures (%s)", int(cooloff), failures, ident[:12])
    return cooloff


def record_success(ident: str) -> None:
    try:
        cache.delete(f"login-failures:{ident}")
    except redis.RedisError as exc:  # signs in anyway: the count expires on its own
        logger.warning("sign-in count not cleared, Redis unavailable: %s", exc)


def _wait_text(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


class LoginLimitMixin:
    """For an AuthenticationForm: refuses locked-out pairs before the password is checked."""

    locked_out = False

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if self.request is None or username is None or not password:
            return super().clean()
        ident = _ident(username, self.request.META.get("REMOTE_ADDR", ""))
        try:
            wait = locked_for(ident)
        except Uncountable as exc:
            self._unavailable(exc)
        if wait:
            self._lock(wait)
        try:
            cleaned = super().clean()
        except ValidationError:
            try:
                wait = record_failure(ident)
            except Uncountable as exc:
                self._unavailable(exc)
            if wait:
                self._lock(wait)
            raise
        record_success(ident)
        return cleaned

    def _unavailable(self, exc: Uncountable):
        logger.error("sign-in refused, the lockout cannot be counted (Redis unavailable): %s", exc)
        self.locked_out = True  # the dashboard's template then shows this message, not "do not match"
        self.request.login_unavailable = True  # read by `limited`, which makes the answer a 503
        raise ValidationError(
            "Sign-in is unavailable for a moment (a service it needs is down). Please try again later.",
            code="unavailable",
        )

    def _lock(self, wait: float):
        self.locked_out = True
        self.request.login_locked_for = wait  # read by `limited`, which makes the answer a 429
        raise ValidationError(
            f"Too many failed sign-ins for this user name from your address. Try again in {_wait_text(wait)}.",
            code="locked_out",
        )


class LimitedAuthenticationForm(LoginLimitMixin, AuthenticationForm):
    pass


class LimitedAdminAuthenticationForm(LoginLimitMixin, AdminAuthenticationForm):
    pass


def limited(view):
    """Turns a login view's answer into a 429 with Retry-After when the form locked the caller out,
    or a 503 with Retry-After when the lockout could not be counted."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        wait = getattr(request, "login_locked_for", 0)
        if wait:
            response.status_code = 429
            response["Retry-After"] = str(math.ceil(wait))
        elif getattr(request, "login_unavailable", False):
            response.status_code = 503
            response["Retry-After"] = str(RETRY_AFTER_UNAVAILABLE)
        return response

    return wrapped
