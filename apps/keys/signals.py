"""What the keys app announces to higher apps, which subscribe in their AppConfig.ready()."""

from django.dispatch import Signal

# A key was revoked (sent after the revoking transaction commits): `key`, the ApiKey.
api_key_revoked = Signal()
