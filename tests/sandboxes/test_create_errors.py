"""Bad input and failures: a clear code, and nothing left behind (no container, no row)."""

import pytest

from apps.sandboxes.models import Sandbox
from tests.conftest import INSTANCE_LABEL


@pytest.fixture
def nothing_left(docker_client, templates):
    def check():
        assert Sandbox.objects.count() == 0
        assert not docker_client.containers.list(all=True, filters={"label": INSTANCE_LABEL})

    return check


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"template": "no-such-template"}, 400, "unknown_template"),
        ({"template": "python-3", "timeout": "soon"}, 400, "invalid_duration"),
        ({"template": "python-3", "timeout": -5}, 400, "invalid_duration"),
        ({"template": "python-3", "timeout": "400d"}, 400, "invalid_duration"),
        ({"template": "python-3", "colour": "blue"}, 400, "unknown_field"),
        ({"template": "python-3", "resources": {"gpu": 1}}, 400, "unknown_field"),
        ({"template": "python-3", "metadata": {f"k{i}": "v" for i in range(60)}}, 400, "metadata_too_large"),
        ({"template": "python-3", "metadata": {"k": "v" * 5000}}, 400, "metadata_too_large"),
        ({"template": "python-3", "metadata": {"bad key!": "v"}}, 400, "invalid_metadata"),
        ({"template": "python-3", "env": {"1BAD": "x"}}, 400, "invalid_env"),
        ({"template": "python-3", "resources": {"memory": "lots"}}, 400, "invalid_size"),
        ({"template": "python-3", "resources": {"memory": "64g"}}, 400, "invalid_resources"),
        ({"template": "python-3", "resources": {"cpu": 99}}, 400, "invalid_resources"),
        ({"template": "python-3", "name": "has space"}, 400, "validation_error"),
        ({"template": "python-3", "name": "sbx_lookalike"}, 400, "validation_error"),
        ({}, 400, "validation_error"),
    ],
)
def test_bad_input(api_client, nothing_left, body, status, code):
    response = api_client.post("/api/v1/sandboxes", body, format="json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert response.json()["requestId"].startswith("req_")
    nothing_left()


def test_malformed_json(api_client, nothing_left):
    response = api_client.post("/api/v1/sandboxes", "{not json", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    nothing_left()


def test_duplicate_name(api_client, create_sandbox, docker_client):
    create_sandbox(name="twin")
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3", "name": "twin"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "sandbox_name_taken"
    assert Sandbox.objects.count() == 1
    assert len(docker_client.containers.list(all=True, filters={"label": INSTANCE_LABEL})) == 1


def test_name_is_free_again_after_destroy(api_client, create_sandbox):
    first = create_sandbox(name="reuse")
    assert api_client.delete(f"/api/v1/sandboxes/{first['id']}").status_code == 204
    second = create_sandbox(name="reuse")
    assert second["id"] != first["id"]


def test_quota(api_client, create_sandbox, settings, docker_client):
    settings.VIBEBOX_MAX_SANDBOXES_PER_OWNER = 1
    create_sandbox()
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert response.status_code == 402 and response.json()["error"]["code"] == "quota_exceeded"
    assert Sandbox.objects.count() == 1


def test_engine_down_is_503_and_leaves_nothing(api_client, nothing_left, monkeypatch):
    # Point the driver at an engine socket that does not exist: a real connection failure.
    from apps.sandboxes import runtime
    from apps.sandboxes.runtime.docker import DockerDriver

    # runtime.driver_for (what create calls for its sandbox) asks runtime.get_driver.
    broken = DockerDriver(base_url="unix:///nonexistent/docker.sock")
    monkeypatch.setattr(runtime, "get_driver", lambda node=None: broken)
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "runtime_unavailable"
    nothing_left()


def test_disk_limit_where_unsupported(api_client, nothing_left):
    from apps.sandboxes.runtime import get_driver

    if get_driver().engine_info().supports_disk_limit:
        pytest.skip("this engine can limit disk size")
    response = api_client.post(
        "/api/v1/sandboxes", {"template": "python-3", "resources": {"disk": "1g"}}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "disk_limit_unsupported"
    nothing_left()


def test_missing_template_image_is_503_and_leaves_nothing(api_client, templates, docker_client):
    from apps.marketplace.models import Template

    Template.objects.create(name="ghost", display_name="Ghost", image="vibebox/ghost:missing", user="sandbox")
    response = api_client.post("/api/v1/sandboxes", {"template": "ghost"}, format="json")
    assert response.status_code == 503 and response.json()["error"]["code"] == "template_unavailable"
    assert Sandbox.objects.count() == 0
    assert not docker_client.containers.list(all=True, filters={"label": INSTANCE_LABEL})
    assert not docker_client.volumes.list(filters={"label": INSTANCE_LABEL})
