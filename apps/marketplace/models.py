from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from vibebox.ids import random_id


def new_submission_id() -> str:
    return random_id("sub_", 20)


class BuildState(models.TextChoices):
    READY = "ready"
    QUEUED = "queued"
    BUILDING = "building"
    FAILED = "failed"


class Visibility(models.TextChoices):
    PUBLIC = "public"
    PRIVATE = "private"


class Template(models.Model):
    """A sandbox template: an image plus how to run it. Built-in ones are seeded from images/."""

    name = models.SlugField(max_length=64, unique=True)
    aliases = models.JSONField(default=list, blank=True)  # other names it answers to
    display_name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    image = models.CharField(max_length=200)  # the tag built for this version
    language = models.CharField(max_length=32, blank=True)
    languages = models.JSONField(default=list)
    user = models.CharField(max_length=64, blank=True)  # non-root user to run as
    uid = models.PositiveIntegerField(default=1000)  # owner of uploaded files
    gid = models.PositiveIntegerField(default=1000)
    workdir = models.CharField(max_length=200, default="/workspace")
    default_env = models.JSONField(default=dict)
    ports = models.JSONField(default=list)
    pre_installed = models.JSONField(default=dict)
    cap_add = models.JSONField(default=list)
    runtime = models.CharField(max_length=32, default="runc")
    package_managers = models.JSONField(default=list, blank=True)
    # template.yaml's `network:` (apps/orgs/network.py): the default egress policy of its
    # sandboxes, keys it sets only; null: none.
    network = models.JSONField(null=True, blank=True)
    # template.yaml's `nodeLabels:` (apps/orgs/labels.py): the node labels its sandboxes' engine must
    # have ({"gpu": "true"}), merged with a create's; {}: none.
    node_labels = models.JSONField(default=dict, blank=True)
    smoke = models.TextField(blank=True)  # a command that proves the image works (exit 0)
    # template.yaml's `claude:` (apps/marketplace/template_keys.py): {autoStart, model,
    # permissions, mcpServers}; {} for a template without Claude Code settings.
    claude = models.JSONField(default=dict, blank=True)
    services = models.TextField(blank=True)  # run (absolute path, as the user) after every start
    # The image: "" until its first build finishes (an older built image stays in use while a
    # new version builds). Its size is measured after the build.
    build_state = models.CharField(max_length=16, choices=BuildState.choices, default=BuildState.READY)
    build_message = models.CharField(max_length=1000, blank=True)
    build_progress = models.JSONField(default=dict, blank=True)  # {"step": n, "steps": m} while building
    build_seconds = models.FloatField(null=True, blank=True)
    image_size = models.BigIntegerField(null=True, blank=True)  # bytes
    built_in = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    # The marketplace (docs/marketplace.md). Built-ins: official, public, no owner.
    owner_org = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="templates"
    )
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    official = models.BooleanField(default=False)
    tags = models.JSONField(default=list, blank=True)
    readme = models.TextField(blank=True)
    icon = models.CharField(max_length=200, blank=True)  # an emoji or an https URL
    default_resources = models.JSONField(default=dict, blank=True)  # {cpu, memory, disk}
    featured = models.BooleanField(default=False)
    featured_rank = models.IntegerField(default=0)
    deprecation = models.CharField(max_length=500, blank=True)
    replacement = models.CharField(max_length=64, blank=True)
    # A marketplace template's newest published non-yanked version ("" for built-ins); `image`
    # mirrors that version's image.
    latest_version = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class VersionState(models.TextChoices):
    CANDIDATE = "candidate"  # built, being smoke tested or awaiting review: never creatable by name
    PUBLISHED = "published"


class TemplateVersion(models.Model):
    """One semantic version of a marketplace template; immutable once published (only the yank
    fields change)."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=32)
    image = models.CharField(max_length=200)
    image_size = models.BigIntegerField(null=True, blank=True)
    spec = models.JSONField(default=dict, blank=True)  # the template.yaml as accepted
    changelog = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=VersionState.choices, default=VersionState.CANDIDATE)
    # Staff reviewed it (a public submission approved): a public template exposes, takes as its
    # latest and lets other organizations pin only reviewed versions.
    reviewed = models.BooleanField(default=False)
    yanked = models.BooleanField(default=False)
    yanked_at = models.DateTimeField(null=True, blank=True)
    yank_reason = models.CharField(max_length=500, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    submission = models.OneToOneField(
        "Submission", null=True, blank=True, on_delete=models.SET_NULL, related_name="candidate"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template_id", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["template", "version"], name="template_version_unique")]

    def __str__(self):
        return f"{self.template_id}@{self.version}"


class SubmissionState(models.TextChoices):
    QUEUED = "queued"
    BUILDING = "building"
    SMOKE_TESTING = "smoke_testing"
    AWAITING_REVIEW = "awaiting_review"
    PUBLISHED = "published"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FailedStep(models.TextChoices):
    UPLOAD = "upload"
    BUILD = "build"
    POLICY = "policy"
    SMOKE = "smoke"


class Submission(models.Model):
    """A template version sent for validation (apps/marketplace/states.py moves it)."""

    id = models.CharField(primary_key=True, max_length=32, default=new_submission_id, editable=False)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="template_submissions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="template_submissions"
    )
    template_name = models.SlugField(max_length=64)
    version = models.CharField(max_length=32)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE)
    state = models.CharField(max_length=16, choices=SubmissionState.choices, default=SubmissionState.QUEUED)
    failed_step = models.CharField(max_length=16, choices=FailedStep.choices, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    dockerfile = models.TextField()
    context_path = models.CharField(max_length=500, blank=True)  # DATA_DIR/marketplace/submissions/<id>.tar
    context_bytes = models.BigIntegerField(default=0)
    spec = models.JSONField(default=dict)  # the template.yaml, validated
    build_log = models.TextField(blank=True)  # capped: its head and its newest tail
    log_size = models.BigIntegerField(default=0)  # bytes ever appended (the stream's offsets)
    log_head = models.IntegerField(default=0)  # bytes of build_log's kept head once cut (0: never cut)
    smoke_output = models.TextField(blank=True)
    image = models.CharField(max_length=200, blank=True)
    image_size = models.BigIntegerField(null=True, blank=True)
    build_seconds = models.FloatField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    review_reason = models.CharField(max_length=1000, blank=True)
    template_version = models.ForeignKey(
        TemplateVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["org", "-created_at"]), models.Index(fields=["state"])]

    def __str__(self):
        return self.id


class Review(models.Model):
    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="template_reviews")
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="template_reviews")
    rating = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    text = models.TextField(blank=True, max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [models.UniqueConstraint(fields=["template", "user"], name="template_review_one_per_user")]

    def __str__(self):
        return f"{self.template_id} {self.rating}/5 by {self.user_id}"


class TemplateUse(models.Model):
    """A sandbox created from a template (written by sandboxes' create): usage counts and who may review."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="uses")
    version = models.CharField(max_length=32, blank=True)
    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["template", "created_at"]), models.Index(fields=["template", "user"])]

    def __str__(self):
        return f"{self.template_id}@{self.version or '-'} by {self.org_id}"
