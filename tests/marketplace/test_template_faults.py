"""A template rebuild that fails half-way (issue 18): the old image stays tagged and in use, the
template row keeps pointing at it, sandboxes made from it keep working, and the build leaves no
container behind.

The template is this test instance's own (`fault-<instance>`, built FROM the python-3 image in a
few seconds), so the shared built-in images are never rebuilt."""

import shutil
import time

import pytest
import yaml
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from apps.marketplace.catalog import BASE_DIR_NAME, base_image, built_in_templates
from apps.marketplace.models import Template
from apps.sandboxes.images import templates_sync
from apps.sandboxes.models import Sandbox
from vibebox import exceptions as errors

NAME = f"fault-{django_settings.VIBEBOX_INSTANCE}"
BUILD_LABEL = f"vibebox.test-build={NAME}"


class FaultTemplate:
    def __init__(self, root, python_image: str):
        self.dir = root / NAME
        self.python_image = python_image

    def write(self, *steps: str) -> None:
        lines = ["ARG BASE_IMAGE", f"FROM {self.python_image}", f"LABEL {BUILD_LABEL}", "USER root", *steps]
        (self.dir / "Dockerfile").write_text("\n".join(lines) + "\n")


@pytest.fixture
def fault_template(tmp_path, settings, built_images, docker_client):
    """An images/ directory holding the real base and one template of this instance's own."""
    python = next(s for s in built_in_templates() if s.name == "python-3.13")
    base = base_image()
    root = tmp_path / "images"
    shutil.copytree(settings.VIBEBOX_IMAGES_DIR / BASE_DIR_NAME, root / BASE_DIR_NAME)
    spec = yaml.safe_load((python.path / "template.yaml").read_text())
    spec.update(name=NAME, displayName="Fault test", aliases=[])
    (root / NAME).mkdir()
    (root / NAME / "template.yaml").write_text(yaml.safe_dump(spec))
    settings.VIBEBOX_IMAGES_DIR = root
    assert base_image() == base  # the same (built) base: nothing is debootstrapped
    template = FaultTemplate(root, python.image)
    template.write("RUN echo v1 > /etc/fault-version")
    yield template
    for image in docker_client.images.list(filters={"label": BUILD_LABEL}):
        docker_client.images.remove(image.id, force=True)


def run(client, sandbox_id: str, command: str) -> dict:
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def build_containers(docker_client) -> list[str]:
    """Containers of the builder (sandboxes made from the image carry its labels too)."""
    made = docker_client.containers.list(all=True, filters={"label": BUILD_LABEL})
    return [c.name for c in made if "vibebox.sandbox-id" not in c.labels]


def wait_no_build_containers(docker_client) -> None:
    """The engine ends a build whose client went away on its own time: wait, with a deadline."""
    deadline = time.monotonic() + 120
    while build_containers(docker_client):
        assert time.monotonic() < deadline, build_containers(docker_client)
        time.sleep(0.5)


def image_id(docker_client, tag: str) -> str:
    return docker_client.images.get(tag).id


@pytest.fixture
def v1(fault_template, db, api_client, create_sandbox, docker_client):
    """The template built and synced at v1, and a sandbox from it with a file in its workspace."""
    (template,) = templates_sync(only=[NAME])
    sandbox = create_sandbox(template=NAME)
    run(api_client, sandbox["id"], "echo kept > /workspace/kept.txt")
    return {"tag": template.image, "id": image_id(docker_client, template.image), "sandbox": sandbox["id"]}


def old_image_still_serves(v1, api_client, create_sandbox, docker_client) -> None:
    assert Template.objects.get(name=NAME).image == v1["tag"]
    assert image_id(docker_client, v1["tag"]) == v1["id"]  # still tagged, the same image
    assert run(api_client, v1["sandbox"], "cat /etc/fault-version /workspace/kept.txt")["stdout"] == "v1\nkept\n"
    fresh = create_sandbox(template=NAME)
    assert run(api_client, fresh["id"], "cat /etc/fault-version")["stdout"] == "v1\n"


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_failing_half_way_keeps_the_old_image(v1, fault_template, api_client, create_sandbox, docker_client):
    # The new version: its first step works, its second fails.
    fault_template.write("RUN echo v2 > /etc/fault-version", "RUN echo half-way && exit 3")
    new_tag = next(s.image for s in built_in_templates() if s.name == NAME)
    assert new_tag != v1["tag"]
    with pytest.raises(errors.RuntimeFailure, match="exit"):
        templates_sync(only=[NAME])
    # the operator's command says so in one line and exits 1, with no traceback
    with pytest.raises(CommandError, match=f"building {NAME} failed"):
        call_command("buildimages", NAME)
    with pytest.raises(CommandError, match="no built-in template named nosuch"):
        call_command("buildimages", "nosuch")
    assert not any(new_tag in image.tags for image in docker_client.images.list(filters={"label": BUILD_LABEL}))
    assert build_containers(docker_client) == []  # the failed step's container is removed
    old_image_still_serves(v1, api_client, create_sandbox, docker_client)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_forced_rebuild_with_the_engine_cut_keeps_the_old_image(
    when, v1, fault_template, api_client, create_sandbox, docker_client, engine_fault
):
    # A slow step, so the cut lands while the engine is building.
    fault_template.write("RUN echo v1 > /etc/fault-version", "RUN sleep 3")
    new_tag = next(s.image for s in built_in_templates() if s.name == NAME)
    tripped = engine_fault.fail_on(r"^POST /build", when=when)
    with pytest.raises(errors.ApplicationError) as failure:
        templates_sync(only=[NAME], force=True)
    assert tripped.is_set()
    assert failure.value.code == "runtime_unavailable", failure.value.message
    engine_fault.restore()
    wait_no_build_containers(docker_client)
    assert not any(new_tag in image.tags for image in docker_client.images.list(filters={"label": BUILD_LABEL}))
    old_image_still_serves(v1, api_client, create_sandbox, docker_client)


@pytest.mark.django_db(transaction=True)
def test_one_failing_template_does_not_hold_back_the_others(v1, fault_template, docker_client):
    # A second template of this instance's, synced in the same pass as the failing one.
    other = f"faultok-{django_settings.VIBEBOX_INSTANCE}"
    shutil.copytree(fault_template.dir, fault_template.dir.parent / other)
    spec_file = fault_template.dir.parent / other / "template.yaml"
    spec_file.write_text(yaml.safe_dump({**yaml.safe_load(spec_file.read_text()), "name": other}))
    fault_template.write("RUN echo v2 > /etc/fault-version", "RUN exit 3")
    with pytest.raises(errors.RuntimeFailure, match=NAME):
        templates_sync(only=[NAME, other])
    assert Template.objects.get(name=NAME).image == v1["tag"]  # the failed one keeps its old image
    built = Template.objects.get(name=other)  # the other one is built and usable
    assert docker_client.images.get(built.image).labels["vibebox.template"] == other


@pytest.mark.django_db(transaction=True)
def test_image_removed_behind_our_back(v1, api_client, create_sandbox, docker_client):
    docker_client.images.remove(v1["tag"], force=True)  # (a sandbox still uses it: only untagged)
    assert run(api_client, v1["sandbox"], "cat /workspace/kept.txt")["stdout"] == "kept\n"
    response = api_client.post("/api/v1/sandboxes", {"template": NAME}, format="json")
    assert response.status_code == 503 and response.json()["error"]["code"] == "template_unavailable"
    assert list(Sandbox.objects.values_list("id", flat=True)) == [v1["sandbox"]]
    (template,) = templates_sync(only=[NAME])  # the operator's rebuild brings it back
    assert template.image == v1["tag"]
    fresh = create_sandbox(template=NAME)
    assert run(api_client, fresh["id"], "cat /etc/fault-version")["stdout"] == "v1\n"
