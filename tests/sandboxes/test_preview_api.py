"""The REST side of preview URLs (docs/api.md, "Preview URLs"): a sandbox's ports, a signed URL for
one, a port's public flag; owner, outsider, anonymous and bad input. On sandbox rows without a
container (a stopped sandbox listens on nothing: nothing is asked of the engine); the listening
side is test_preview.py's, against a real sandbox."""

import time

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes.models import Sandbox
from apps.sandboxes.preview import tokens
from tests.conftest import sandbox_row
from tests.test_openapi import Checker, _generate


@pytest.fixture
def sandbox(owner, templates):
    return sandbox_row(owner, templates["python-3"], name="web", status="stopped")


def test_ports_list_the_template_s_declared_ports_and_public_ones(api_client, sandbox):
    response = api_client.get(f"/api/v1/sandboxes/{sandbox.pk}/ports")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "ports": [
            {
                "port": 8000,
                "listening": False,
                "declared": True,
                "public": False,
                "address": "",
                "description": "Application port",
                "url": f"http://8000-{sandbox.pk}.preview.localhost:8000/",
                "pathUrl": f"http://testserver/preview/{sandbox.pk}/8000/",
            }
        ]
    }
    assert api_client.patch(f"/api/v1/sandboxes/{sandbox.pk}/ports/3000", {"public": True}, format="json").json() == {
        "port": 3000,
        "listening": False,
        "declared": False,
        "public": True,
        "address": "",
        "description": "",
        "url": f"http://3000-{sandbox.pk}.preview.localhost:8000/",
        "pathUrl": f"http://testserver/preview/{sandbox.pk}/3000/",
    }
    listed = api_client.get(f"/api/v1/sandboxes/{sandbox.pk}/ports").json()["ports"]
    assert [(entry["port"], entry["public"]) for entry in listed] == [(3000, True), (8000, False)]


def test_a_port_url_carries_a_signed_expiring_token(api_client, sandbox, settings):
    before = time.time()
    response = api_client.get(f"/api/v1/sandboxes/{sandbox.pk}/ports/3000/url", {"expiresIn": "2h"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["port"] == 3000 and body["public"] is False
    assert body["url"] == f"http://3000-{sandbox.pk}.preview.localhost:8000/?vibebox_token={body['token']}"
    assert tokens.token_check(body["token"], sandbox_id=sandbox.pk, port=3000) is None
    assert tokens.token_check(body["token"], sandbox_id=sandbox.pk, port=3001) == "invalid"
    assert before + 7200 - 1 <= tokens.token_expiry(body["token"]) <= time.time() + 7200
    assert body["expiresAt"].endswith("Z")

    path = api_client.get(f"/api/v1/sandboxes/{sandbox.pk}/ports/3000/url", {"form": "path"}).json()
    assert path["url"] == f"http://testserver/preview/{sandbox.pk}/3000/?vibebox_token={path['token']}"
    assert tokens.token_expiry(path["token"]) <= time.time() + 3600  # the default: an hour

    settings.VIBEBOX_PUBLIC_URL = "https://vibebox.example.com"
    settings.VIBEBOX_PREVIEW_DOMAIN = "preview.example.com"
    host = api_client.get(f"/api/v1/sandboxes/{sandbox.pk}/ports/3000/url").json()
    assert host["url"].startswith(f"https://3000-{sandbox.pk}.preview.example.com/?vibebox_token=")
    path = api_client.get(f"/api/v1/sandboxes/{sandbox.pk}/ports/3000/url", {"form": "path"}).json()
    assert path["url"].startswith(f"https://vibebox.example.com/preview/{sandbox.pk}/3000/?")


@pytest.mark.parametrize("port", ["0", "65536", "abc", "49983", "-1", "3000.5", "00000003000", "³", "٣٠٠٠"])
def test_a_bad_port_is_invalid_port(api_client, sandbox, port):
    for response in (
        api_client.get(f"/api/v1/sandboxes/{sandbox.pk}/ports/{port}/url"),
        api_client.patch(f"/api/v1/sandboxes/{sandbox.pk}/ports/{port}", {"public": True}, format="json"),
    ):
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "invalid_port"
    assert Sandbox.objects.get(pk=sandbox.pk).ports == {}


def test_bad_url_and_patch_input(api_client, sandbox):
    base = f"/api/v1/sandboxes/{sandbox.pk}/ports/3000"
    for expires in ("8d", "0", "soon", "-5"):
        response = api_client.get(f"{base}/url", {"expiresIn": expires})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_duration", expires
    response = api_client.get(f"{base}/url", {"form": "iframe"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    for body, code in (
        ({"public": "yes"}, "validation_error"),
        ({}, "validation_error"),
        ({"public": True, "extra": 1}, "unknown_field"),
    ):
        response = api_client.patch(base, body, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == code, body
    assert Sandbox.objects.get(pk=sandbox.pk).ports == {}
    assert not AuditEntry.objects.filter(action="sandbox.port_updated").exists()


def test_public_flag_is_audited_once_per_change(api_client, sandbox):
    url = f"/api/v1/sandboxes/{sandbox.pk}/ports/3000"
    for public in (True, True, False, False):
        assert api_client.patch(url, {"public": public}, format="json").json()["public"] is public
    entries = AuditEntry.objects.filter(action="sandbox.port_updated").order_by("id")
    assert [entry.changes for entry in entries] == [
        {"port": 3000, "public": [False, True]},
        {"port": 3000, "public": [True, False]},
    ]
    assert Sandbox.objects.get(pk=sandbox.pk).ports == {}


def test_outsider_404_anonymous_401_and_scopes(sandbox, outsider_client, client_for, owner):
    paths = [f"/api/v1/sandboxes/{sandbox.pk}/ports", f"/api/v1/sandboxes/{sandbox.pk}/ports/3000/url"]
    patch = f"/api/v1/sandboxes/{sandbox.pk}/ports/3000"
    for path in paths:
        response = outsider_client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "sandbox_not_found"
        assert APIClient().get(path).status_code == 401
    assert outsider_client.patch(patch, {"public": True}, format="json").status_code == 404
    assert (
        outsider_client.patch(f"/api/v1/sandboxes/{sandbox.pk}/ports/0", {"public": True}, format="json").status_code
        == 404
    )
    assert APIClient().patch(patch, {"public": True}, format="json").status_code == 401

    reader = client_for(owner, [SANDBOXES_READ])
    assert reader.get(paths[1]).status_code == 200
    response = reader.patch(patch, {"public": True}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert Sandbox.objects.get(pk=sandbox.pk).ports == {}


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("openapi") / "schema.json")


def test_answers_match_their_schemas(document, api_client, sandbox):
    check = Checker(document, api_client)
    ids = {"sandbox_id": sandbox.pk, "port": 3000}
    base = "/api/v1/sandboxes/{sandbox_id}/ports"
    check("get", base, 200, **ids)
    check("get", base + "/{port}/url", 200, query="expiresIn=30m&form=path", **ids)
    check("patch", base + "/{port}", 200, {"public": True}, **ids)
    check("get", base + "/{port}/url", 400, query="expiresIn=8d", **ids)
