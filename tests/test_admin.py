"""The Django admin lists sandboxes, keys and templates, and never shows key material."""

import pytest
from django.contrib.auth import get_user_model

from apps.sandboxes.models import Sandbox


@pytest.fixture
def admin_client(client, db):
    admin = get_user_model().objects.create_superuser(username="root", password="pw-root-1234")
    client.force_login(admin)
    return client


def test_admin_pages(admin_client, api_key, templates, owner):
    key, secret = api_key
    sandbox = Sandbox.objects.create(
        owner=owner, name="shown", template=templates["node-20"], image="x", status="running", cpu=1, memory=1 << 28
    )
    for url in (
        "/admin/sandboxes/sandbox/",
        f"/admin/sandboxes/sandbox/{sandbox.pk}/change/",
        "/admin/keys/apikey/",
        f"/admin/keys/apikey/{key.pk}/change/",
        "/admin/marketplace/template/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert secret.encode() not in response.content
        assert key.key_hash.encode() not in response.content
    assert b"shown" in admin_client.get("/admin/sandboxes/sandbox/").content
    assert b"node-20" in admin_client.get("/admin/marketplace/template/").content
