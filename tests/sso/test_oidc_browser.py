"""Single sign-on through a real OpenID Connect provider (django-oauth-toolkit, its own process on
loopback), in Chromium: configured by the owner over the API, signed in from VibeBox's sign-in page."""

from __future__ import annotations

import os
import re

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.orgs.models import Membership
from apps.sso.models import SsoDomain

from .conftest import CHROMIUM, IDP_PASSWORD, verify_domains

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def configure(dns_server, settings):
    """Configures the organization's connection to the provider (as its owner, over the API) and
    verifies its domain (a TXT record on the loopback DNS server)."""

    def configure(org, issuer: str, client: str, **fields) -> dict:
        api = APIClient()
        api.force_login(org.owner)
        body = {
            "protocol": "oidc",
            "domains": ["acme.test"],
            "defaultRole": "viewer",
            "oidc": {"serverUrl": issuer, "clientId": client, "clientSecret": f"{client}-secret"},
            **fields,
        }
        response = api.put(f"/api/v1/orgs/{org.slug}/sso", body, format="json")
        assert response.status_code == 200, response.content
        verify_domains(api, org.slug, dns_server, settings)
        return response.json()

    return configure


def sign_in_through_idp(page, vibebox: str, email: str, username: str):
    page.goto(f"{vibebox}/login/")
    page.get_by_label("Email or organization").fill(email)
    page.get_by_role("button", name="Continue with SSO").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))  # the provider's own sign-in page
    page.get_by_label("IdP user").fill(username)
    page.get_by_label("IdP password").fill(IDP_PASSWORD)
    page.get_by_role("button", name="Sign in to the IdP").click()


def test_sign_in_lands_in_the_org_with_the_default_role(vibebox, oidc_idp, acme, page, configure):
    from playwright.sync_api import expect

    shown = configure(acme, oidc_idp, "vibebox")
    assert shown["oidc"]["redirectUri"] == f"http://testserver/accounts/oidc/sso-{acme.pk}/login/callback/"
    assert "clientSecret" not in shown["oidc"]

    page.goto(f"{vibebox}/login/")
    # The password form's button stays the only one named "Sign in" (tests/dashboard/test_browser.py clicks it).
    assert page.get_by_role("button", name="Sign in").count() == 1
    sign_in_through_idp(page, vibebox, "alice@acme.test", "alice")
    page.wait_for_url(re.compile(r"/sandboxes/$"))
    expect(page.get_by_role("heading", name="Sandboxes")).to_be_visible()
    expect(page.locator("#org-switch")).to_have_value("acme")  # the session's organization

    alice = get_user_model().objects.get(email="alice@acme.test")
    assert not alice.has_usable_password()
    assert Membership.objects.get(org=acme, user=alice).role == "viewer"

    # A second sign-in finds the same user (the linked identity), and keeps a changed role.
    Membership.objects.filter(org=acme, user=alice).update(role="developer")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login/"))  # signed out (a page asked for sooner could race the sign-out)
    page.goto(f"{vibebox}/keys/")  # a page that needs a sign-in: back there afterwards
    page.wait_for_url(re.compile(r"/login/\?next="))
    page.get_by_label("Email or organization").fill("acme")  # by the organization's slug this time
    page.get_by_role("button", name="Continue with SSO").click()  # still signed in at the provider
    page.wait_for_url(re.compile(r"/keys/$"))
    assert get_user_model().objects.filter(email="alice@acme.test").count() == 1
    assert Membership.objects.get(org=acme, user=alice).role == "developer"
    # The audit log: the member the IdP brought, and each sign-in through it.
    actions = list(
        AuditEntry.objects.filter(org_id=acme.pk, actor_user_id=alice.pk)
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions[0] == "member.added" and actions.count("sso.login") == 2
    assert AuditEntry.objects.get(org_id=acme.pk, action="member.added", actor_user_id=alice.pk).changes["via"] == "sso"


@pytest.mark.parametrize(
    ("client", "why"),
    [
        ("wrong-audience", "Audience doesn't match"),
        ("expired", "Signature has expired"),
        ("wrong-issuer", "Invalid issuer"),
    ],
)
def test_an_id_token_for_another_audience_expired_or_of_another_issuer_is_refused(
    vibebox, oidc_idp, acme, page, configure, client, why
):
    from playwright.sync_api import expect

    configure(acme, oidc_idp, client)
    sign_in_through_idp(page, vibebox, "alice@acme.test", "alice")
    expect(page.get_by_role("heading", name="Single sign-on refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("did not pass the checks")
    expect(page.get_by_text("Reason:")).to_contain_text(why)  # PyJWT's words for an expired token
    assert not get_user_model().objects.filter(email="alice@acme.test").exists()
    page.goto(f"{vibebox}/sandboxes/")
    page.wait_for_url(re.compile(r"/login/"))  # not signed in


def test_an_email_outside_the_verified_domains_is_refused(vibebox, oidc_idp, acme, page, configure):
    from playwright.sync_api import expect

    configure(acme, oidc_idp, "vibebox")
    sign_in_through_idp(page, vibebox, "acme", "mallory")  # the provider vouches for mallory@elsewhere.test
    expect(page.get_by_role("alert")).to_contain_text("not one of ACME's verified single sign-on domains (acme.test)")
    assert not get_user_model().objects.filter(email="mallory@elsewhere.test").exists()
    assert not Membership.objects.filter(org=acme).exclude(user=acme.owner).exists()


def test_a_domain_not_verified_admits_nobody(vibebox, oidc_idp, acme, page, configure):
    from playwright.sync_api import expect

    configure(acme, oidc_idp, "vibebox")
    SsoDomain.objects.update(verified_at=None)  # as if its TXT record had never been published
    sign_in_through_idp(page, vibebox, "acme", "alice")  # by slug: an email of the domain starts nothing
    expect(page.get_by_role("alert")).to_contain_text("whose domain is not one of ACME's verified single sign-on")
    assert not get_user_model().objects.filter(email="alice@acme.test").exists()


def test_an_existing_account_with_the_email_is_not_taken_over(vibebox, oidc_idp, acme, page, configure):
    from playwright.sync_api import expect

    existing = get_user_model().objects.create_user("alice-local", "Alice@acme.test", "pw-local-1")
    configure(acme, oidc_idp, "vibebox")
    sign_in_through_idp(page, vibebox, "alice@acme.test", "alice")
    expect(page.get_by_role("alert")).to_contain_text("An account with the email alice@acme.test exists already")
    assert not existing.socialaccount_set.exists()
    assert not Membership.objects.filter(org=acme, user=existing).exists()
    assert get_user_model().objects.filter(email__iexact="alice@acme.test").count() == 1


def test_a_deactivated_user_is_refused(vibebox, oidc_idp, acme, page, configure):
    from playwright.sync_api import expect

    configure(acme, oidc_idp, "vibebox")
    sign_in_through_idp(page, vibebox, "alice@acme.test", "alice")
    page.wait_for_url(re.compile(r"/sandboxes/$"))
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/login/"))  # signed out before the next page is asked for
    get_user_model().objects.filter(email="alice@acme.test").update(is_active=False)
    page.goto(f"{vibebox}/login/")
    page.get_by_label("Email or organization").fill("alice@acme.test")
    page.get_by_role("button", name="Continue with SSO").click()  # still signed in at the provider
    expect(page.get_by_role("alert")).to_contain_text("This account is deactivated")
