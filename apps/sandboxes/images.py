"""Template images: building the base image and the built-in templates' images, and seeding
their rows (marketplace's template_upsert). Here, not in marketplace, because building needs the
engine layer and marketplace sits below sandboxes."""

import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from django.conf import settings

from apps.marketplace.catalog import (
    BASE_DIR_NAME,
    DEFAULT_SUITE,
    TemplateSource,
    base_image,
    built_in_templates,
    dockerfile_expand,
    extra_ca_bytes,
)
from apps.marketplace.models import BuildState
from apps.marketplace.services import template_build_state_set, template_upsert
from vibebox import exceptions as errors

from .runtime import get_driver


def log_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


STEP_RE = re.compile(r"^Step (\d+)/(\d+) :")


def base_image_build(*, suite: str = DEFAULT_SUITE, log=log_to_stderr) -> str:
    """Builds the Debian base image of a suite with debootstrap (only when it is absent)."""
    tag = base_image(suite)
    if get_driver().image_exists(tag):
        return tag
    log(f"building base image {tag} with debootstrap (a few minutes, once)")
    script = settings.VIBEBOX_IMAGES_DIR / BASE_DIR_NAME / "build.sh"
    env = {
        **os.environ,
        "VIBEBOX_DATA_DIR": str(settings.DATA_DIR),
        "VIBEBOX_DEBIAN_MIRROR": settings.VIBEBOX_DEBIAN_MIRROR,
        "VIBEBOX_DEBIAN_SUITE": suite,
    }
    result = subprocess.run(["bash", str(script), tag], env=env, check=False)
    if result.returncode != 0:
        raise errors.RuntimeFailure(f"building the base image failed (exit {result.returncode}); see the output above")
    return tag


def template_image_build(
    *, source: TemplateSource, base: str, force: bool = False, log=log_to_stderr, on_step=None
) -> bool:
    """Builds one template's image unless it exists. True when it built. `on_step(step, steps)`
    is called at each Dockerfile step."""
    driver = get_driver()
    if not force and driver.image_exists(source.image):
        return False
    log(f"building template {source.name} -> {source.image}")
    started = time.monotonic()
    recent = collections.deque(maxlen=40)  # shown only if the build fails

    def progress(line: str) -> None:
        recent.append(line)
        if line.startswith("Step "):
            log(f"  {line}")
            match = STEP_RE.match(line)
            if match and on_step is not None:
                on_step(int(match.group(1)), int(match.group(2)))

    with tempfile.TemporaryDirectory(prefix="vibebox-build-") as context:
        shutil.copytree(source.path, context, dirs_exist_ok=True)
        dockerfile = os.path.join(context, "Dockerfile")
        with open(dockerfile) as handle:
            expanded = dockerfile_expand(handle.read())
        with open(dockerfile, "w") as handle:
            handle.write(expanded)
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
    size = driver.image_size(source.image) or 0
    log(f"built template {source.name} in {time.monotonic() - started:.0f}s ({size / 1e6:.0f} MB)")
    return True


def pooled_template_names(sources: list[TemplateSource]) -> list[str]:
    """The built-in templates the warm pools fill by default (VIBEBOX_POOL_SIZES names them, or
    one of their aliases)."""
    wanted = set(settings.VIBEBOX_POOL_SIZES)
    return [s.name for s in sources if wanted & {s.name, *(str(a) for a in s.spec.get("aliases") or [])}]


def templates_register(*, only: list[str] | None = None) -> None:
    """Seeds every built-in template whose image is missing as `queued` (its row, if it has one
    on an older image, keeps that image meanwhile), and those whose image is there as ready."""
    driver = get_driver()
    for source in built_in_templates():
        if only and source.name not in only:
            continue
        if driver.image_exists(source.image):
            template_upsert(source=source, image_size=driver.image_size(source.image))
        else:
            template_build_state_set(source=source, state=BuildState.QUEUED)


def templates_sync(
    *, build: bool = True, only: list[str] | None = None, force: bool = False, log=log_to_stderr
) -> list:
    """Seeds the built-in templates into the database and (optionally) builds missing images,
    recording each one's build state (`GET /templates` shows it).

    A template whose build fails keeps its row as it was (still on its old image, which a failed
    build never untags); the others are built and synced, then the failure is raised."""
    sources = [s for s in built_in_templates() if not only or s.name in only]
    failed: dict[str, errors.ApplicationError] = {}
    sizes: dict[str, int | None] = {}
    seconds: dict[str, float] = {}
    if build:
        driver = get_driver()
        bases: dict[str, str] = {}
        for source in sources:
            if not force and driver.image_exists(source.image):
                sizes[source.name] = driver.image_size(source.image)
                continue
            template_build_state_set(source=source, state=BuildState.BUILDING)
            started = time.monotonic()
            try:
                if source.base not in bases:
                    bases[source.base] = base_image_build(suite=source.base, log=log)

                def on_step(step, steps, source=source):
                    template_build_state_set(
                        source=source, state=BuildState.BUILDING, progress={"step": step, "steps": steps}
                    )

                template_image_build(source=source, base=bases[source.base], force=force, log=log, on_step=on_step)
            except errors.ApplicationError as exc:
                log(f"template {source.name}: {exc.message}")
                failed[source.name] = exc
                template_build_state_set(source=source, state=BuildState.FAILED, message=exc.message)
                continue
            sizes[source.name] = driver.image_size(source.image)
            seconds[source.name] = round(time.monotonic() - started, 1)
    templates = [
        template_upsert(source=source, image_size=sizes.get(source.name), build_seconds=seconds.get(source.name))
        for source in sources
        if source.name not in failed
    ]
    if failed:
        first = next(iter(failed.values()))
        names = ", ".join(failed)
        raise type(first)(f"building {names} failed: {first.message}"[:1000], details={"templates": list(failed)})
    return templates
