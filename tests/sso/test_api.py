"""GET/PUT/DELETE /api/v1/orgs/{slug}/sso, and "SSO required" at the password forms."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from apps.orgs.models import Membership, Organization
from apps.sso.models import SsoConnection
from vibebox import crypto

from .conftest import verify_domains
from .saml_idp import key_and_cert

OIDC = {
    "protocol": "oidc",
    "domains": ["Acme.test", "acme-corp.test"],
    "oidc": {"serverUrl": "https://idp.acme.test/", "clientId": "vibebox", "clientSecret": "s3cret"},
}
SAML = {
    "protocol": "saml",
    "domains": ["acme.test"],
    "defaultRole": "viewer",
    "saml": {"entityId": "https://idp.acme.test/saml", "ssoUrl": "https://idp.acme.test/sso", "x509cert": "MIIC..."},
}


@pytest.fixture
def certificate(tmp_path) -> str:
    return key_and_cert(tmp_path, "idp")[1].read_text()


@pytest.fixture
def org(owner):
    org = Organization.objects.create(slug="acme", name="ACME")
    Membership.objects.create(org=org, user=owner, role="owner")
    return org


def signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_owner_configures_oidc_and_the_secret_is_never_returned(org, owner, certificate):
    client = signed_in(owner)
    assert client.get("/api/v1/orgs/acme/sso").json()["error"]["code"] == "sso_not_configured"

    response = client.put("/api/v1/orgs/acme/sso", OIDC, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [d["domain"] for d in body["domains"]] == ["acme-corp.test", "acme.test"]
    assert not any(d["verified"] for d in body["domains"])
    assert body["domains"][1]["recordName"] == "_vibebox-verify.acme.test"
    assert body["domains"][1]["recordValue"].startswith("vibebox-verify=")
    assert body["defaultRole"] == "developer" and body["ssoRequired"] is False and body["enabled"] is True
    assert body["oidc"] == {
        "serverUrl": "https://idp.acme.test/",
        "clientId": "vibebox",
        "redirectUri": f"http://testserver/accounts/oidc/sso-{org.pk}/login/callback/",
    }
    assert (
        "s3cret" not in response.content.decode()
        and "s3cret" not in client.get("/api/v1/orgs/acme/sso").content.decode()
    )

    # A later PUT without the secret keeps it; the SocialApp is the same row.
    app_id = SsoConnection.objects.get(org=org).app_id
    again = {**OIDC, "ssoRequired": True, "oidc": {"serverUrl": "https://idp.acme.test/", "clientId": "vibebox"}}
    assert client.put("/api/v1/orgs/acme/sso", again, format="json").json()["ssoRequired"] is True
    connection = SsoConnection.objects.select_related("app").get(org=org)
    assert connection.app_id == app_id and crypto.decrypt(connection.secret) == "s3cret"
    assert "s3cret" not in connection.secret and connection.app.secret == ""  # encrypted, and not in allauth's row
    # Another client id needs its secret.
    other_client = {**again, "oidc": {"serverUrl": "https://idp.acme.test/", "clientId": "other"}}
    response = client.put("/api/v1/orgs/acme/sso", other_client, format="json")
    assert response.status_code == 400 and "clientSecret is required" in response.json()["error"]["message"]

    # Switched to SAML: the VibeBox side's URLs are shown for the IdP.
    saml = {**SAML, "saml": {**SAML["saml"], "x509cert": certificate}}
    body = client.put("/api/v1/orgs/acme/sso", saml, format="json").json()
    assert body["protocol"] == "saml" and "oidc" not in body
    assert body["saml"]["acsUrl"] == f"http://testserver/accounts/saml/{org.pk}/acs/"
    assert body["saml"]["spEntityId"] == f"http://testserver/accounts/saml/{org.pk}/metadata/"

    assert client.delete("/api/v1/orgs/acme/sso").status_code == 204
    assert not SsoConnection.objects.exists()
    assert client.delete("/api/v1/orgs/acme/sso").status_code == 404


def test_a_member_without_org_manage_gets_403_and_an_outsider_404(org, outsider):
    developer = get_user_model().objects.create_user("dev", password="pw-dev")
    Membership.objects.create(org=org, user=developer, role="admin")  # admin lacks org.manage
    response = signed_in(developer).put("/api/v1/orgs/acme/sso", OIDC, format="json")
    assert response.status_code == 403 and response.json()["error"]["details"]["permission"] == "org.manage"
    assert signed_in(outsider).get("/api/v1/orgs/acme/sso").status_code == 404
    assert APIClient().get("/api/v1/orgs/acme/sso").status_code == 401
    assert not SsoConnection.objects.exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**OIDC, "domains": ["not a domain"]}, "validation_error"),
        ({**OIDC, "domains": []}, "validation_error"),
        ({**OIDC, "defaultRole": "owner"}, "validation_error"),
        ({**OIDC, "oidc": {"serverUrl": "https://idp.acme.test/", "clientId": "x"}}, "validation_error"),
        ({**OIDC, "oidc": None, "protocol": "saml"}, "validation_error"),
        ({**OIDC, "extra": 1}, "unknown_field"),
        ({**OIDC, "oidc": {**OIDC["oidc"], "serverUrl": "http://idp.acme.test/"}}, "validation_error"),
        (SAML, "validation_error"),  # "MIIC...": not a certificate
        ({**OIDC, "oidc": {**OIDC["oidc"], "clientSecretTypo": "x"}}, "unknown_field"),
    ],
)
def test_bad_bodies_are_refused_and_change_nothing(org, owner, body, code):
    response = signed_in(owner).put("/api/v1/orgs/acme/sso", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not SsoConnection.objects.exists()


def test_a_domain_belongs_to_one_organization(org, owner):
    assert signed_in(owner).put("/api/v1/orgs/acme/sso", OIDC, format="json").status_code == 200
    other = Organization.objects.create(slug="other", name="Other")
    Membership.objects.create(org=other, user=owner, role="owner")
    response = signed_in(owner).put("/api/v1/orgs/other/sso", {**OIDC, "domains": ["acme.test"]}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "sso_domain_taken"
    assert not SsoConnection.objects.filter(org=other).exists()


def test_a_personal_org_has_no_sso(owner):
    from apps.orgs.services import personal_org_ensure

    personal = personal_org_ensure(user=owner)
    response = signed_in(owner).put(f"/api/v1/orgs/{personal.slug}/sso", OIDC, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "personal_org"


def test_sso_required_refuses_members_passwords_but_not_owners(org, owner):
    owner.set_password("pw-owner-1")
    owner.save()
    member = get_user_model().objects.create_user("member", "member@acme.test", "pw-member-1", is_staff=True)
    Membership.objects.create(org=org, user=member, role="developer")
    signed_in(owner).put("/api/v1/orgs/acme/sso", {**OIDC, "ssoRequired": True}, format="json")

    for path in ("/login/", "/admin/login/"):
        response = Client().post(path, {"username": "member", "password": "pw-member-1"})
        assert response.status_code == 200 and "_auth_user_id" not in response.wsgi_request.session
        assert "ACME requires single sign-on" in response.content.decode()
    # A wrong password says only that.
    response = Client().post("/login/", {"username": "member", "password": "wrong"})
    assert "requires single sign-on" not in response.content.decode()
    # The owner (org.manage) keeps their password, so a broken IdP cannot lock the org out.
    response = Client().post("/login/", {"username": "owner", "password": "pw-owner-1"})
    assert response.status_code == 302

    # Disabled connection, or SSO no longer required: the member signs in with the password again.
    signed_in(owner).put("/api/v1/orgs/acme/sso", {**OIDC, "ssoRequired": True, "enabled": False}, format="json")
    assert Client().post("/login/", {"username": "member", "password": "pw-member-1"}).status_code == 302


def test_sso_start_by_email_needs_a_verified_domain(org, owner, dns_server, settings):
    response = Client().post("/sso/", {"sso": "someone@nowhere.test"})
    assert response.status_code == 404 and "No organization signs in with single sign-on" in response.content.decode()
    api = signed_in(owner)
    api.put("/api/v1/orgs/acme/sso", OIDC, format="json")
    assert Client().post("/sso/", {"sso": "someone@acme.test"}).status_code == 404  # not verified yet
    verify_domains(api, "acme", dns_server, settings)
    # Verified: the sign-in starts (and fails on at the IdP, which does not exist: 502, not a 404).
    assert Client().post("/sso/", {"sso": "someone@ACME.test"}).status_code == 502
    api.put("/api/v1/orgs/acme/sso", {**OIDC, "enabled": False}, format="json")
    assert Client().post("/sso/", {"sso": "acme"}).status_code == 404  # a disabled connection starts nothing


def test_domains_are_verified_by_their_txt_record(org, owner, outsider, dns_server, settings):
    settings.VIBEBOX_SSO_DNS_SERVERS = [dns_server.address]
    api = signed_in(owner)
    domains = {d["domain"]: d for d in api.put("/api/v1/orgs/acme/sso", OIDC, format="json").json()["domains"]}
    dns_server.records["_vibebox-verify.acme.test"] = ["vibebox-verify=someone-elses-token"]
    dns_server.records["_vibebox-verify.acme-corp.test"] = ["unrelated", domains["acme-corp.test"]["recordValue"]]
    body = api.post("/api/v1/orgs/acme/sso/verify").json()
    verified = {d["domain"]: d["verified"] for d in body["domains"]}
    assert verified == {"acme-corp.test": True, "acme.test": False}

    # A PUT that keeps a domain keeps its verification (and token); a new one starts unverified.
    body = api.put("/api/v1/orgs/acme/sso", {**OIDC, "domains": ["acme-corp.test", "new.test"]}, format="json").json()
    assert {d["domain"]: d["verified"] for d in body["domains"]} == {"acme-corp.test": True, "new.test": False}
    assert body["domains"][0]["recordValue"] == domains["acme-corp.test"]["recordValue"]

    # No DNS answer at all (nothing listens there): nothing verified, no error.
    settings.VIBEBOX_SSO_DNS_SERVERS = ["127.0.0.1:9"]
    assert api.post("/api/v1/orgs/acme/sso/verify").status_code == 200
    assert signed_in(outsider).post("/api/v1/orgs/acme/sso/verify").status_code == 404


def test_the_admin_shows_connections_and_lets_an_operator_verify_a_domain(org, owner):
    signed_in(owner).put("/api/v1/orgs/acme/sso", OIDC, format="json")
    connection = SsoConnection.objects.get(org=org)
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="pw-root-1234"))
    assert admin.get("/admin/sso/ssoconnection/").status_code == 200
    page = admin.get(f"/admin/sso/ssoconnection/{connection.pk}/change/")
    assert page.status_code == 200 and b"acme-corp.test" in page.content and b"s3cret" not in page.content


def test_deleting_the_organization_drops_its_connection(org, owner):
    from allauth.socialaccount.models import SocialApp

    signed_in(owner).put("/api/v1/orgs/acme/sso", OIDC, format="json")
    assert signed_in(owner).delete("/api/v1/orgs/acme").status_code == 204
    assert not SsoConnection.objects.exists() and not SocialApp.objects.exists()
