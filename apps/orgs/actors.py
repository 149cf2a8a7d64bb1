"""Who acts, and where: a user inside one organization, with their permissions there.

Every read and write of an organization's objects goes through an Actor: built once per request
(apps/keys/actors.py: from the request's key, or a signed-in user's chosen organization), so a
missing permission is a 403 naming it and another organization's object is never found (404).
"""

from dataclasses import dataclass

from vibebox import exceptions as errors

from .models import Organization
from .selectors import permissions_of


@dataclass(frozen=True)
class Actor:
    user: object
    org: Organization
    permissions: frozenset[str]

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise errors.PermissionDenied(
                f"This needs the {permission} permission in {self.org.slug}.",
                details={"permission": permission, "org": self.org.slug},
            )


def actor_in(*, user, org: Organization) -> Actor:
    return Actor(user=user, org=org, permissions=permissions_of(user=user, org=org))
