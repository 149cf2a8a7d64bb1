"""The built-in templates in images/: their descriptions and the image tags they build to.

A tag carries the template's version and a hash of everything that goes into the image
(its directory, the base image and the extra CA bundle), so an edited Dockerfile or a new
CA yields a new tag and is rebuilt, while an unchanged template is never built twice.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

BASE_DIR_NAME = "base"


@dataclass(frozen=True)
class TemplateSource:
    name: str
    path: Path
    spec: dict
    image: str


def tree_digest(path: Path, *extra: bytes) -> str:
    """12 hex digits of a hash over every file under `path` (names and contents) and `extra`."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes() + b"\0")
    for item in extra:
        digest.update(item)
    return digest.hexdigest()[:12]


def extra_ca_bytes() -> bytes:
    """The extra CA bundle to trust in image builds (and in the images), or b""."""
    value = settings.VIBEBOX_EXTRA_CA_CERTS.strip()
    if not value:
        return b""
    path = Path(settings.VIBEBOX_SYSTEM_CA_BUNDLE if value == "system" else value)
    return path.read_bytes()


def base_image() -> str:
    base = settings.VIBEBOX_IMAGES_DIR / BASE_DIR_NAME
    return f"{settings.VIBEBOX_IMAGE_PREFIX}/base:trixie-{tree_digest(base, settings.VIBEBOX_DEBIAN_MIRROR.encode())}"


def built_in_templates() -> list[TemplateSource]:
    base = base_image()
    ca = extra_ca_bytes()
    sources = []
    for spec_file in sorted(settings.VIBEBOX_IMAGES_DIR.glob("*/template.yaml")):
        spec = yaml.safe_load(spec_file.read_text())
        name = spec["name"]
        digest = tree_digest(spec_file.parent, base.encode(), ca)
        image = f"{settings.VIBEBOX_IMAGE_PREFIX}/{name}:{spec.get('version', 1)}-{digest}"
        sources.append(TemplateSource(name=name, path=spec_file.parent, spec=spec, image=image))
    return sources
