"""What the keys app announces to higher apps, which subscribe in their AppConfig.ready()."""

from django.dispatch import Signal

# A key was revoked (sent after the revoking transaction commits): `key`, the ApiKey.
api_key_revoked = Signal()

# A key was created (`type` "key.created") or revoked ("key.revoked"): sent inside the writing
# transaction, with `key` (the webhooks app writes its deliveries there).
api_key_event = Signal()
