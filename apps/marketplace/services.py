"""Writes for templates: seeding built-in templates' rows (their images are built by apps/sandboxes/images.py)."""

from .catalog import TemplateSource
from .models import Template


def template_upsert(*, source: TemplateSource) -> Template:
    spec = source.spec
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
    return template
