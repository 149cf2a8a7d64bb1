from rest_framework import serializers

from vibebox.api.serializers import StrictSerializer, pattern_field

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
    createdAt = serializers.DateTimeField(source="created_at")


class OrganizationCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    slug = pattern_field(SLUG, SLUG_MESSAGE, required=False, max_length=50, help_text="Default: made from the name.")


class OrganizationUpdateSerializer(StrictSerializer):
    name = serializers.CharField(required=False, max_length=100)
    slug = pattern_field(SLUG, SLUG_MESSAGE, required=False, max_length=50)


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
