"""Writes for templates: seeding built-in templates' rows and their build state (their images are
built by apps/sandboxes/images.py)."""

from django.db import transaction

from .catalog import TemplateSource
from .models import BuildState, Template, TemplateUse
from .signals import template_published
from .submissions import (  # noqa: F401  (the pipeline's calls: apps/marketplace/submissions.py)
    submission_candidate,
    submission_fail,
    submission_log_append,
    submission_passed,
    submission_progress,
    submission_publish,
    submission_reject,
    submission_review,
    submission_start,
)


def _spec_fields(source: TemplateSource) -> dict:
    spec = source.spec
    return {
        "aliases": [str(alias) for alias in spec.get("aliases") or []],
        "display_name": spec.get("displayName", source.name),
        "description": spec.get("description", ""),
        "version": int(spec.get("version", 1)),
        "language": spec.get("language", ""),
        "languages": spec.get("languages", []),
        "package_managers": [str(m) for m in spec.get("packageManagers") or []],
        "smoke": str(spec.get("smoke") or ""),
        "services": str(spec.get("services") or ""),
        "user": spec.get("user", ""),
        "uid": int(spec.get("uid", 1000)),
        "gid": int(spec.get("gid", 1000)),
        "workdir": spec.get("workdir", "/workspace"),
        "default_env": {k: str(v) for k, v in (spec.get("defaultEnv") or {}).items()},
        "ports": spec.get("ports", []),
        "pre_installed": spec.get("preInstalled", {}),
        "cap_add": spec.get("capAdd", []),
        "runtime": spec.get("runtime", "runc"),
        "built_in": True,
        "official": True,
        "visibility": "public",
        "owner_org": None,
        "is_active": True,
    }


def _adopt_renamed(source: TemplateSource) -> None:
    """A built-in template renamed with its old name kept as an alias (python-3 -> python-3.13)
    keeps its row, so its sandboxes, snapshots and pools follow it."""
    if Template.objects.filter(name=source.name).exists():
        return
    aliases = [str(alias) for alias in source.spec.get("aliases") or []]
    old = Template.objects.filter(name__in=aliases, built_in=True).order_by("pk").first()
    if old is not None:
        Template.objects.filter(pk=old.pk).update(name=source.name)


@transaction.atomic
def template_build_state_set(
    *, source: TemplateSource, state: str, message: str = "", progress: dict | None = None
) -> Template:
    """Records a built-in template's build state. A template without a row gets one (from its
    template.yaml, with no image until its first build finishes), so it is listed while it builds;
    one with a row keeps its older image meanwhile."""
    _adopt_renamed(source)
    template = Template.objects.filter(name=source.name).first()
    fields = {"build_state": state, "build_message": message[:1000], "build_progress": progress or {}}
    if template is None:
        return Template.objects.create(name=source.name, image="", **_spec_fields(source), **fields)
    Template.objects.filter(pk=template.pk).update(**fields)
    for field, value in fields.items():
        setattr(template, field, value)
    return template


@transaction.atomic
def template_upsert(
    *, source: TemplateSource, image_size: int | None = None, build_seconds: float | None = None
) -> Template:
    """Creates or updates a built-in template's row with its built image (build state ready); a
    new template or a new version is published (an unchanged one, synced at every start, is not)."""
    _adopt_renamed(source)
    before = Template.objects.filter(name=source.name).values_list("version", "is_active", "image").first()
    measured = {}
    if image_size is not None:
        measured["image_size"] = image_size
    if build_seconds is not None:
        measured["build_seconds"] = build_seconds
    template, _ = Template.objects.update_or_create(
        name=source.name,
        defaults={
            **_spec_fields(source),
            "image": source.image,
            "build_state": BuildState.READY,
            "build_message": "",
            "build_progress": {},
            **measured,
        },
    )
    if before is None or not before[2] or before[:2] != (template.version, True):
        template_published.send(sender=Template, template=template)
    return template


def template_use_record(*, template: Template, version: str = "", org, user=None) -> TemplateUse:
    """A sandbox was created from `template` (sandboxes' create, in its transaction): one insert.
    Usage counts and who may review come from these rows."""
    return TemplateUse.objects.create(template=template, version=version or "", org=org, user=user)
