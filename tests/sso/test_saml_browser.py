"""Single sign-on through a real SAML 2.0 identity provider (pysaml2, signing with xmlsec1) on
loopback, in Chromium: VibeBox's side is django-allauth's SAML provider (python3-saml)."""

from __future__ import annotations

import os
import re
import urllib.request

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.orgs.models import Membership

from .conftest import CHROMIUM, IDP_PASSWORD, verify_domains

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.skipif(not os.path.exists("/usr/bin/xmlsec1"), reason="Debian's xmlsec1 is not installed"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def configured(vibebox, saml_idp, acme, dns_server, settings):
    """ACME's connection to the IdP; the IdP knows VibeBox's metadata (as read from VibeBox)."""
    api = APIClient()
    api.force_login(acme.owner)
    body = {
        "protocol": "saml",
        "domains": ["acme.test"],
        "defaultRole": "developer",
        "saml": {"entityId": saml_idp.entity_id, "ssoUrl": saml_idp.sso_url, "x509cert": saml_idp.x509cert},
    }
    response = api.put(f"/api/v1/orgs/{acme.slug}/sso", body, format="json")
    assert response.status_code == 200, response.content
    verify_domains(api, acme.slug, dns_server, settings)
    with urllib.request.urlopen(f"{vibebox}/accounts/saml/{acme.pk}/metadata/", timeout=10) as answer:
        saml_idp.sp_metadata = answer.read().decode()
    saml_idp.mode = "normal"
    yield saml_idp
    saml_idp.mode = "normal"


def sign_in_through_idp(page, vibebox: str, username: str):
    page.goto(f"{vibebox}/login/")
    page.get_by_label("Email or organization").fill("someone@acme.test")
    page.get_by_role("button", name="Continue with SSO").click()
    page.wait_for_url(re.compile(r"/sso/redirect"))  # the IdP's own sign-in page
    page.get_by_label("SAML user").fill(username)
    page.get_by_label("SAML password").fill(IDP_PASSWORD)
    page.get_by_role("button", name="Sign in to the SAML IdP").click()


def test_sign_in_lands_in_the_org_with_the_default_role(vibebox, configured, acme, page):
    from playwright.sync_api import expect

    sign_in_through_idp(page, vibebox, "alice")
    page.wait_for_url(re.compile(r"/sandboxes/$"))
    expect(page.locator("#org-switch")).to_have_value("acme")
    alice = get_user_model().objects.get(email="alice@acme.test")
    assert Membership.objects.get(org=acme, user=alice).role == "developer"
    assert alice.socialaccount_set.get().uid == "alice"  # the persistent NameID

    # Again: the same user, found by the IdP's identity.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login/"))  # signed out before the next page is asked for
    sign_in_through_idp(page, vibebox, "alice")
    page.wait_for_url(re.compile(r"/sandboxes/$"))
    assert get_user_model().objects.filter(email="alice@acme.test").count() == 1


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("wrong-audience", "is not a valid audience for this Response"),
        ("expired", "Could not validate timestamp: expired"),
        ("bad-signature", "Signature validation failed"),
    ],
)
def test_a_wrong_audience_expired_or_badly_signed_assertion_is_refused(vibebox, configured, acme, page, mode, why):
    from playwright.sync_api import expect

    configured.mode = mode
    sign_in_through_idp(page, vibebox, "alice")
    expect(page.get_by_role("heading", name="Single sign-on refused")).to_be_visible()
    expect(page.get_by_text("Reason:")).to_contain_text(why)
    assert not get_user_model().objects.filter(email="alice@acme.test").exists()
    page.goto(f"{vibebox}/sandboxes/")
    page.wait_for_url(re.compile(r"/login/"))


def test_an_email_outside_the_verified_domains_is_refused(vibebox, configured, acme, page):
    from playwright.sync_api import expect

    sign_in_through_idp(page, vibebox, "mallory")
    expect(page.get_by_role("alert")).to_contain_text("not one of ACME's verified single sign-on domains")
    assert not get_user_model().objects.filter(email="mallory@elsewhere.test").exists()
