"""Sandbox lifecycle through the API, against the real Docker engine."""

import threading

import pytest
from django.db import close_old_connections

from apps.sandboxes.models import Sandbox


def container_state(docker_client, sandbox_id):
    return docker_client.api.inspect_container(sandbox_id)["State"]["Status"]


def test_create_returns_a_running_sandbox(create_sandbox, docker_client):
    body = create_sandbox(template="python-3", name="first", metadata={"team": "ml"})
    assert body["id"].startswith("sbx_") and len(body["id"]) >= 24
    assert body["name"] == "first"
    assert body["template"] == "python-3.13"  # python-3 is its alias
    assert body["status"] == "running"
    assert body["ephemeral"] is False and body["expiresAt"] is None
    assert body["startedAt"] and body["createdAt"]
    assert body["resources"]["cpu"] == 1.0 and body["resources"]["memory"] == "256m"
    assert body["metadata"] == {"team": "ml"}
    assert container_state(docker_client, body["id"]) == "running"


def test_round_trip_stop_start_restart_destroy(api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="node-20")["id"]
    url = f"/api/v1/sandboxes/{sandbox_id}"

    response = api_client.post(f"{url}/stop")
    assert response.status_code == 200 and response.json()["status"] == "stopped"
    assert container_state(docker_client, sandbox_id) == "exited"

    # stopping again is an impossible transition
    response = api_client.post(f"{url}/stop")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "sandbox_state_conflict"

    response = api_client.post(f"{url}/start")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert container_state(docker_client, sandbox_id) == "running"
    started = docker_client.api.inspect_container(sandbox_id)["State"]["StartedAt"]

    response = api_client.post(f"{url}/restart")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert docker_client.api.inspect_container(sandbox_id)["State"]["StartedAt"] != started

    assert api_client.delete(url).status_code == 204
    assert not docker_client.containers.list(all=True, filters={"name": sandbox_id})
    assert not docker_client.volumes.list(filters={"name": f"{sandbox_id}-workspace"})
    response = api_client.get(url)
    assert response.status_code == 200 and response.json()["status"] == "destroyed"
    # destroy is idempotent, so a retried DELETE is harmless
    assert api_client.delete(url).status_code == 204


def test_auto_start_false_creates_a_stopped_sandbox(api_client, create_sandbox, docker_client):
    body = create_sandbox(autoStart=False)
    assert body["status"] == "stopped" and body["startedAt"] is None
    assert container_state(docker_client, body["id"]) == "created"
    response = api_client.post(f"/api/v1/sandboxes/{body['id']}/start")
    assert response.json()["status"] == "running"


def test_workspace_survives_a_restart(api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    container = docker_client.containers.get(sandbox_id)
    assert container.exec_run(["sh", "-c", "echo kept > /workspace/note.txt"]).exit_code == 0
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop")
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/start")
    result = docker_client.containers.get(sandbox_id).exec_run(["cat", "/workspace/note.txt"])
    assert result.output == b"kept\n"


def test_lookup_by_name_list_filters_and_patch(api_client, create_sandbox):
    a = create_sandbox(name="alpha", metadata={"team": "ml"})
    b = create_sandbox(name="beta", template="node-20", metadata={"team": "web"}, autoStart=False)

    assert api_client.get("/api/v1/sandboxes/alpha").json()["id"] == a["id"]

    def names(query):
        response = api_client.get(f"/api/v1/sandboxes{query}")
        assert response.status_code == 200
        return sorted(item["name"] for item in response.json()["results"])

    assert names("") == ["alpha", "beta"]
    assert names("?status=stopped") == ["beta"]
    assert names("?template=node-20") == ["beta"]
    assert names("?name=alpha") == ["alpha"]
    assert names("?metadata.team=web") == ["beta"]
    page = api_client.get("/api/v1/sandboxes?limit=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]

    response = api_client.patch(
        f"/api/v1/sandboxes/{b['id']}", {"name": "gamma", "metadata": {"x": "1"}, "timeout": "2h"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "gamma" and body["metadata"] == {"x": "1"} and body["timeout"] == 7200
    assert body["expiresAt"]
    response = api_client.patch("/api/v1/sandboxes/gamma", {"name": "alpha"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "sandbox_name_taken"
    response = api_client.patch("/api/v1/sandboxes/gamma", {"timeout": None}, format="json")
    assert response.json()["expiresAt"] is None


def test_ephemeral_sandbox_gets_a_default_expiry(create_sandbox):
    body = create_sandbox(ephemeral=True)
    assert body["ephemeral"] is True and body["timeout"] == 1800 and body["expiresAt"]
    body = create_sandbox(timeout="1d")
    assert body["timeout"] == 86400


def test_resources_are_applied_to_the_container(create_sandbox, docker_client):
    from apps.sandboxes.specs import default_disk

    body = create_sandbox(resources={"cpu": 0.5, "memory": "512m"})
    disk = "10g" if default_disk() else None  # VIBEBOX_DEFAULT_DISK where the engine can enforce it
    assert body["resources"] == {"cpu": 0.5, "memory": "512m", "memoryBytes": 512 * 1024**2, "disk": disk}
    host = docker_client.api.inspect_container(body["id"])["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["Memory"] == 512 * 1024**2 == host["MemorySwap"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_stops_cannot_both_win(create_sandbox, api_key):
    from tests.conftest import _client

    sandbox_id = create_sandbox()["id"]
    results = []

    def stop():
        client = _client(api_key[1])
        results.append(client.post(f"/api/v1/sandboxes/{sandbox_id}/stop").status_code)
        close_old_connections()

    threads = [threading.Thread(target=stop) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 409, 409]
    assert Sandbox.objects.get(pk=sandbox_id).status == "stopped"
