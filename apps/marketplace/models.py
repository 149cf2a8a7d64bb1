from django.db import models


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
    built_in = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
