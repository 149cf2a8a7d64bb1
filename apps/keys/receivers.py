"""Edits that bypass the keys' services (the admin, a user's deactivation) and membership changes
in an organization still reach every process's key cache (keycache.py)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.orgs.signals import membership_changed

from . import keycache
from .models import ApiKey

# Saves that change nothing a key's authentication depends on.
_HARMLESS = {ApiKey: {"last_used_at"}, get_user_model(): {"last_login"}}


@receiver(post_save, sender=ApiKey)
@receiver(post_save, sender=get_user_model())
@receiver(post_delete, sender=ApiKey)
@receiver(post_delete, sender=get_user_model())
def _keys_changed(sender, update_fields=None, created=False, **kwargs):
    if created or (update_fields and set(update_fields) <= _HARMLESS[sender]):
        return
    keycache.bump()


@receiver(membership_changed)
def _membership_changed(sender, **kwargs):
    """A member removed (or their role changed): their keys are read again, and refused if gone."""
    keycache.bump()
