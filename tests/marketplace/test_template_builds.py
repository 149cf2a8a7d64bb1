"""Templates whose image is not built yet (issue 22): GET /templates shows their build state,
a create answers 503 template_building with Retry-After, or waits for the build with
"wait": true; a failed first build answers template_unavailable. Unknown names get suggestions.

The template that builds is this test instance's own (`slow-<instance>`, FROM the python-3.13
image, built in seconds), so no shared built-in image is rebuilt."""

import shutil
import threading
import time

import pytest
import yaml
from django.conf import settings as django_settings
from django.core.management import call_command

from apps.marketplace.catalog import BASE_DIR_NAME, built_in_templates
from apps.marketplace.models import Template
from apps.sandboxes.images import templates_register, templates_sync
from apps.sandboxes.models import Sandbox
from apps.sandboxes.tasks import build_templates
from vibebox import exceptions as errors

NAME = f"slow-{django_settings.VIBEBOX_INSTANCE}"
BUILD_LABEL = f"vibebox.test-build={NAME}"


@pytest.fixture
def own_template(tmp_path, settings, templates, docker_client):
    """An images/ directory holding the real base and one unbuilt template of this instance's own
    (registered: listed as queued, as `make setup` leaves the ones the pools do not need)."""
    python = next(s for s in built_in_templates() if s.name == "python-3.13")
    root = tmp_path / "images"
    shutil.copytree(settings.VIBEBOX_IMAGES_DIR / BASE_DIR_NAME, root / BASE_DIR_NAME)
    spec = yaml.safe_load((python.path / "template.yaml").read_text())
    spec.update(name=NAME, displayName="Slow build", aliases=[])
    (root / NAME).mkdir()
    (root / NAME / "template.yaml").write_text(yaml.safe_dump(spec))

    def write(*steps):
        lines = ["ARG BASE_IMAGE", f"FROM {python.image}", f"LABEL {BUILD_LABEL}", *steps]
        (root / NAME / "Dockerfile").write_text("\n".join(lines) + "\n")

    write("RUN sleep 4", "RUN echo built > /home/sandbox/slow")
    settings.VIBEBOX_IMAGES_DIR = root
    templates_register(only=[NAME])
    yield write
    for image in docker_client.images.list(filters={"label": BUILD_LABEL}):
        docker_client.images.remove(image.id, force=True)


@pytest.mark.django_db(transaction=True)
def test_a_queued_template_is_listed_and_a_create_answers_503_with_retry_after(own_template, api_client):
    listed = {t["name"]: t for t in api_client.get("/api/v1/templates").json()}
    mine = listed[NAME]
    assert mine["buildState"] == "queued" and mine["image"] == "" and mine["imageSize"] is None
    assert listed["python-3.13"]["buildState"] == "ready" and listed["python-3.13"]["imageSize"] > 10**7
    response = api_client.post("/api/v1/sandboxes", {"template": NAME}, format="json")
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "template_building" and error["details"]["buildState"] == "queued"
    assert response["Retry-After"] == str(int(django_settings.VIBEBOX_TEMPLATE_RETRY_AFTER))
    assert not Sandbox.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_wait_true_waits_for_the_build_and_get_shows_its_progress(own_template, api_client, create_sandbox):
    seen = []

    def build():
        templates_sync(only=[NAME])

    builder = threading.Thread(target=build)
    builder.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the build runs: GET shows building with its step
        body = api_client.get(f"/api/v1/templates/{NAME}").json()
        seen.append((body["buildState"], body["buildProgress"]))
        if body["buildState"] == "building" and body["buildProgress"]:
            break
        time.sleep(0.2)
    state, progress = seen[-1]
    assert state == "building" and 1 <= progress["step"] <= progress["steps"], seen
    created = create_sandbox(template=NAME, wait=True)  # blocks until the image is there
    builder.join(timeout=60)
    assert created["template"] == NAME and created["status"] == "running"
    command = {"command": "cat /home/sandbox/slow"}
    out = api_client.post(f"/api/v1/sandboxes/{created['id']}/exec", command, format="json")
    assert out.json()["stdout"] == "built\n"
    body = api_client.get(f"/api/v1/templates/{NAME}").json()
    assert body["buildState"] == "ready" and body["imageSize"] > 10**7 and body["buildSeconds"] > 0
    assert body["buildProgress"] is None and body["image"] == Template.objects.get(name=NAME).image


@pytest.mark.django_db(transaction=True)
def test_wait_is_bounded_by_the_servers_deadline(own_template, api_client, settings):
    settings.VIBEBOX_TEMPLATE_WAIT = 1.5
    started = time.monotonic()
    response = api_client.post("/api/v1/sandboxes", {"template": NAME, "wait": True}, format="json")
    assert response.status_code == 503 and response.json()["error"]["code"] == "template_building"
    assert 1.5 <= time.monotonic() - started < 10


@pytest.mark.django_db(transaction=True)
def test_a_failed_first_build_says_so(own_template, api_client):
    own_template("RUN echo breaking && exit 7")
    with pytest.raises(errors.RuntimeFailure):
        templates_sync(only=[NAME])
    body = api_client.get(f"/api/v1/templates/{NAME}").json()
    assert body["buildState"] == "failed" and "exit" in body["buildMessage"] and body["image"] == ""
    response = api_client.post("/api/v1/sandboxes", {"template": NAME, "wait": True}, format="json")
    assert response.status_code == 503 and response.json()["error"]["code"] == "template_unavailable"
    assert "failed" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "asked,suggested",
    [
        ("go-1.21", ["go-1.24"]),
        ("rust-1.75", ["rust-1.85"]),
        ("java-17", ["java-21"]),
        ("pyton-3.13", ["python-3.13", "python-3.11"]),
    ],
)
def test_unknown_names_get_suggestions_everywhere(api_client, templates, asked, suggested):
    created = api_client.post("/api/v1/sandboxes", {"template": asked}, format="json")
    assert created.status_code == 400
    error = created.json()["error"]
    assert error["code"] == "unknown_template" and error["details"]["suggestions"] == suggested
    assert suggested[0] in error["message"]
    detail = api_client.get(f"/api/v1/templates/{asked}")
    assert detail.status_code == 404 and detail.json()["error"]["details"]["suggestions"] == suggested
    assert not Sandbox.objects.exists()


def test_a_name_like_nothing_gets_no_suggestions(api_client, templates):
    error = api_client.post("/api/v1/sandboxes", {"template": "cobol-85"}, format="json").json()["error"]
    assert error["code"] == "unknown_template" and error["details"]["suggestions"] == []


@pytest.mark.django_db(transaction=True)
def test_setup_builds_only_pooled_templates_and_the_worker_task_builds_the_rest(own_template, api_client, settings):
    settings.VIBEBOX_POOL_SIZES = {"python-3": 1}  # not this template: `make setup` leaves it queued
    call_command("buildimages", "--pooled")
    assert api_client.get(f"/api/v1/templates/{NAME}").json()["buildState"] == "queued"
    assert build_templates(names=[NAME]) == {"built": [NAME]}  # the Celery task, run here
    body = api_client.get(f"/api/v1/templates/{NAME}").json()
    assert body["buildState"] == "ready" and body["image"] and body["imageSize"] > 10**7


@pytest.mark.django_db(transaction=True)
def test_include_lines_are_expanded_into_the_build_and_into_the_tag(own_template, settings, docker_client):
    """`# vibebox:include <name>` takes images/include/<name>.Dockerfile (the steps templates
    share, written once): built into the image, and part of the tag's hash."""
    include = settings.VIBEBOX_IMAGES_DIR / "include"
    include.mkdir()
    (include / "mark.Dockerfile").write_text("# shared\nRUN echo one > /home/sandbox/mark\n")
    own_template("# vibebox:include mark")

    def source():
        return next(s for s in built_in_templates() if s.name == NAME)

    first = source().image
    templates_sync(only=[NAME])
    assert docker_client.containers.run(first, ["cat", "/home/sandbox/mark"], remove=True) == b"one\n"
    (include / "mark.Dockerfile").write_text("RUN echo two > /home/sandbox/mark\n")
    assert source().image != first  # an edited include is a new tag, so a rebuild
    own_template("# vibebox:include missing")
    with pytest.raises(ValueError, match="missing"):
        built_in_templates()
