"""What the sandboxes app does when lower apps announce something (connected in SandboxesConfig.ready)."""

from django.dispatch import receiver

from apps.keys.signals import api_key_revoked

from .services.create import sandboxes_destroy_ephemeral_of_key


@receiver(api_key_revoked, dispatch_uid="sandboxes.destroy_ephemeral_of_key")
def _destroy_ephemeral_of_key(*, key, **_) -> None:
    """The ephemeral sandboxes a key created go with it."""
    sandboxes_destroy_ephemeral_of_key(key_id=key.pk)
