"""Template images: building the base image and the built-in templates' images, and seeding
their rows (marketplace's template_upsert). Here, not in marketplace, because building needs the
engine layer and marketplace sits below sandboxes."""

import collections
import os
import shutil
import subprocess
import sys
import tempfile

from django.conf import settings

from apps.marketplace.catalog import BASE_DIR_NAME, TemplateSource, base_image, built_in_templates, extra_ca_bytes
from apps.marketplace.services import template_upsert
from vibebox import exceptions as errors

from .runtime import get_driver


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def base_image_build(*, log=log_to_stderr) -> str:
    """Builds the Debian base image with debootstrap (only when it is absent)."""
    tag = base_image()
    if get_driver().image_exists(tag):
        return tag
    log(f"building base image {tag} with debootstrap (a few minutes, once)")
    script = settings.VIBEBOX_IMAGES_DIR / BASE_DIR_NAME / "build.sh"
    env = {
        **os.environ,
        "VIBEBOX_DATA_DIR": str(settings.DATA_DIR),
        "VIBEBOX_DEBIAN_MIRROR": settings.VIBEBOX_DEBIAN_MIRROR,
    }
    result = subprocess.run(["bash", str(script), tag], env=env, check=False)
    if result.returncode != 0:
        raise errors.RuntimeFailure(f"building the base image failed (exit {result.returncode}); see the output above")
    return tag


def template_image_build(*, source: TemplateSource, base: str, force: bool = False, log=log_to_stderr) -> bool:
    """Builds one template's image unless it exists. True when it built."""
    driver = get_driver()
    if not force and driver.image_exists(source.image):
        return False
    log(f"building template {source.name} -> {source.image}")
    recent = collections.deque(maxlen=40)  # shown only if the build fails

    def progress(line: str) -> None:
        recent.append(line)
        if line.startswith("Step "):
            log(f"  {line}")

    with tempfile.TemporaryDirectory(prefix="vibebox-build-") as context:
        shutil.copytree(source.path, context, dirs_exist_ok=True)
        with open(os.path.join(context, "extra-ca.crt"), "wb") as handle:
            handle.write(extra_ca_bytes())
        try:
            driver.image_build(
                context=context,
                tag=source.image,
                buildargs={"BASE_IMAGE": base},
                labels={
                    "vibebox.managed-image": "1",
                    "vibebox.template": source.name,
                    "vibebox.template-version": str(source.spec.get("version", 1)),
                },
                log=progress,
            )
        except errors.ApplicationError:
            for line in recent:
                log(line)
            raise
    return True


def templates_sync(
    *, build: bool = True, only: list[str] | None = None, force: bool = False, log=log_to_stderr
) -> list:
    """Seeds the built-in templates into the database and (optionally) builds missing images.

    A template whose build fails keeps its row as it was (still on its old image, which a failed
    build never untags); the others are built and synced, then the failure is raised."""
    sources = [s for s in built_in_templates() if not only or s.name in only]
    failed: dict[str, errors.ApplicationError] = {}
    if build:
        base = base_image_build(log=log)
        for source in sources:
            try:
                template_image_build(source=source, base=base, force=force, log=log)
            except errors.ApplicationError as exc:
                log(f"template {source.name}: {exc.message}")
                failed[source.name] = exc
    templates = [template_upsert(source=source) for source in sources if source.name not in failed]
    if failed:
        first = next(iter(failed.values()))
        names = ", ".join(failed)
        raise type(first)(f"building {names} failed: {first.message}"[:1000], details={"templates": list(failed)})
    return templates
