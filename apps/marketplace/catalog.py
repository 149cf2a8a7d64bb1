"""The built-in templates in images/: their descriptions and the image tags they build to.

A tag carries the template's version and a hash of everything that goes into the image
(its directory, the files its Dockerfile includes, the base image and the extra CA bundle), so an
edited Dockerfile or a new CA yields a new tag and is rebuilt, while an unchanged template is never
built twice.

The steps several templates share are written once, in images/include/<name>.Dockerfile, and a
template's Dockerfile names them with a line `# vibebox:include <name>` that the builder replaces
with the file (a plain Docker feature would need BuildKit, which this engine's builder is not):
the same instructions on the same parent make one layer, shared on disk by every image.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

from apps.orgs.labels import check_labels
from vibebox import exceptions as errors

from . import template_keys

BASE_DIR_NAME = "base"
INCLUDE_DIR_NAME = "include"
INCLUDE_RE = re.compile(r"^# vibebox:include ([a-z0-9][a-z0-9-]*)[ \t]*$", re.MULTILINE)
# The Debian release a template's image starts from (`base:` in its template.yaml); each suite
# has its own base image, built once by images/base/build.sh.
DEFAULT_SUITE = "trixie"
SUITES = ("trixie", "bookworm")


@dataclass(frozen=True)
class TemplateSource:
    name: str
    path: Path
    spec: dict
    image: str
    base: str = DEFAULT_SUITE  # the Debian suite of its base image


def tree_digest(path: Path, *extra: bytes) -> str:
    """12 hex digits of a hash over every file under `path` (names and contents) and `extra`."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + file.read_bytes() + b"\0")
    for item in extra:
        digest.update(item)
    return digest.hexdigest()[:12]


def dockerfile_expand(text: str, *, depth: int = 0) -> str:
    """A template's Dockerfile with each `# vibebox:include <name>` line replaced by
    images/include/<name>.Dockerfile (itself expanded; an unknown name raises ValueError)."""
    if depth > 4:
        raise ValueError("images/include: includes nest deeper than 4 (a loop?)")

    def included(match: re.Match) -> str:
        path = settings.VIBEBOX_IMAGES_DIR / INCLUDE_DIR_NAME / f"{match.group(1)}.Dockerfile"
        if not path.is_file():
            raise ValueError(f"{match.group(0)!r}: no file {path}")
        return dockerfile_expand(path.read_text(), depth=depth + 1).rstrip("\n")

    return INCLUDE_RE.sub(included, text)


def extra_ca_bytes() -> bytes:
    """The extra CA bundle to trust in image builds (and in the images), or b""."""
    value = settings.VIBEBOX_EXTRA_CA_CERTS.strip()
    if not value:
        return b""
    path = Path(settings.VIBEBOX_SYSTEM_CA_BUNDLE if value == "system" else value)
    return path.read_bytes()


def base_image(suite: str = DEFAULT_SUITE) -> str:
    """The base image's tag for a Debian suite (the default suite's tag is the one it always had)."""
    base = settings.VIBEBOX_IMAGES_DIR / BASE_DIR_NAME
    extra = settings.VIBEBOX_DEBIAN_MIRROR.encode() + (b"" if suite == DEFAULT_SUITE else b"\0" + suite.encode())
    return f"{settings.VIBEBOX_IMAGE_PREFIX}/base:{suite}-{tree_digest(base, extra)}"


def built_in_templates() -> list[TemplateSource]:
    ca = extra_ca_bytes()
    sources = []
    for spec_file in sorted(settings.VIBEBOX_IMAGES_DIR.glob("*/template.yaml")):
        spec = yaml.safe_load(spec_file.read_text())
        name = spec["name"]
        try:  # the product spec's keys (spec 2.1), honoured or refused here, at start
            template_keys.base_image(
                spec.get("baseImage"),
                names=[name, *map(str, spec.get("aliases") or [])],
                prefix=settings.VIBEBOX_IMAGE_PREFIX,
            )
            spec["claude"] = template_keys.claude_config(spec.get("claude"), auto_start=spec.get("autoStart"))
            spec["preInstalled"] = template_keys.pre_installed(spec.get("preInstalled"))
            spec["ports"] = template_keys.ports(spec.get("ports"))
            spec["nodeLabels"] = check_labels(spec.get("nodeLabels") or {})  # its sandboxes' engines must have them
        except errors.ValidationFailed as exc:
            raise ValueError(f"{spec_file}: {exc.message}") from None
        except ValueError as exc:
            raise ValueError(f"{spec_file}: {exc}") from None
        suite = str(spec.get("base") or DEFAULT_SUITE)
        if suite not in SUITES:
            raise ValueError(f"{spec_file}: base {suite!r} is not one of {', '.join(SUITES)}")
        dockerfile = dockerfile_expand((spec_file.parent / "Dockerfile").read_text()).encode()
        digest = tree_digest(spec_file.parent, base_image(suite).encode(), ca, dockerfile)
        image = f"{settings.VIBEBOX_IMAGE_PREFIX}/{name}:{spec.get('version', 1)}-{digest}"
        sources.append(TemplateSource(name=name, path=spec_file.parent, spec=spec, image=image, base=suite))
    return sources
