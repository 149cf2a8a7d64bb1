"""Ephemeral sandboxes' own limits (issue 29 item 5, spec 3.3): the operator's maximum timeout,
CPU, memory and live ephemeral sandboxes per organization (VIBEBOX_EPHEMERAL_*), refused with
their own 4xx codes through the real create and update paths, and the dashboard's warning with
the time left."""

import re

from apps.sandboxes.models import Sandbox


def _refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def test_a_timeout_above_the_ephemeral_maximum_is_refused(api_client, templates, settings):
    settings.VIBEBOX_EPHEMERAL_MAX_TIMEOUT = 3600
    response = api_client.post(
        "/api/v1/sandboxes", {"template": "python-3", "ephemeral": True, "timeout": "2h"}, format="json"
    )
    error = _refused(response, 400, "ephemeral_timeout_too_long")
    assert error["details"] == {"max": 3600, "requested": 7200} and "3600 seconds" in error["message"]
    assert not Sandbox.objects.exists()  # refused before anything was made


def test_the_default_timeout_never_exceeds_the_maximum_and_extending_is_capped(api_client, create_sandbox, settings):
    settings.VIBEBOX_EPHEMERAL_MAX_TIMEOUT = 600  # below the 30 min default
    body = create_sandbox(ephemeral=True)
    assert body["ephemeral"] is True and body["timeout"] == 600
    response = api_client.patch(f"/api/v1/sandboxes/{body['id']}", {"timeout": "1h"}, format="json")
    _refused(response, 400, "ephemeral_timeout_too_long")
    assert Sandbox.objects.get(pk=body["id"]).timeout_seconds == 600  # unchanged
    response = api_client.patch(f"/api/v1/sandboxes/{body['id']}", {"timeout": "5m"}, format="json")
    assert response.status_code == 200 and response.json()["timeout"] == 300


def test_cpu_and_memory_above_the_ephemeral_maximum_are_refused(api_client, templates, settings):
    settings.VIBEBOX_EPHEMERAL_MAX_CPU = 0.5
    settings.VIBEBOX_EPHEMERAL_MAX_MEMORY = 512 * 1024**2
    body = {"template": "python-3", "ephemeral": True, "resources": {"cpu": 1, "memory": "1g"}}
    error = _refused(api_client.post("/api/v1/sandboxes", body, format="json"), 400, "ephemeral_resources_too_large")
    assert error["details"] == {
        "cpu": {"max": 0.5, "requested": 1.0},
        "memory": {"max": 512 * 1024**2, "requested": 1024**3},
    }
    assert "0.5 CPU" in error["message"]
    # Without a resources body the server's default (1 CPU) is what is asked: refused too.
    no_resources = {"template": "python-3", "ephemeral": True}
    error = _refused(
        api_client.post("/api/v1/sandboxes", no_resources, format="json"), 400, "ephemeral_resources_too_large"
    )
    assert set(error["details"]) == {"cpu"}
    assert not Sandbox.objects.exists()


def test_live_ephemeral_sandboxes_per_organization(api_client, create_sandbox, settings):
    settings.VIBEBOX_EPHEMERAL_MAX_PER_ORG = 1
    first = create_sandbox(ephemeral=True)
    body = {"template": "python-3", "ephemeral": True}
    error = _refused(api_client.post("/api/v1/sandboxes", body, format="json"), 409, "ephemeral_limit_reached")
    assert error["details"] == {"limit": 1, "live": 1}
    assert Sandbox.objects.count() == 1
    # A sandbox that is not ephemeral is not counted; a destroyed ephemeral one frees its place.
    assert create_sandbox()["ephemeral"] is False
    assert api_client.delete(f"/api/v1/sandboxes/{first['id']}").status_code == 204
    assert create_sandbox(ephemeral=True)["ephemeral"] is True


def test_the_dashboard_warns_with_the_time_left(client, owner, create_sandbox):
    browser = client
    browser.force_login(owner)
    ephemeral = create_sandbox(ephemeral=True, timeout="45m")
    page = browser.get(f"/sandboxes/{ephemeral['id']}/").content.decode()
    assert 'id="ephemeral-warning"' in page and "Ephemeral sandbox" in page
    assert re.search(r"in <strong>4[45]\s+minutes</strong> \(at \d{4}-\d\d-\d\d ", page), page
    listing = browser.get("/sandboxes/").content.decode()
    assert "(ephemeral)" in listing
    kept = create_sandbox()
    assert 'id="ephemeral-warning"' not in browser.get(f"/sandboxes/{kept['id']}/").content.decode()
