from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.marketplace.models import BuildState


class BuildProgressSerializer(serializers.Serializer):
    step = serializers.IntegerField(help_text="The Dockerfile step being run.")
    steps = serializers.IntegerField(help_text="Of this many.")


class TemplateSerializer(serializers.Serializer):
    name = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    displayName = serializers.CharField(source="display_name")
    description = serializers.CharField()
    version = serializers.IntegerField()
    image = serializers.CharField(help_text="The image tag sandboxes start from; empty until its first build finishes.")
    language = serializers.CharField()
    languages = serializers.ListField(child=serializers.CharField())
    packageManagers = serializers.ListField(source="package_managers", child=serializers.CharField())
    user = serializers.CharField()
    workdir = serializers.CharField(help_text="The default working directory of commands.")
    defaultEnv = serializers.DictField(source="default_env", child=serializers.CharField())
    ports = serializers.ListField(child=serializers.DictField(), help_text="Ports the template expects to serve.")
    preInstalled = serializers.DictField(source="pre_installed")
    smoke = serializers.CharField(help_text="A shell command that exits 0 when the image works.")
    builtIn = serializers.BooleanField(source="built_in")
    imageSize = serializers.IntegerField(
        source="image_size", allow_null=True, help_text="Bytes, measured after the build (shared layers included)."
    )
    buildState = serializers.ChoiceField(source="build_state", choices=BuildState.choices)
    buildMessage = serializers.CharField(source="build_message", help_text="Why the last build failed, if it did.")
    buildProgress = serializers.SerializerMethodField()
    buildSeconds = serializers.FloatField(source="build_seconds", allow_null=True)

    @extend_schema_field(BuildProgressSerializer(allow_null=True))
    def get_buildProgress(self, template):
        progress = template.build_progress or {}
        if template.build_state != BuildState.BUILDING or "steps" not in progress:
            return None
        return {"step": int(progress["step"]), "steps": int(progress["steps"])}
