"""Helpers for the marketplace's tests: organizations, actors, and versions published through the
real services (the pipeline's calls, without building: the image is one that exists)."""

import io
import tarfile

import pytest
from django.contrib.auth import get_user_model

from apps.marketplace import services
from apps.marketplace.models import Submission
from apps.orgs.actors import actor_in
from apps.orgs.services import personal_org_ensure


def yaml_for(name: str, version: str = "1.0.0", **extra) -> str:
    lines = {
        "name": name,
        "version": f'"{version}"',
        "description": f"{name}, a test template",
        "smoke": '"true"',
        **extra,
    }
    return "".join(f"{key}: {value}\n" for key, value in lines.items())


def tar_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


DOCKERFILE = "FROM debian:trixie\nRUN true\n"


@pytest.fixture(autouse=True)
def marketplace_dir(settings, tmp_path):
    """Submissions' contexts go to this test's own directory."""
    settings.VIBEBOX_MARKETPLACE_DIR = tmp_path / "marketplace"
    return settings.VIBEBOX_MARKETPLACE_DIR


@pytest.fixture
def actor_of_user():
    def make(user):
        return actor_in(user=user, org=personal_org_ensure(user=user))

    return make


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user(username="staffer", password="pw-staff", is_staff=True)


@pytest.fixture
def publish(actor_of_user, staff):
    """Submits and runs a version through the pipeline's service calls to published (public ones
    approved by staff); returns the Submission."""

    def run(
        user,
        name: str,
        version: str = "1.0.0",
        *,
        image: str = "vibebox/test:1",
        visibility="private",
        dockerfile=DOCKERFILE,
        **spec,
    ):
        actor = actor_of_user(user)
        submission = services.submission_create(
            actor, dockerfile=dockerfile, template_yaml=yaml_for(name, version, **spec), visibility=visibility
        )
        pipeline_to_passed(submission.pk, image=image)
        if visibility == "public":
            services.submission_review(actor_of_user(staff), submission.pk, approve=True, reason="ok")
        return Submission.objects.get(pk=submission.pk)

    return run


def pipeline_to_passed(submission_id: str, *, image: str) -> None:
    assert services.submission_start(submission_id) is not None
    services.submission_log_append(submission_id, "Step 1/2 : FROM debian:trixie\n")
    services.submission_progress(submission_id, state="smoke_testing", image=image, image_size=1234, build_seconds=1.5)
    services.submission_candidate(submission_id)
    services.submission_progress(submission_id, state="smoke_testing", smoke_output="ok\n")
    services.submission_passed(submission_id)


@pytest.fixture
def python_image(templates):
    """python-3.13's image (a published version's image in tests that build nothing)."""
    image = templates["python-3.13"].image
    if not image:
        pytest.skip("python-3.13's image is not built here")
    return image
