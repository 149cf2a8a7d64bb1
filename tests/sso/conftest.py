"""Fixtures of the single sign-on tests: a live VibeBox (uvicorn on the test database), real
identity providers on loopback, and Chromium (as tests/dashboard/test_browser.py drives it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model

from apps.orgs.models import Membership, Organization
from bench.common import free_port
from tests.conftest import live_server

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
OUTPUT = ROOT / "var" / "test-output" / "browser"
# A fixed id: the identity providers register VibeBox's redirect URI, which names it.
ACME_ID = "org_SsoAcmeTest00001"
IDP_PASSWORD = "idp-pw-" + "x" * 8
IDP_USERS = [
    {"username": "alice", "email": "alice@acme.test", "password": IDP_PASSWORD},
    {"username": "mallory", "email": "mallory@elsewhere.test", "password": IDP_PASSWORD},
]
OIDC_CLIENTS = ("vibebox", "wrong-audience", "expired", "wrong-issuer")


def rsa_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def vibebox(django_db_setup):
    """VibeBox's web server on loopback (its URL), reading the test database."""
    with live_server() as (url, _pid):
        yield url


@pytest.fixture(scope="module")
def oidc_idp(vibebox, tmp_path_factory):
    """django-oauth-toolkit's OpenID Connect provider in a process of its own: its issuer URL. Its
    clients (client id = secret-less name, secret "<name>-secret") redirect to VibeBox's callback of ACME."""
    folder = tmp_path_factory.mktemp("oidc-idp")
    (folder / "key.pem").write_bytes(rsa_key_pem())
    callback = f"{vibebox}/accounts/oidc/sso-{ACME_ID}/login/callback/"
    clients = [
        {"name": name, "client_id": name, "client_secret": f"{name}-secret", "redirect_uris": [callback]}
        for name in OIDC_CLIENTS
    ]
    (folder / "setup.json").write_text(json.dumps({"users": IDP_USERS, "clients": clients}))
    port = free_port()
    env = {**os.environ, "OIDC_IDP_DB": str(folder / "idp.sqlite3"), "OIDC_IDP_KEY": str(folder / "key.pem")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sso.oidc_idp.serve", str(port), str(folder / "setup.json")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.strip() == "ready", f"the OIDC provider did not start ({process.poll()=})"
        yield f"http://127.0.0.1:{port}/o"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(vibebox):
    """Chromium. Playwright's sync API keeps an event loop running in this thread, which Django's ORM
    takes for an async context: these tests read and write the database between browser steps (never
    at the same time), so they say it is safe while the browser runs (after the servers started)."""
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            yield chromium
            chromium.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        folder = OUTPUT / request.node.name
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "page.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the test item (`rep_call`), for the screenshots."""
    outcome = yield
    setattr(item, f"rep_{outcome.get_result().when}", outcome.get_result())


@pytest.fixture
def acme(transactional_db):
    """The organization ACME, with its owner (password "pw-acme-owner")."""
    owner = get_user_model().objects.create_user("acme-owner", "owner@acme.test", "pw-acme-owner")
    org = Organization.objects.create(id=ACME_ID, slug="acme", name="ACME")
    Membership.objects.create(org=org, user=owner, role="owner")
    org.owner = owner
    return org


@pytest.fixture(scope="module")
def saml_idp(tmp_path_factory):
    """pysaml2's identity provider on loopback (a thread of this process)."""
    from .saml_idp import SamlIdp

    with SamlIdp(tmp_path_factory.mktemp("saml-idp"), IDP_USERS) as idp:
        yield idp


@pytest.fixture(scope="module")
def dns_server():
    """A DNS server on loopback, where the tests publish domains' verification records."""
    from .dns_server import DnsServer

    with DnsServer() as server:
        yield server


def verify_domains(api, slug: str, dns_server, settings) -> dict:
    """Publishes the TXT records the connection asks for, and has VibeBox verify them."""
    settings.VIBEBOX_SSO_DNS_SERVERS = [dns_server.address]
    for domain in api.get(f"/api/v1/orgs/{slug}/sso").json()["domains"]:
        dns_server.records[domain["recordName"]] = [domain["recordValue"]]
    body = api.post(f"/api/v1/orgs/{slug}/sso/verify").json()
    assert all(domain["verified"] for domain in body["domains"]), body
    return body
