"""Sandbox environment variables: precedence, secrets, encryption at rest, restarts."""

import pytest

from apps.sandboxes.models import Execution, Sandbox


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3", env={"FROM_CREATE": "c", "SHARED": "sandbox"})["id"]


def sh(api_client, sandbox_id, command, **extra):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["stdout"]


def test_set_get_replace_delete(api_client, sandbox_id):
    url = f"/api/v1/sandboxes/{sandbox_id}/env"
    assert api_client.get(url).json() == {
        "FROM_CREATE": {"value": "c", "secret": False},
        "SHARED": {"value": "sandbox", "secret": False},
    }
    response = api_client.patch(url, {"NODE_ENV": "production", "FROM_CREATE": None}, format="json")
    assert response.status_code == 200 and set(response.json()) == {"NODE_ENV", "SHARED"}
    assert api_client.get(f"{url}/NODE_ENV").json() == {"name": "NODE_ENV", "value": "production", "secret": False}
    assert sh(api_client, sandbox_id, "echo $NODE_ENV-${FROM_CREATE:-gone}") == "production-gone\n"
    response = api_client.put(url, {"ONLY": "1"}, format="json")
    assert response.json() == {"ONLY": {"value": "1", "secret": False}}
    assert api_client.delete(f"{url}/ONLY").status_code == 204
    missing = api_client.get(f"{url}/ONLY")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "env_var_not_found"


def test_request_env_wins_over_sandbox_env(api_client, sandbox_id):
    assert sh(api_client, sandbox_id, "echo $SHARED") == "sandbox\n"
    assert sh(api_client, sandbox_id, "echo $SHARED", env={"SHARED": "request"}) == "request\n"
    assert sh(api_client, sandbox_id, "echo $PYTHONUNBUFFERED") == "1\n"  # the template's default env


def test_secrets_are_masked_encrypted_and_kept_out_of_the_container(api_client, sandbox_id, docker_client):
    url = f"/api/v1/sandboxes/{sandbox_id}/env"
    api_client.patch(url, {"API_TOKEN": {"value": "s3cr3t-value", "secret": True}}, format="json")
    assert api_client.get(url).json()["API_TOKEN"] == {"value": "********", "secret": True}
    assert api_client.get(f"{url}/API_TOKEN").json()["value"] == "********"
    body = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "echo $API_TOKEN"}, format="json")
    assert body.json()["stdout"] == "s3cr3t-value\n"  # the command itself sees it
    stored = Execution.objects.get(pk=body.json()["executionId"])
    assert "s3cr3t-value" not in stored.stdout and "********" in stored.stdout
    raw = Sandbox.objects.filter(pk=sandbox_id).values_list("env", flat=True).get()
    assert "s3cr3t-value" not in str(raw) and "sandbox" not in str(raw)  # encrypted at rest
    config_env = docker_client.api.inspect_container(sandbox_id)["Config"]["Env"]
    assert not any("s3cr3t" in item or item.startswith("SHARED=") for item in config_env)


def test_variables_survive_a_restart(api_client, sandbox_id):
    api_client.patch(f"/api/v1/sandboxes/{sandbox_id}/env", {"KEEP": "yes"}, format="json")
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/restart")
    assert sh(api_client, sandbox_id, "echo $KEEP") == "yes\n"


@pytest.mark.parametrize(
    "body, code",
    [
        ({"A=B": "x"}, "invalid_env"),
        ({"NEW\nLINE": "x"}, "invalid_env"),
        ({"OK": "nul\u0000"}, "nul_character"),  # refused by the JSON parser, as any NUL in a body
        ({"OK": 5}, "invalid_env"),
        (["A"], "invalid_env"),
    ],
)
def test_bad_names_and_values(api_client, sandbox_id, body, code):
    response = api_client.patch(f"/api/v1/sandboxes/{sandbox_id}/env", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert set(api_client.get(f"/api/v1/sandboxes/{sandbox_id}/env").json()) == {"FROM_CREATE", "SHARED"}
