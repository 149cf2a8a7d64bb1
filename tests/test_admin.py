"""The Django admin lists sandboxes, keys and templates, and never shows key material."""

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.conftest import sandbox_row


@pytest.fixture
def admin_client(client, db):
    admin = get_user_model().objects.create_superuser(username="root", password="pw-root-1234")
    client.force_login(admin)
    return client


def test_admin_pages(admin_client, api_key, templates, owner):
    key, secret = api_key
    # "_5C" is an escape (a backslash) in the admin's URLs: links must quote ids as the admin's own
    # do. Random ids that happened to start so made this test fail now and then.
    sandbox = sandbox_row(owner, templates["node-20"], id="sbx_5CJywTgwyMYSwLhhqbWO", name="shown")
    for url in (
        "/admin/sandboxes/sandbox/",
        reverse("admin:sandboxes_sandbox_change", args=[quote(sandbox.pk)]),
        "/admin/keys/apikey/",
        reverse("admin:keys_apikey_change", args=[quote(key.pk)]),
        "/admin/marketplace/template/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert secret.encode() not in response.content
        assert key.key_hash.encode() not in response.content
    listing = admin_client.get("/admin/sandboxes/sandbox/").content
    assert b"shown" in listing
    assert reverse("admin:sandboxes_sandbox_change", args=[quote(sandbox.pk)]).encode() in listing
    assert b"node-20" in admin_client.get("/admin/marketplace/template/").content
