"""The dashboard's webhooks pages (`/org/webhooks/`) through the Django test client, the real
database and a real receiver on loopback (tests/webhooks/conftest.py): create (the secret shown
once), edit, enable and disable, rotate (a new secret shown), send a test event (a delivery, the
log refreshing while it is open), a delivery's page, redeliver, delete; the webhooks.manage
permission (a developer gets a 403 page naming it, and no tab), another organization's webhook
(404), CSRF on the forms, and every write in the audit log with source `dashboard`."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.audit.models import AuditEntry
from apps.orgs import services as org_services
from apps.orgs.actors import actor_in
from apps.webhooks import delivery as sender
from apps.webhooks import services as webhook_services
from apps.webhooks.models import Delivery, Webhook
from tests.webhooks.conftest import receiver, webhook_settings  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

LIST = "/org/webhooks/"


def _page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _secret(page: str) -> str:
    found = re.search(r'id="webhook-secret" class="secret">(whsec_[^<]+)<', page)
    assert found, page[:2000]
    return found.group(1)


@pytest.fixture
def acme(owner, browser):
    """Acme, owned by `owner`, who acts in it (the `browser` client switched to it)."""
    org = org_services.org_create(user=owner, name="Acme", slug="acme")
    assert browser.post("/orgs/switch", {"org": "acme"}).status_code == 302
    return org


@pytest.fixture
def create(browser, acme, receiver):  # noqa: F811 (the fixture)
    """Creates a webhook to the receiver from the form; answers (the webhook, the page shown)."""

    def make(**fields):
        body = {"org": "acme", "url": receiver.url, "events": ["*"], "active": "on", **fields}
        page = _page(browser.post("/org/webhooks/new", body))
        webhook = Webhook.objects.filter(org=acme).order_by("-created_at").first()
        assert webhook is not None, page[page.find('class="messages"') :][:600]
        receiver.secrets.append(_secret(page))
        return webhook, page

    return make


def _audited(action: str, target_id: str) -> AuditEntry:
    entry = AuditEntry.objects.filter(action=action, target_id=target_id).first()
    assert entry is not None, (action, list(AuditEntry.objects.values_list("action", flat=True)))
    return entry


def test_the_tab_and_the_create_form(browser, acme):
    page = _page(browser.get("/org/"))
    assert f'href="{LIST}"' in page and ">Webhooks<" in page
    page = _page(browser.get(LIST))
    assert 'aria-current="page">Webhooks<' in page and 'id="no-webhooks"' in page
    assert 'id="new-event-all"' in page and 'value="*"' in page
    # The picker: every catalogue event, grouped by resource.
    assert 'data-resource="sandbox"' in page and 'data-resource="agent run"' in page
    assert 'data-event="sandbox.created"' in page and 'data-event="claude.changes.pending"' in page


def test_create_shows_the_secret_once_and_lists_it(browser, acme, create, receiver):  # noqa: F811
    webhook, page = create(
        events=["sandbox.created", "execution.completed"],
        description="CI notifier",
        sandbox_id="",
        template="python-3",
        metadata="ci=run-42\n\n team = core \n",
    )
    secret = _secret(page)
    assert 'id="copy-secret" data-copy="webhook-secret"' in page and "keys.js" in page
    assert webhook_services.secrets_of(webhook) == [secret]  # the one that signs
    assert webhook.url == receiver.url and webhook.events == ["sandbox.created", "execution.completed"]
    assert webhook.description == "CI notifier" and webhook.active
    assert webhook.filter == {"template": "python-3", "metadata": {"ci": "run-42", "team": "core"}}
    assert f'data-webhook="{webhook.id}"' in page  # listed on the same answer
    entry = _audited("webhook.created", webhook.id)
    assert entry.source == "dashboard" and entry.actor == "owner" and secret not in str(entry.changes)

    listed = _page(browser.get(LIST))
    assert secret not in listed and "whsec_" not in listed  # shown once
    assert f'data-webhook="{webhook.id}"' in listed and "none yet" in listed
    assert "<code>sandbox.created</code>, <code>execution.completed</code>" in listed and "filtered" in listed


def test_bad_input_is_a_message_and_creates_nothing(browser, acme, receiver, settings):  # noqa: F811
    base = {"org": "acme", "url": receiver.url, "events": ["sandbox.created"], "description": "kept"}
    for body, message in (
        ({"events": []}, "Choose at least one event, or all events."),
        ({"events": ["sandbox.created", "sandbox.exploded"]}, "sandbox.exploded. (unknown_event)"),
        ({"url": "ftp://example.com/x"}, "url must look like https://host[:port]/path"),
        ({"url": ""}, "Give the endpoint&#x27;s URL."),
        ({"metadata": "no equals sign"}, "Filter: metadata line 1 is not key=value."),
        ({"description": "x" * 501}, "The description is at most 500 characters."),
    ):
        page = _page(browser.post("/org/webhooks/new", {**base, **body}))
        assert message in page, (body, page[page.find('id="new-webhook-errors"') :][:400])
        assert 'id="webhook-secret"' not in page
    # The input is kept.
    page = _page(browser.post("/org/webhooks/new", {**base, "events": []}))
    assert f'value="{receiver.url}"' in page and 'value="kept"' in page
    # A private target without the setting: the service's refusal, with its code.
    settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE = False
    page = _page(browser.post("/org/webhooks/new", base))
    assert "(webhook_target_refused)" in page
    assert not Webhook.objects.exists()


def test_edit_disable_enable_and_delete(browser, acme, create):
    webhook, _ = create(events=["sandbox.created"], template="python-3")
    url = f"/org/webhooks/{webhook.id}/"
    page = _page(browser.get(url))
    assert 'id="edit-webhook-form"' in page and 'value="python-3"' in page
    assert re.search(r'value="sandbox.created" data-event="sandbox.created" checked', page)

    # All events wins over single ones; an emptied filter clears it.
    body = {"org": "acme", "url": webhook.url + "?v=2", "events": ["*", "sandbox.created"], "description": "new"}
    response = browser.post(f"{url}edit", body, follow=True)
    assert "Webhook saved." in _page(response)
    webhook.refresh_from_db()
    assert webhook.events == ["*"] and webhook.filter == {} and webhook.url.endswith("?v=2")
    assert webhook.description == "new" and webhook.active
    assert _audited("webhook.updated", webhook.id).source == "dashboard"

    # A refused edit keeps what was typed and changes nothing.
    page = _page(browser.post(f"{url}edit", {**body, "events": ["nope.never"]}))
    assert "(unknown_event)" in page and 'value="nope.never"' not in page  # not a catalogue box
    assert 'id="webhook-settings" open' in page
    webhook.refresh_from_db()
    assert webhook.events == ["*"]

    page = _page(browser.post(f"{url}active", {"org": "acme", "active": "0"}, follow=True))
    assert "Webhook disabled" in page and 'id="webhook-enable"' in page
    webhook.refresh_from_db()
    assert not webhook.active
    assert 'data-disabled="' in _page(browser.get(LIST))
    page = _page(browser.post(f"{url}active", {"org": "acme", "active": "1"}, follow=True))
    assert "Webhook enabled" in page and 'id="webhook-disable"' in page
    webhook.refresh_from_db()
    assert webhook.active

    response = browser.post(f"{url}delete", {"org": "acme"}, follow=True)
    assert "deleted, with its delivery history." in _page(response) and 'id="no-webhooks"' in _page(response)
    assert not Webhook.objects.filter(pk=webhook.pk).exists()
    assert _audited("webhook.deleted", webhook.id).source == "dashboard"
    assert browser.get(url).status_code == 404


def test_rotate_shows_a_new_secret_and_the_overlap(browser, acme, create):
    webhook, page = create()
    first = _secret(page)
    page = _page(browser.post(f"/org/webhooks/{webhook.id}/rotate", {"org": "acme"}))
    second = _secret(page)
    assert second != first and second.startswith("whsec_")
    assert "Secret rotated: the previous one keeps signing beside it until" in page
    assert 'id="webhook-overlap"' in page
    webhook.refresh_from_db()
    assert webhook_services.secrets_of(webhook) == [second, first]
    assert _audited("webhook.secret_rotated", webhook.id).source == "dashboard"
    again = _page(browser.get(f"/org/webhooks/{webhook.id}/"))
    assert second not in again and first not in again


def test_send_test_the_live_log_the_delivery_page_and_redeliver(browser, acme, create, receiver):  # noqa: F811
    webhook, _ = create(events=["sandbox.created"])
    url = f"/org/webhooks/{webhook.id}/"
    page = _page(browser.get(url))
    assert 'id="no-deliveries"' in page and 'data-polling="0"' in page and "every 3s" not in page

    response = browser.post(f"{url}test", {"org": "acme"}, follow=True)
    page = _page(response)
    [delivery] = Delivery.objects.filter(webhook=webhook)
    assert delivery.event == "webhook.test" and delivery.status == "pending"
    assert f"Test event sent as {delivery.id}" in page
    assert f'data-delivery="{delivery.id}" data-status="pending"' in page
    assert 'data-polling="1"' in page and 'hx-trigger="every 3s"' in page  # refreshed while open
    assert _audited("webhook.tested", webhook.id).source == "dashboard"

    # The refresh answers the log alone; once sent, it stops refreshing.
    assert sender.deliver_webhook(webhook.id) == 1
    partial = _page(browser.get(f"{url}?partial=deliveries", HTTP_HX_REQUEST="true"))
    assert partial.lstrip().startswith('<div id="delivery-log" data-polling="0"') and "<html" not in partial
    assert f'data-delivery="{delivery.id}" data-status="succeeded"' in partial and "<code>200</code>" in partial
    [request] = receiver.requests
    assert request["verified"] and request["headers"]["webhook-id"] == delivery.event_id
    # The list shows the last delivery.
    assert 'data-last-status="succeeded"' in _page(browser.get(LIST))

    # The delivery's page: the body, each attempt's status, headers and answer.
    page = _page(browser.get(f"{url}deliveries/{delivery.id}"))
    assert 'id="delivery-status">succeeded<' in page and delivery.event_id in page
    assert "&quot;type&quot;: &quot;webhook.test&quot;" in page and webhook.id in page
    assert 'class="attempt-status">200<' in page and "{&quot;ok&quot;: true}" in page
    assert "webhook-signature: v1," in page and "content-type: application/json" in page
    assert 'data-polling="0"' in page

    response = browser.post(f"{url}deliveries/{delivery.id}/redeliver", {"org": "acme"})
    assert response.status_code == 302
    copy = Delivery.objects.exclude(pk=delivery.pk).get(webhook=webhook)
    assert copy.redelivery_of_id == delivery.id and copy.event_id == delivery.event_id
    assert copy.payload == delivery.payload and copy.status == "pending"
    assert response["Location"] == f"{url}deliveries/{copy.id}"
    page = _page(browser.get(response["Location"]))
    assert 'data-polling="1"' in page and 'id="no-attempts"' in page and f"{url}deliveries/{delivery.id}" in page
    assert _audited("delivery.redelivered", delivery.id).source == "dashboard"
    # Only this webhook's deliveries are found under it.
    assert browser.get(f"{url}deliveries/dlv_missing").status_code == 404


def test_a_failing_endpoint_shows_retrying_and_failing_since(browser, acme, create, receiver):  # noqa: F811
    webhook, _ = create()
    receiver.default = 500
    browser.post(f"/org/webhooks/{webhook.id}/test", {"org": "acme"})
    assert sender.deliver_webhook(webhook.id, budget=0.01) == 1
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.status == "retrying"
    listed = _page(browser.get(LIST))
    assert 'data-last-status="retrying"' in listed and f'data-failing-since="{webhook.id}"' in listed
    page = _page(browser.get(f"/org/webhooks/{webhook.id}/"))
    assert 'id="webhook-failing"' in page and 'data-polling="1"' in page and "<code>500</code>" in page


def test_a_member_without_the_permission_gets_a_403_page(owner, acme, create):
    webhook, _ = create()
    developer = get_user_model().objects.create_user(username="dev")
    org_services.member_add(org=acme, user_ref="dev", role="developer")
    client = Client()
    client.force_login(developer)
    client.post("/orgs/switch", {"org": "acme"})
    page = _page(client.get("/org/"))
    assert f'href="{LIST}"' not in page  # no tab
    base = f"/org/webhooks/{webhook.id}"
    for method, path in [
        ("get", LIST),
        ("post", "/org/webhooks/new"),
        ("get", f"{base}/"),
        ("post", f"{base}/edit"),
        ("post", f"{base}/active"),
        ("post", f"{base}/rotate"),
        ("post", f"{base}/test"),
        ("post", f"{base}/delete"),
    ]:
        body = {"org": "acme", "url": "http://127.0.0.1:9/x", "events": ["*"], "active": "0"}
        response = getattr(client, method)(path, body if method == "post" else None)
        assert response.status_code == 403, (method, path, response.status_code)
        assert "This needs the webhooks.manage permission in acme." in response.content.decode(), path
    webhook.refresh_from_db()
    assert webhook.active and Webhook.objects.count() == 1 and not Delivery.objects.exists()
    assert webhook_services.secrets_of(webhook) and webhook.previous_secret == ""


def test_another_organizations_webhook_is_a_404(owner, acme, create, outsider_browser):
    webhook, _ = create()
    delivery = webhook_services.webhook_test(actor=actor_in(user=owner, org=acme), webhook=webhook)
    base = f"/org/webhooks/{webhook.id}"
    personal = outsider_browser.get(LIST)
    slug = personal.context["org"].slug
    for method, path in [
        ("get", f"{base}/"),
        ("post", f"{base}/edit"),
        ("post", f"{base}/active"),
        ("post", f"{base}/rotate"),
        ("post", f"{base}/test"),
        ("post", f"{base}/delete"),
        ("get", f"{base}/deliveries/{delivery.id}"),
        ("post", f"{base}/deliveries/{delivery.id}/redeliver"),
    ]:
        body = {"org": slug, "url": "http://127.0.0.1:9/x", "events": ["*"], "active": "0"}
        response = getattr(outsider_browser, method)(path, body if method == "post" else None)
        assert response.status_code == 404, (method, path, response.status_code)
    assert webhook.id not in _page(personal)
    webhook.refresh_from_db()
    assert webhook.active and Delivery.objects.count() == 1 and webhook.previous_secret == ""


def test_anonymous_is_sent_to_sign_in(db):
    client = Client()
    for path in (LIST, "/org/webhooks/whk_x/", "/org/webhooks/whk_x/deliveries/dlv_x"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
    response = client.post("/org/webhooks/new", {"url": "https://example.com", "events": ["*"]})
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    assert not Webhook.objects.exists()


def test_the_forms_need_csrf_and_the_org_they_were_shown_for(owner, acme, create, receiver):  # noqa: F811
    webhook, _ = create()
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get(LIST)  # the CSRF cookie
    token = client.cookies["csrftoken"].value
    switched = client.post("/orgs/switch", {"org": "acme", "csrfmiddlewaretoken": token})
    assert switched.status_code == 302
    body = {"org": "acme", "url": receiver.url, "events": ["*"]}
    base = f"/org/webhooks/{webhook.id}"
    for path in ("/org/webhooks/new", f"{base}/edit", f"{base}/rotate", f"{base}/test", f"{base}/delete"):
        assert client.post(path, body).status_code == 403, path
    assert Webhook.objects.count() == 1 and not Delivery.objects.exists()
    webhook.refresh_from_db()
    assert webhook.previous_secret == ""
    # With the token it works; a form shown for another organization changes nothing.
    response = client.post(f"{base}/test", {"org": "acme", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Delivery.objects.count() == 1
    response = client.post(f"{base}/test", {"org": "elsewhere", "csrfmiddlewaretoken": token}, follow=True)
    assert "You switched organization since this page was loaded" in _page(response)
    assert Delivery.objects.count() == 1
