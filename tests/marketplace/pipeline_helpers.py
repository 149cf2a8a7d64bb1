"""Shared helpers of the validation pipeline's tests (tests/marketplace/test_pipeline*.py): a
submission row as the marketplace API leaves it (queued, its context tar on disk), and checks that
a run left nothing behind on the engine."""

import io
import tarfile
from pathlib import Path

import docker

from apps.marketplace.models import Submission
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.submissions import BUILD_NETWORK_PREFIX, image_tag

STEP_RE_PREFIX = " ---> "

# A small template on our Debian base: a non-root user, and a smoke command that proves it runs.
SMALL_DOCKERFILE = """\
FROM debian:trixie
RUN useradd --create-home --uid 1000 app && echo built > /etc/small-template
USER app
"""


def spec_for(name: str, **extra) -> dict:
    spec = {
        "name": name,
        "version": "1.0.0",
        "displayName": name,
        "description": "a test template",
        "smoke": "cat /etc/small-template && id -un",
        "user": "app",
        "workdir": "/home/app",
        "ports": [],
    }
    spec.update(extra)
    return spec


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_entry(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def make_submission(
    owner, tmp_path: Path, *, dockerfile: str, spec: dict, context: bytes | None = None, visibility: str = "private"
) -> Submission:
    context_path = ""
    if context is not None:
        path = tmp_path / "context.tar"
        path.write_bytes(context)
        context_path = str(path)
    return Submission.objects.create(
        org=personal_org_ensure(user=owner),
        user=owner,
        template_name=spec["name"],
        version=spec["version"],
        visibility=visibility,
        dockerfile=dockerfile,
        spec=spec,
        context_path=context_path,
        context_bytes=len(context or b""),
    )


def step_images(log: str) -> list[str]:
    """The image ids the build's steps reported (" ---> <id>")."""
    return [line[len(STEP_RE_PREFIX) :].strip() for line in log.splitlines() if line.startswith(STEP_RE_PREFIX)]


def assert_nothing_left(submission: Submission, *, base_images: tuple[str, ...] = ()) -> None:
    """No build network, no container on one, no image of the submission's, and (for a failed
    build) none of the images its steps made, except its bases."""
    client = docker.from_env()
    try:
        networks = [n.name for n in client.networks.list(filters={"label": f"vibebox.build={submission.pk}"})]
        assert networks == [], networks
        leftovers = [
            c.name
            for c in client.containers.list(all=True)
            if any(name.startswith(BUILD_NETWORK_PREFIX) for name in c.attrs["NetworkSettings"]["Networks"])
        ]
        assert leftovers == [], leftovers
        if submission.state == "failed":
            assert not get_driver().image_exists(image_tag(submission))
            bases = {client.images.get(image).id[7:19] for image in base_images}
            for image in step_images(submission.build_log):
                if image not in bases:
                    assert not get_driver().image_exists(image), f"step image {image} left behind"
    finally:
        client.close()
