"""White-label (docs/operations.md, "Branding"): with a custom brand the dashboard's pages and the
emails show it and never the default name; an organization's overrides change its members'
dashboard, set on the organization page by org.manage, each change audited."""

import re
from datetime import date
from decimal import Decimal

from django.core import mail
from django.test import Client, override_settings

from apps.audit.models import AuditEntry
from apps.billing import payments, quotas
from apps.billing.models import Notice
from apps.orgs import services as org_services
from apps.orgs.branding import brand_for
from apps.orgs.models import Organization
from apps.orgs.services import personal_org_ensure
from apps.webhooks import delivery
from apps.webhooks.models import Webhook
from tests.conftest import sandbox_row

BRAND = {
    "VIBEBOX_BRAND_NAME": "Acme Cloud",
    "VIBEBOX_BRAND_LOGO_URL": "/static/acme-logo.svg",
    "VIBEBOX_BRAND_PRIMARY_COLOR": "#ff6600",
    "VIBEBOX_BRAND_PRIMARY_TEXT_COLOR": "#000000",
    "VIBEBOX_BRAND_SUPPORT_URL": "https://help.acme.test/",
    "VIBEBOX_BRAND_DOCS_URL": "https://docs.acme.test/",
    "VIBEBOX_BRAND_EMAIL_FROM": "Acme Cloud <cloud@acme.test>",
}
# The default name as prose: not as part of a code identifier the pages show (the SDK's
# `VibeBoxAgent`, `vibebox_sdk.VibeBox(...)`), nor the lowercase CLI and package names.
DEFAULT_NAME = re.compile(r"(?<![\w.])VibeBox(?![\w(])")


def _no_default_brand(text: str, where: str) -> None:
    found = [text[max(0, m.start() - 60) : m.end() + 60] for m in DEFAULT_NAME.finditer(text)]
    assert not found, f"{where} names the default brand: {found}"


def _pages(sandbox_id: str, template: str) -> list[str]:
    sandbox = f"/sandboxes/{sandbox_id}/"
    return [
        "/",
        "/sandboxes/",
        "/sandboxes/new",
        sandbox,
        *(sandbox + tab for tab in ("terminal", "files", "exec", "logs", "ports", "git", "claude")),
        "/activity/",
        "/templates/",
        "/keys/",
        "/usage/",
        "/billing/",
        "/marketplace/",
        f"/marketplace/{template}/",
        "/marketplace/submit/",
        "/marketplace/submissions/",
        "/marketplace/review/",
        "/org/",
        "/org/roles/",
        "/org/teams/",
        "/org/audit/",
        "/org/webhooks/",
        "/orgs/new",
        "/status",
    ]


@override_settings(**BRAND)
def test_every_dashboard_page_shows_the_custom_brand_and_never_the_default(owner, templates):
    owner.is_staff = True  # the review queue and the status page's staff part render too
    owner.save(update_fields=["is_staff"])
    template = templates["python-3"]
    claude = next((t for name, t in templates.items() if "claude" in name), template)
    row = sandbox_row(owner, claude, name="branded")
    client = Client()
    client.force_login(owner)
    rendered = 0
    for path in _pages(row.id, template.name):
        response = client.get(path, follow=True)
        assert response.status_code == 200, (path, response.status_code)
        html = response.content.decode()
        if "<html" not in html:
            continue
        rendered += 1
        _no_default_brand(html, path)
        assert "<title>" in html and "· Acme Cloud</title>" in html, path
        assert '<img src="/static/acme-logo.svg" alt="Acme Cloud"' in html, path
        assert "--accent: #ff6600;" in html and "--accent-fg: #000000;" in html, path
        assert 'href="https://docs.acme.test/"' in html and 'href="https://help.acme.test/"' in html, path
    assert rendered >= 20
    # Signed out: the home and sign-in pages too.
    for path in ("/", "/login/"):
        html = Client().get(path).content.decode()
        _no_default_brand(html, f"{path} (signed out)")
        assert "Acme Cloud" in html


def test_an_orgs_overrides_brand_its_members_dashboard_set_by_org_manage_and_audited(owner, templates):
    org = personal_org_ensure(user=owner)
    client = Client()
    client.force_login(owner)
    page = client.get("/org/").content.decode()
    assert 'id="org-branding-form"' in page and "<title>" in page and "· VibeBox</title>" in page

    response = client.post(
        "/org/branding",
        {"org": org.slug, "name": "Owner Labs", "primaryColor": "#123abc", "supportUrl": "mailto:help@labs.test"},
        follow=True,
    )
    assert response.status_code == 200 and b"Branding saved." in response.content
    org.refresh_from_db()
    assert org.branding == {"name": "Owner Labs", "primaryColor": "#123abc", "supportUrl": "mailto:help@labs.test"}
    html = client.get("/sandboxes/").content.decode()
    assert "· Owner Labs</title>" in html and "--accent: #123abc;" in html
    assert 'href="mailto:help@labs.test"' in html
    _no_default_brand(html, "/sandboxes/ with the organization's brand")

    def branding_entries():
        return AuditEntry.objects.filter(org_id=org.pk, action="org.branding_updated").order_by("seq")

    entries = list(branding_entries())
    assert [(e.changes["setting"], e.changes["before"], e.changes["after"]) for e in entries] == [
        ("name", "", "Owner Labs"),
        ("primaryColor", "", "#123abc"),
        ("supportUrl", "", "mailto:help@labs.test"),
    ]
    assert all(e.actor == "owner" and e.source == "dashboard" for e in entries)

    # Bad input: refused with the reason on the page, nothing changed, nothing audited.
    for field, value in (
        ("primaryColor", "red;}body{display:none"),
        ("logoUrl", "javascript:alert(1)"),
        ("supportUrl", 'https://x.test/"onmouseover="x'),
        ("name", "x" * 61),
    ):
        response = client.post("/org/branding", {"org": org.slug, field: value}, follow=True)
        assert b"validation_error" in response.content, field
    org.refresh_from_db()
    assert org.branding["primaryColor"] == "#123abc" and "logoUrl" not in org.branding
    assert branding_entries().count() == 3

    # An empty field goes back to the installation's; one audit entry for that change only.
    client.post("/org/branding", {"org": org.slug, "name": "", "primaryColor": "#123abc"})
    org.refresh_from_db()
    assert "name" not in org.branding and branding_entries().count() == 4
    assert "· VibeBox</title>" in client.get("/sandboxes/").content.decode()

    # Another organization's members keep the installation's brand.
    other = org_services.org_create(user=owner, name="Plain", slug="plain")
    assert brand_for(other).name == "VibeBox" and brand_for(org).primary_color == "#123abc"

    # Without org.manage (a developer): the values are shown, the write is a 403 naming it.
    from django.contrib.auth import get_user_model

    team = org_services.org_create(user=owner, name="Team", slug="team")
    dev = get_user_model().objects.create_user(username="dev")
    org_services.member_add(org=team, user_ref="dev", role="developer")
    dev_client = Client()
    dev_client.force_login(dev)
    dev_client.post("/orgs/switch", {"org": "team"})
    shown = dev_client.get("/org/").content.decode()
    assert 'id="org-branding-form"' not in shown and "Changing the branding needs" in shown
    denied = dev_client.post("/org/branding", {"org": "team", "name": "Mine"})
    assert denied.status_code == 403 and b"org.manage" in denied.content
    assert Organization.objects.get(slug="team").branding == {}


@override_settings(**BRAND)
def test_emails_carry_the_custom_brand_and_sender(owner, django_capture_on_commit_callbacks):
    owner.email = "owner@acme.test"
    owner.save(update_fields=["email"])
    org = org_services.org_create(user=owner, name="Labs", slug="labs")
    mail.outbox.clear()
    # An invitation (sent once its transaction commits).
    with django_capture_on_commit_callbacks(execute=True):
        org_services.invitation_create(org=org, email="new@acme.test", role="developer", base_url="http://x")
    # Others: a webhook turned off, a quota threshold, a failed payment.
    webhook = Webhook.objects.create(org=org, url="https://hooks.acme.test/x", events=["sandbox.created"], secret="x")
    delivery._tell_admins(webhook, "every delivery failed")
    notice = Notice.objects.create(
        org=org,
        period=date(2026, 12, 1),
        quota="monthly_budget",
        percent=100,
        used=Decimal("10"),
        limit=Decimal("10"),
    )
    quotas._email(org, notice)
    payments._tell(org, "Payment of invoice X failed", "The payment failed.")
    assert len(mail.outbox) == 4, [m.subject for m in mail.outbox]
    for message in mail.outbox:
        assert message.from_email == "Acme Cloud <cloud@acme.test>", message.subject
        _no_default_brand(message.subject, f"subject {message.subject!r}")
        _no_default_brand(message.body, f"body of {message.subject!r}")
    invitation = mail.outbox[0]
    assert invitation.subject.endswith("to Labs on Acme Cloud")
    assert "on Acme Cloud as developer" in invitation.body and "Help: https://help.acme.test/" in invitation.body
    assert all(m.subject.startswith("[Acme Cloud]") for m in mail.outbox[1:])
