import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiKey

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Per-key request rate (the key's own `rate_limit`, else VIBEBOX_RATE_LIMIT), kept in the
    shared Redis cache so every server process counts together. Anonymous callers are limited
    per address at the same default rate. Fails open (with a warning) if Redis is down."""

    scope = "key"

    def __init__(self):  # the rate depends on the request, see allow_request
        pass

    def allow_request(self, request, view):
        key = request.auth if isinstance(request.auth, ApiKey) else None
        self.rate = (key.rate_limit if key else "") or settings.VIBEBOX_RATE_LIMIT
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception as exc:  # the cache is unreachable: do not turn that into 500s
            logger.warning("rate limiting skipped: %s", exc)
            return True

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            ident = request.auth.pk
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"addr-{self.get_ident(request)}"
        return f"throttle:{ident}"
