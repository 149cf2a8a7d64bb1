from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vibebox.api.serializers import StrictSerializer, pattern_field

from ..mirrors import MIRROR_MANAGERS, MIRROR_URL
from ..permissions import PERMISSIONS

# As services.SLUG_PATTERN (published in the document).
SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$"
SLUG_MESSAGE = "slug is 1 to 50 lowercase letters, digits and hyphens, not starting or ending with a hyphen."


class OrganizationSerializer(serializers.Serializer):
    id = serializers.CharField()
    slug = serializers.SlugField()
    name = serializers.CharField()
    personal = serializers.BooleanField(help_text="A user's own organization: one member, never deleted.")
    role = serializers.CharField(help_text="The caller's role here (built-in or custom).")
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=list(PERMISSIONS)), help_text="The caller's permissions here."
    )
    registryMirrors = serializers.DictField(
        source="registry_mirrors",
        child=serializers.CharField(),
        help_text="Package registries used instead of the public ones by installs in this organization's "
        "sandboxes: {manager: URL} for pip (also uv), npm, cargo, gem (also bundler), go, maven.",
    )
    nodeLabels = serializers.DictField(
        source="node_labels",
        child=serializers.CharField(),
        help_text="The node labels the engine of each new sandbox of the organization must have (dedicated nodes, "
        'a region), merged with a create\'s nodeLabels; {} for none (docs/nodes.md, "Placement").',
    )
    createdAt = serializers.DateTimeField(source="created_at")


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            manager: {"type": "string", "nullable": True, "maxLength": 500, "pattern": f"^{MIRROR_URL.pattern}$"}
            for manager in MIRROR_MANAGERS
        },
        "additionalProperties": False,
    }
)
class RegistryMirrorsField(serializers.DictField):
    """{manager: URL or null}: checked by mirrors.validate_mirrors (code invalid_registry_mirror),
    whose rules the document states (the managers it knows, the URL's pattern)."""


class OrganizationCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    slug = pattern_field(SLUG, SLUG_MESSAGE, required=False, max_length=50, help_text="Default: made from the name.")


class OrganizationUpdateSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=100)
    slug = pattern_field(SLUG, SLUG_MESSAGE, required=False, max_length=50)
    registryMirrors = RegistryMirrorsField(
        required=False,
        child=serializers.CharField(allow_null=True, max_length=500),
        help_text="Sets the mirrors it names ({manager: URL}); a null URL removes one. Others stay.",
    )
    nodeLabels = serializers.DictField(
        required=False,
        child=serializers.CharField(max_length=63),
        help_text="Replaces the organization's node labels ({} clears them). At most 16; keys: lowercase letters, "
        "digits, '.', '_', '/', '-'; values: letters, digits, '.', '_', '-' (1-63 each).",
    )


class OrganizationEraseSerializer(StrictSerializer):
    confirm = serializers.CharField(max_length=50, help_text="The organization's slug, repeated.")


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField(source="user.username")
    email = serializers.CharField(source="user.email")
    role = serializers.CharField(source="role_name")
    createdAt = serializers.DateTimeField(source="created_at")


class MemberAddSerializer(StrictSerializer):
    not_together = ("username", "email")

    username = serializers.CharField(required=False, max_length=150, help_text="This or email.")
    email = serializers.CharField(required=False, max_length=254, help_text="This or username.")
    role = serializers.CharField(max_length=50, help_text="owner, admin, developer, viewer, billing or a custom role.")

    def validate(self, data):
        if not data.get("username") and not data.get("email"):
            raise serializers.ValidationError("Name the user: username or email.", code="user_required")
        return data


class MemberUpdateSerializer(StrictSerializer):
    role = serializers.CharField(max_length=50)


# Role and team names sit in URLs: short, lowercase.
NAME = r"^[a-z0-9][a-z0-9_-]{0,49}$"
NAME_MESSAGE = "A name is 1 to 50 lowercase letters, digits, _ and -, starting with a letter or digit."


class RoleSerializer(serializers.Serializer):
    name = serializers.CharField()
    builtIn = serializers.BooleanField(source="built_in")
    description = serializers.CharField()
    permissions = serializers.ListField(child=serializers.ChoiceField(choices=list(PERMISSIONS)))


class RoleCreateSerializer(StrictSerializer):
    name = pattern_field(NAME, NAME_MESSAGE, max_length=50)
    description = serializers.CharField(required=False, max_length=200, allow_blank=True, default="")
    permissions = serializers.ListField(child=serializers.ChoiceField(choices=list(PERMISSIONS)), max_length=50)


class RoleUpdateSerializer(StrictSerializer):
    description = serializers.CharField(required=False, max_length=200, allow_blank=True)
    permissions = serializers.ListField(
        child=serializers.ChoiceField(choices=list(PERMISSIONS)), required=False, max_length=50
    )


class TeamSerializer(serializers.Serializer):
    name = serializers.CharField()
    role = serializers.CharField(source="role_name", allow_null=True, help_text="Null: the team grants no role.")
    members = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")

    def get_members(self, team) -> list[str]:
        return sorted(user.username for user in team.members.all())

    def to_representation(self, team):
        data = super().to_representation(team)
        data["role"] = data["role"] or None
        return data


class TeamCreateSerializer(StrictSerializer):
    name = pattern_field(NAME, NAME_MESSAGE, max_length=50)
    role = serializers.CharField(required=False, max_length=50, help_text="Built-in or custom; none by default.")


class TeamUpdateSerializer(StrictSerializer):
    name = pattern_field(NAME, NAME_MESSAGE, required=False, max_length=50)
    role = serializers.CharField(required=False, allow_blank=True, max_length=50, help_text='"" takes it away.')


class TeamMemberAddSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)


# The WHATWG (HTML) pattern of a valid email address: what a browser's email field takes.
EMAIL = (
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)


class InvitationSerializer(serializers.Serializer):
    id = serializers.CharField()
    email = serializers.CharField()
    role = serializers.CharField(source="role_name")
    invitedBy = serializers.SerializerMethodField(help_text="The inviter's username; null: the user was deleted.")
    createdAt = serializers.DateTimeField(source="created_at")
    sentAt = serializers.DateTimeField(source="sent_at", help_text="When the email was last sent.")
    expiresAt = serializers.DateTimeField(source="expires_at")
    expired = serializers.SerializerMethodField(help_text="Past expiresAt: sending it again renews it.")

    def get_invitedBy(self, invitation) -> str | None:
        return invitation.invited_by.username if invitation.invited_by else None

    def get_expired(self, invitation) -> bool:
        return timezone.now() >= invitation.expires_at


class InvitationCreateSerializer(StrictSerializer):
    email = pattern_field(EMAIL, "Enter a valid email address.", max_length=254)
    role = serializers.CharField(max_length=50, help_text="owner, admin, developer, viewer, billing or a custom role.")


class InvitationAcceptSerializer(StrictSerializer):
    token = serializers.CharField(max_length=500, help_text="The token of the invitation link: /invitations/{token}.")
