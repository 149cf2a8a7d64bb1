from django.db import models


class BuildState(models.TextChoices):
    READY = "ready"
    QUEUED = "queued"
    BUILDING = "building"
    FAILED = "failed"


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
    smoke = models.TextField(blank=True)  # a command that proves the image works (exit 0)
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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
