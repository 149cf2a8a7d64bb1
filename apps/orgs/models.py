from django.conf import settings
from django.db import models

from vibebox.ids import random_id

from .permissions import BUILTIN_ROLES


def new_org_id() -> str:
    return random_id("org_", 16)


class Organization(models.Model):
    """The unit of tenancy: sandboxes, keys, snapshots and runs belong to one."""

    id = models.CharField(primary_key=True, max_length=24, default=new_org_id, editable=False)
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    # Set for a user's personal organization (made for every user, never deleted while they exist).
    personal_for = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="personal_org"
    )
    # {manager: URL} package registries used instead of the public ones by installs in this
    # organization's sandboxes (apps/sandboxes/services/packages.py); set by org.manage.
    registry_mirrors = models.JSONField(default=dict, blank=True)
    # The organization's default egress policy for new sandboxes (apps/orgs/network.py), keys
    # it sets only: {"internet": false, "allow": [...]}; null: the platform's. Admin-editable.
    egress_network = models.JSONField(null=True, blank=True)
    # The node labels the engine of every new sandbox of the organization must have (apps/orgs/labels.py;
    # dedicated nodes, a region), merged with a create's; {}: none. Set by org.manage.
    node_labels = models.JSONField(default=dict, blank=True)
    # White-label overrides of the installation's brand for this organization's dashboard
    # (apps/orgs/branding.py OVERRIDES: name, logoUrl, primaryColor...); set by org.manage.
    branding = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug

    @property
    def personal(self) -> bool:
        return self.personal_for_id is not None


class Role(models.Model):
    """A custom role of one organization: a name and a subset of permissions.PERMISSIONS."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="roles")
    name = models.CharField(max_length=50)
    description = models.CharField(max_length=200, blank=True, default="")
    permissions = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="orgs_role_unique_name")]

    def __str__(self):
        return f"{self.org.slug}/{self.name}"


class RoleHolder(models.Model):
    """A built-in role by name, or a custom role of the same organization: exactly one of the two."""

    role = models.CharField(max_length=20, blank=True, default="", choices=[(name, name) for name in BUILTIN_ROLES])
    custom_role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        abstract = True

    @property
    def role_name(self) -> str:
        return self.custom_role.name if self.custom_role_id else self.role


class Membership(RoleHolder):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["org", "user"], name="orgs_membership_unique"),
            models.CheckConstraint(
                condition=(models.Q(role="") & models.Q(custom_role__isnull=False))
                | (~models.Q(role="") & models.Q(custom_role__isnull=True)),
                name="orgs_membership_one_role",
            ),
        ]

    def __str__(self):
        return f"{self.user} in {self.org} ({self.role_name})"


class Team(RoleHolder):
    """A named set of members of one organization; members inherit the team's role. A team may
    have no role (a grant target only): role "" and no custom role."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=50)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="orgs_team_unique_name")]

    def __str__(self):
        return f"{self.org.slug}/{self.name}"


def new_invitation_id() -> str:
    return random_id("inv_", 16)


class Invitation(RoleHolder):
    """An invitation to join an organization with a role, sent by email as a signed link
    (apps/orgs/tokens.py: the link carries the id, signed; no token is stored). Pending while
    neither accepted nor revoked (an expired one stays pending until then: inviting the address
    again sends it anew); one pending invitation per organization and address."""

    id = models.CharField(primary_key=True, max_length=24, default=new_invitation_id, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254, help_text="Lowercased.")
    # A finished invitation goes with its custom role; a pending one keeps the role from being
    # deleted (services.role_delete refuses, as for members).
    custom_role = models.ForeignKey(Role, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["org", "email"],
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="orgs_invitation_one_pending",
            ),
            models.CheckConstraint(
                condition=(models.Q(role="") & models.Q(custom_role__isnull=False))
                | (~models.Q(role="") & models.Q(custom_role__isnull=True)),
                name="orgs_invitation_one_role",
            ),
        ]

    def __str__(self):
        return f"{self.email} to {self.org} ({self.role_name})"

    @property
    def pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None

    def expired_at(self, now) -> bool:
        return now >= self.expires_at
