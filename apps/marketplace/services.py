"""Writes for templates: seeding built-in templates' rows (their images are built by apps/sandboxes/images.py)."""

from django.db import transaction

from .catalog import TemplateSource
from .models import Template
from .signals import template_published


@transaction.atomic
def template_upsert(*, source: TemplateSource) -> Template:
    """Creates or updates a built-in template's row; a new template or a new version is published
    (an unchanged one, synced at every start, is not)."""
    spec = source.spec
    before = Template.objects.filter(name=source.name).values_list("version", "is_active").first()
    template, _ = Template.objects.update_or_create(
        name=source.name,
        defaults={
            "aliases": [str(alias) for alias in spec.get("aliases") or []],
            "display_name": spec.get("displayName", source.name),
            "description": spec.get("description", ""),
            "version": int(spec.get("version", 1)),
            "image": source.image,
            "language": spec.get("language", ""),
            "languages": spec.get("languages", []),
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
            "is_active": True,
        },
    )
    if before is None or before != (template.version, True):
        template_published.send(sender=Template, template=template)
    return template
