from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.marketplace.models import BuildState, FailedStep, SubmissionState, Visibility
from apps.marketplace.submissions import log_after
from vibebox.api.serializers import StrictSerializer


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
    claude = serializers.DictField(
        help_text="Claude Code settings (template.yaml `claude:`): autoStart (enabled at create with the creating"
        " key's rights), model, permissions {mode, allow, deny}, mcpServers; {} when it has none."
    )
    nodeLabels = serializers.DictField(
        source="node_labels",
        child=serializers.CharField(),
        help_text="The node labels its sandboxes' engine must have (template.yaml `nodeLabels:`, e.g. "
        '{"gpu": "true"}), merged with a create\'s; {} for none.',
    )
    builtIn = serializers.BooleanField(source="built_in")
    imageSize = serializers.IntegerField(
        source="image_size", allow_null=True, help_text="Bytes, measured after the build (shared layers included)."
    )
    buildState = serializers.ChoiceField(source="build_state", choices=BuildState.choices)
    buildMessage = serializers.CharField(source="build_message", help_text="Why the last build failed, if it did.")
    buildProgress = serializers.SerializerMethodField()
    buildSeconds = serializers.FloatField(source="build_seconds", allow_null=True)
    official = serializers.BooleanField(help_text="A built-in (official) template; else a marketplace one.")
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    latestVersion = serializers.CharField(
        source="latest_version", help_text="A marketplace template's newest published version (pin it: name@version)."
    )

    @extend_schema_field(BuildProgressSerializer(allow_null=True))
    def get_buildProgress(self, template):
        progress = template.build_progress or {}
        if template.build_state != BuildState.BUILDING or "steps" not in progress:
            return None
        return {"step": int(progress["step"]), "steps": int(progress["steps"])}


# The marketplace (docs/marketplace.md) -------------------------------------------------------


class SubmissionCreateSerializer(StrictSerializer):
    dockerfile = serializers.CharField(help_text="The Dockerfile (at most 64 KiB).", allow_blank=True)
    templateYaml = serializers.CharField(help_text="The template.yaml (docs/marketplace.md).", allow_blank=True)
    context = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="The build context: a tar (plain, gzip, bzip2 or xz), base64; at most VIBEBOX_TEMPLATE_CONTEXT_MAX "
        "bytes (multipart uploads suit large ones).",
    )
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE, required=False)


class SubmissionCreateMultipartSerializer(StrictSerializer):
    """The multipart form (schema only: the view reads the parts itself, refusing unknown ones)."""

    dockerfile = serializers.FileField(help_text="The Dockerfile (a file or a text field).")
    templateYaml = serializers.FileField(help_text="The template.yaml (a file or a text field).")
    context = serializers.FileField(required=False, help_text="The build context: a tar file.")
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE, required=False)


class SubmissionSerializer(serializers.Serializer):
    id = serializers.CharField()
    template = serializers.CharField(source="template_name")
    version = serializers.CharField()
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    state = serializers.ChoiceField(choices=SubmissionState.choices)
    failedStep = serializers.ChoiceField(
        source="failed_step",
        choices=[("", ""), *FailedStep.choices],
        help_text="When failed: the step that failed (upload, build, policy, smoke); else empty.",
    )
    message = serializers.CharField(help_text="Why it failed or was rejected.")
    org = serializers.CharField(source="org.slug")
    user = serializers.SerializerMethodField()
    contextBytes = serializers.IntegerField(source="context_bytes")
    image = serializers.CharField()
    imageSize = serializers.IntegerField(source="image_size", allow_null=True)
    buildSeconds = serializers.FloatField(source="build_seconds", allow_null=True)
    logSize = serializers.IntegerField(source="log_size", help_text="Bytes of build log ever appended.")
    reviewer = serializers.SerializerMethodField()
    reviewReason = serializers.CharField(source="review_reason")
    templateVersion = serializers.SerializerMethodField(help_text="name@version once a version row exists.")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_user(self, submission):
        return submission.user.get_username() if submission.user_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_reviewer(self, submission):
        return submission.reviewer.get_username() if submission.reviewer_id else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_templateVersion(self, submission):
        if submission.template_version_id is None:
            return None
        return f"{submission.template_name}@{submission.version}"


class SubmissionDetailSerializer(SubmissionSerializer):
    buildLog = serializers.SerializerMethodField(
        help_text="The build log (its head and newest tail are kept, at most 1 MiB); with ?logOffset=N, "
        "only what follows byte N."
    )
    logOffset = serializers.SerializerMethodField(help_text="The byte offset buildLog starts at.")
    smokeOutput = serializers.CharField(source="smoke_output")
    spec = serializers.DictField(help_text="The template.yaml as accepted.")

    def _offset(self):
        return self.context.get("log_offset")

    def get_buildLog(self, submission) -> str:
        offset = self._offset()
        return submission.build_log if offset is None else log_after(submission, offset)

    def get_logOffset(self, submission) -> int:
        offset = self._offset()
        if offset is None:
            return 0
        return max(0, submission.log_size - len(self.get_buildLog(submission).encode()))


class SubmissionReviewSerializer(StrictSerializer):
    approve = serializers.BooleanField()
    reason = serializers.CharField(
        required=False, allow_blank=True, max_length=1000, help_text="Required to reject; shown to the author."
    )

    def validate(self, attrs):
        if not attrs["approve"] and not attrs.get("reason", "").strip():
            raise serializers.ValidationError(
                {"reason": [serializers.ErrorDetail("A rejection needs a reason.", code="reason_required")]}
            )
        return attrs


class RatingSerializer(serializers.Serializer):
    average = serializers.FloatField(allow_null=True)
    count = serializers.IntegerField()


class UsageSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Sandboxes ever created from it.")
    last30Days = serializers.IntegerField()


class DeprecationSerializer(serializers.Serializer):
    message = serializers.CharField()
    replacement = serializers.CharField(allow_blank=True)


class CatalogueTemplateSerializer(serializers.Serializer):
    name = serializers.CharField()
    displayName = serializers.CharField(source="display_name")
    description = serializers.CharField()
    icon = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    languages = serializers.ListField(child=serializers.CharField())
    official = serializers.BooleanField()
    builtIn = serializers.BooleanField(source="built_in")
    featured = serializers.BooleanField()
    featuredRank = serializers.IntegerField(source="featured_rank")
    visibility = serializers.ChoiceField(choices=Visibility.choices)
    owner = serializers.SerializerMethodField(help_text="The owning organization's slug; null for official ones.")
    latestVersion = serializers.CharField(source="latest_version", help_text="Empty for built-in templates.")
    imageSize = serializers.IntegerField(source="image_size", allow_null=True)
    deprecation = serializers.SerializerMethodField()
    rating = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_owner(self, template):
        return template.owner_org.slug if template.owner_org_id else None

    @extend_schema_field(DeprecationSerializer(allow_null=True))
    def get_deprecation(self, template):
        if not template.deprecation:
            return None
        return {"message": template.deprecation, "replacement": template.replacement}

    @extend_schema_field(RatingSerializer)
    def get_rating(self, template):
        average = getattr(template, "rating_avg", None)
        return {"average": round(average, 2) if average is not None else None, "count": template.rating_count}

    @extend_schema_field(UsageSerializer)
    def get_usage(self, template):
        return {"total": template.uses_total, "last30Days": template.uses_recent}


class TemplateVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    changelog = serializers.CharField()
    imageSize = serializers.IntegerField(source="image_size", allow_null=True)
    publishedAt = serializers.DateTimeField(source="published_at", allow_null=True)
    reviewed = serializers.BooleanField(help_text="Staff reviewed it (a public template exposes only these to others).")
    yanked = serializers.BooleanField()
    yankedAt = serializers.DateTimeField(source="yanked_at", allow_null=True)
    yankReason = serializers.CharField(source="yank_reason")


class CatalogueTemplateDetailSerializer(CatalogueTemplateSerializer):
    readme = serializers.CharField()
    ports = serializers.ListField(child=serializers.DictField())
    smoke = serializers.CharField()
    workdir = serializers.CharField()
    defaultResources = serializers.DictField(source="default_resources")
    versions = serializers.SerializerMethodField()

    @extend_schema_field(TemplateVersionSerializer(many=True))
    def get_versions(self, template):
        return TemplateVersionSerializer(self.context.get("versions", []), many=True).data


class ReviewSerializer(serializers.Serializer):
    user = serializers.CharField(source="user.get_username")
    rating = serializers.IntegerField(min_value=1, max_value=5)
    text = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")


class ReviewWriteSerializer(StrictSerializer):
    rating = serializers.IntegerField(min_value=1, max_value=5)
    text = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class YankSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class DeprecateSerializer(StrictSerializer):
    message = serializers.CharField(allow_blank=True, max_length=500, help_text="Empty clears the notice.")
    replacement = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")


class FeatureSerializer(StrictSerializer):
    featured = serializers.BooleanField()
    rank = serializers.IntegerField(required=False, default=0, min_value=-1000, max_value=1000)
