"""The community templates (marketplace/community/<name>/, issue 23), each a real submission: sent
through the API as its author would send it (`vibebox template submit ./dir`: the Dockerfile,
template.yaml and the directory's other files as the build context), validated by the real
pipeline (a build with limits, the policy checks, a smoke test in a real sandbox: the smoke
command, then the start command until every declared port answers), published, created from by
`name@version` (its project in the workdir), and rated.

Two run in `make test` (the Python ones FROM python-3.13, an image `make setup` builds); all of
them run in `make test-marketplace` (marker `marketplace`), after `make images-all` built every
template they start FROM."""

import io
import tarfile

import pytest
import yaml
from django.conf import settings as django_settings

from apps.marketplace.catalog import built_in_templates
from apps.marketplace.models import Submission
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.submissions import submission_validate
from tests.sandboxes.test_packages import run

pytestmark = pytest.mark.django_db(transaction=True)

COMMUNITY = django_settings.BASE_DIR / "marketplace" / "community"
NAMES = sorted(path.parent.name for path in COMMUNITY.glob("*/template.yaml"))
IN_MAKE_TEST = {"django", "fastapi"}
SUBMISSIONS = "/api/v1/marketplace/submissions"
LEFT_OUT = {"Dockerfile", "template.yaml"}  # sent as their own fields


def context_tar(directory) -> bytes:
    """The directory's other files, as the CLI packs them (no .git)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if relative.parts[0] == ".git" or str(relative) in LEFT_OUT or not path.is_file():
                continue
            archive.add(path, arcname=str(relative), recursive=False)
    return buffer.getvalue()


def test_there_are_at_least_ten_and_the_make_test_ones_are_among_them():
    assert len(NAMES) >= 10, NAMES
    assert set(NAMES) >= IN_MAKE_TEST


@pytest.mark.django_db(transaction=False)
def test_no_community_name_is_a_built_in_name_or_alias():
    """A built-in's name or alias refuses a submission of that name (apps/marketplace/spec.py): caught
    here in seconds, not after make test-marketplace's builds (CI: python-data's alias data-science)."""
    taken = {}
    for source in built_in_templates():
        for name in [source.name, *(source.spec.get("aliases") or [])]:
            taken[str(name)] = source.name
    community = {yaml.safe_load((COMMUNITY / name / "template.yaml").read_text())["name"] for name in NAMES}
    assert {name: taken[name] for name in community if name in taken} == {}
    assert community == set(NAMES)  # each directory is named as its template


def _why(submission: Submission) -> str:
    return (
        f"{submission.state} at {submission.failed_step or '-'}: {submission.message}\n"
        f"--- build log (end) ---\n{submission.build_log[-4000:]}\n--- smoke ---\n{submission.smoke_output[-4000:]}"
    )


# A build runs at one CPU (VIBEBOX_TEMPLATE_BUILD_CPUS): rust-axum's and nextjs's take minutes.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=[] if name in IN_MAKE_TEST else [pytest.mark.marketplace]) for name in NAMES]
)
def test_a_community_template_is_validated_published_created_and_rated(name, templates, api_client, create_sandbox):
    directory = COMMUNITY / name
    spec = yaml.safe_load((directory / "template.yaml").read_text())
    assert spec["name"] == name and spec.get("smoke"), "a community template says how to prove it works"
    response = api_client.post(
        SUBMISSIONS,
        {
            "dockerfile": io.BytesIO((directory / "Dockerfile").read_bytes()),
            "templateYaml": io.BytesIO((directory / "template.yaml").read_bytes()),
            "context": io.BytesIO(context_tar(directory)),
            "visibility": "private",
        },
        format="multipart",
    )
    assert response.status_code == 202, response.content
    submission_id = response.json()["id"]
    submission = Submission.objects.get(pk=submission_id)
    try:
        assert submission_validate(submission_id) == "published", _why(Submission.objects.get(pk=submission_id))
        submission.refresh_from_db()
        assert submission.image_size > 0 and "Step 1/" in submission.build_log

        pinned = f"{name}@{spec['version']}"
        sandbox = create_sandbox(template=pinned)
        assert (sandbox["template"], sandbox["templateVersion"]) == (name, str(spec["version"]))
        # The pipeline ran the smoke command in a sandbox of this image; here the project is there.
        listed = run(api_client, sandbox["id"], f"cd {spec.get('workdir') or '/workspace'} && pwd && ls -A")
        assert listed["exitCode"] == 0 and len(listed["stdout"].splitlines()) > 1, listed

        review = api_client.post(
            f"/api/v1/marketplace/templates/{name}/reviews", {"rating": 5, "text": "It works."}, format="json"
        )
        assert review.status_code in (200, 201), review.content
        detail = api_client.get(f"/api/v1/marketplace/templates/{name}").json()
        assert detail["rating"] == {"average": 5.0, "count": 1}, detail["rating"]
        assert detail["usage"]["total"] >= 1 and detail["latestVersion"] == str(spec["version"])
    finally:
        submission.refresh_from_db()
        if submission.image:
            get_driver().image_remove(submission.image)
