"""Edits that bypass the keys' services (the admin, a user's deactivation) and membership changes
in an organization still reach every process's key cache (keycache.py)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from apps.orgs.models import Membership, Organization, Role, Team
from apps.orgs.signals import membership_changed, org_erasing

from . import keycache
from .models import ApiKey
from .services import api_key_revoke

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


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
@receiver(post_save, sender=Role)
@receiver(post_delete, sender=Role)
@receiver(post_save, sender=Team)
@receiver(post_delete, sender=Team)
@receiver(m2m_changed, sender=Team.members.through)
def _permissions_changed(sender, **kwargs):
    """Keys carry their user's permissions (selectors.api_key_authenticate): any change to a
    membership, a role or a team, through the services or the admin, has every key read again."""
    keycache.bump()


@receiver(post_save, sender=Organization)
def _org_changed(sender, created=False, **kwargs):
    """A key carries its organization (selectors.api_key_authenticate), whose settings a create
    reads (its node labels, egress policy, registry mirrors): an edit, through the services or the
    admin, has every key read again."""
    if not created:
        keycache.bump()


@receiver(membership_changed)
def _membership_changed(sender, **kwargs):
    """A member removed (or their role changed): their keys are read again, and refused if gone."""
    keycache.bump()


@receiver(org_erasing, dispatch_uid="keys.org_erasing")
def _org_erasing(*, org, check=False, **_) -> set[str] | None:
    """Erasure on request: every live key of the organization is revoked (each audited as
    key.revoked) before its rows go with the organization."""
    if check:
        return set()  # the rows cascade with the organization
    for key in ApiKey.objects.filter(org=org, revoked_at__isnull=True):
        api_key_revoke(key=key)
