"""What the organizations app tells the apps above it (they connect receivers; orgs imports none of them)."""

from django.dispatch import Signal

# A membership was added, changed or removed (role, teams, custom role): what its user may do in
# the org changed. Sent on commit, with `org` and `user`. The keys app drops its cached keys.
membership_changed = Signal()

# An organization is about to be deleted (sent inside the delete's transaction, with `org`). A
# receiver that owns what must not go silently raises an ApplicationError to refuse (sandboxes:
# live sandboxes or snapshots), else removes what only records it (destroyed sandboxes' rows).
org_deleting = Signal()

# An owner asked for the organization's erasure (apps/orgs/services.org_erase; sent before the
# delete, outside any transaction, with `org`): receivers end what lives outside the database rows
# (sandboxes: destroy them, delete snapshots; keys: revoke them) so org_deleting then lets it go.
# A receiver that cannot finish raises an ApplicationError: the organization stays, to retry.
# Sent first with `check=True`: receivers then change nothing and return the labels of the models
# they empty ("sandboxes.sandbox"), so what else would stop the delete is refused up front.
org_erasing = Signal()

# A member is about to be removed from an organization (sent inside the removal's transaction, with
# `org` and `user`): receivers drop what was given to them there (sandboxes: their grants).
member_removing = Signal()
