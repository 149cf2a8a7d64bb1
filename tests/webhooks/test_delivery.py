"""Deliveries end to end against a real receiver on loopback: the outbox row written in the
event's transaction, signatures checked by the standardwebhooks library, retries, timeouts, the
secret's rotation overlap, order per endpoint, filters, test events and redeliveries, leases."""

import datetime as dt

import pytest
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.sandboxes import events
from apps.webhooks import delivery as sender
from apps.webhooks import services
from apps.webhooks.models import Delivery, Webhook
from tests.conftest import sandbox_row

pytestmark = pytest.mark.django_db


def _deliveries(webhook_id):
    return list(Delivery.objects.filter(webhook_id=webhook_id).order_by("created_at", "id"))


def test_test_event_is_delivered_signed(api_client, hook, receiver):
    webhook = hook()
    response = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test")
    assert response.status_code == 202, response.content
    queued = response.json()
    assert queued["status"] == "pending" and queued["event"] == "webhook.test" and queued["eventId"].startswith("evt_")

    assert sender.deliver_webhook(webhook["id"]) == 1
    [request] = receiver.requests
    assert request["verified"] == [webhook["secret"]]  # the reference library accepts it
    headers = request["headers"]
    assert headers["webhook-id"] == queued["eventId"]
    assert headers["user-agent"].startswith("VibeBox-Webhooks/")
    assert headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"]
    assert abs(int(headers["webhook-timestamp"]) - timezone.now().timestamp()) < 60
    assert request["json"]["type"] == "webhook.test" and request["json"]["data"]["webhookId"] == webhook["id"]
    assert set(request["json"]) == {"type", "timestamp", "data"}

    detail = api_client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/{queued['id']}").json()
    assert detail["status"] == "succeeded" and detail["attempts"] == 1 and detail["responseStatus"] == 200
    assert detail["payload"] == request["json"]
    [logged] = detail["attemptLog"]
    assert logged["statusCode"] == 200 and logged["error"] == "" and logged["responseBody"] == '{"ok": true}'
    assert logged["requestHeaders"]["webhook-id"] == queued["eventId"]
    listed = api_client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries").json()["results"]
    assert [item["id"] for item in listed] == [queued["id"]]
    assert AuditEntry.objects.filter(action="webhook.tested", target_id=webhook["id"]).exists()


def test_a_sandbox_event_is_written_in_its_transaction_and_delivered(api_client, owner, templates, hook, receiver):
    webhook = hook(events=["sandbox.stopped"])
    sandbox = sandbox_row(owner, templates["python-3"], status="stopped", metadata={"ci": "42"})

    with pytest.raises(RuntimeError), transaction.atomic():
        events.publish(sandbox=sandbox, type="sandbox.stopped")
        assert Delivery.objects.filter(webhook_id=webhook["id"]).count() == 1  # inside the transaction
        raise RuntimeError("the change is rolled back")
    assert not Delivery.objects.exists()  # and its delivery with it

    with transaction.atomic():
        events.publish(sandbox=sandbox, type="sandbox.stopped")
        events.publish(sandbox=sandbox, type="sandbox.restarted")  # not a webhook event
    [delivery] = _deliveries(webhook["id"])
    assert delivery.event == "sandbox.stopped" and delivery.status == "pending" and delivery.seq == 1

    assert sender.deliver_webhook(webhook["id"]) == 1
    [request] = receiver.requests
    assert request["verified"] and request["json"]["type"] == "sandbox.stopped"
    assert request["json"]["data"] == api_client.get(f"/api/v1/sandboxes/{sandbox.id}").json()  # as GET says


def test_fails_twice_then_succeeds(api_client, hook, receiver):
    webhook = hook()
    receiver.answers = [500, 503]
    queued = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test").json()
    assert sender.deliver_webhook(webhook["id"]) == 3  # the schedule here is 0s,0s,0s
    detail = api_client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/{queued['id']}").json()
    assert detail["status"] == "succeeded" and detail["attempts"] == 3
    assert [attempt["statusCode"] for attempt in detail["attemptLog"]] == [500, 503, 200]
    assert len({request["headers"]["webhook-id"] for request in receiver.requests}) == 1  # stable across retries
    assert len(receiver.seen) == 1


def test_gives_up_after_the_schedule(api_client, hook, receiver, webhook_settings):
    webhook_settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [0.0]
    webhook = hook()
    receiver.default = 500
    queued = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test").json()
    assert sender.deliver_webhook(webhook["id"]) == 2
    delivery = Delivery.objects.get(pk=queued["id"])
    assert delivery.status == "failed" and delivery.attempts == 2 and delivery.next_attempt_at is None
    assert delivery.finished_at is not None
    assert Webhook.objects.get(pk=webhook["id"]).first_failure_at is not None


def test_a_receiver_that_never_answers_times_out_and_is_retried_later(api_client, hook, receiver, webhook_settings):
    webhook_settings.VIBEBOX_WEBHOOK_TIMEOUT = 1.0
    webhook_settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [300.0, 3600.0]
    webhook = hook()
    receiver.answers = [("sleep", 3, 200)]
    queued = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test").json()
    before = timezone.now()
    assert sender.deliver_webhook(webhook["id"]) == 1  # not due again until the schedule says
    detail = api_client.get(f"/api/v1/webhooks/{webhook['id']}/deliveries/{queued['id']}").json()
    assert detail["status"] == "retrying" and detail["attempts"] == 1 and detail["responseStatus"] is None
    assert detail["attemptLog"][0]["error"].startswith("timeout")
    assert detail["attemptLog"][0]["durationMs"] < 2900
    next_at = dt.datetime.fromisoformat(detail["nextAttemptAt"].replace("Z", "+00:00"))
    assert before + dt.timedelta(seconds=240) <= next_at <= timezone.now() + dt.timedelta(seconds=360)  # 5m ±20%


def test_rotation_signs_with_both_secrets_for_the_overlap(api_client, hook, receiver):
    webhook = hook()
    rotated = api_client.post(f"/api/v1/webhooks/{webhook['id']}/rotate-secret").json()
    receiver.secrets.append(rotated["secret"])
    api_client.post(f"/api/v1/webhooks/{webhook['id']}/test")
    sender.deliver_webhook(webhook["id"])
    [request] = receiver.requests
    signatures = request["headers"]["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(part.startswith("v1,") for part in signatures)
    assert request["verified"] == [webhook["secret"], rotated["secret"]]  # each verifies on its own

    Webhook.objects.filter(pk=webhook["id"]).update(previous_secret_expires_at=timezone.now())  # 24 h later
    api_client.post(f"/api/v1/webhooks/{webhook['id']}/test")
    sender.deliver_webhook(webhook["id"])
    assert " " not in receiver.requests[1]["headers"]["webhook-signature"]
    assert receiver.requests[1]["verified"] == [rotated["secret"]]


def test_one_endpoint_keeps_the_order_of_its_events(owner, templates, hook, receiver, webhook_settings):
    webhook_settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [60.0]
    webhook = hook(events=["sandbox.started", "sandbox.paused", "sandbox.resumed"])
    sandbox = sandbox_row(owner, templates["python-3"])
    for kind in ("sandbox.started", "sandbox.paused", "sandbox.resumed"):
        with transaction.atomic():
            events.publish(sandbox=sandbox, type=kind)
    receiver.answers = [500]
    assert sender.deliver_webhook(webhook["id"]) == 1  # the first failed: the later ones wait behind it
    assert [request["json"]["type"] for request in receiver.requests] == ["sandbox.started"]
    assert [d.status for d in _deliveries(webhook["id"])] == ["retrying", "pending", "pending"]

    Delivery.objects.filter(webhook_id=webhook["id"], status="retrying").update(next_attempt_at=timezone.now())
    assert sender.deliver_webhook(webhook["id"]) == 3
    kinds = [request["json"]["type"] for request in receiver.requests]
    assert kinds == ["sandbox.started", "sandbox.started", "sandbox.paused", "sandbox.resumed"]
    assert [d.seq for d in _deliveries(webhook["id"])] == [1, 2, 3]


def test_a_blocked_endpoint_does_not_hold_another(owner, templates, hook, receiver, webhook_settings):
    webhook_settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [60.0]
    blocked, other = hook(events=["sandbox.stopped"]), hook(events=["sandbox.stopped"])
    Webhook.objects.filter(pk=blocked["id"]).update(url=receiver.url.replace("/hook", "/blocked"))
    sandbox = sandbox_row(owner, templates["python-3"])
    events.publish(sandbox=sandbox, type="sandbox.stopped")
    receiver.answers = [500]
    assert sender.deliver_webhook(blocked["id"]) == 1
    assert sender.deliver_webhook(other["id"]) == 1
    assert [request["path"] for request in receiver.requests] == ["/blocked", "/hook"]
    assert {d.event_id for d in Delivery.objects.all()} == {receiver.requests[0]["headers"]["webhook-id"]}


def test_filters_by_sandbox_template_and_metadata(owner, templates, hook, receiver):
    mine = sandbox_row(owner, templates["python-3"], name="mine", metadata={"ci": "42", "team": "ml"})
    theirs = sandbox_row(owner, templates["python-3"], name="theirs", metadata={"ci": "7"})
    by_id = hook(events=["sandbox.stopped"], filter={"sandboxId": mine.id})
    by_metadata = hook(events=["*"], filter={"metadata": {"ci": "42"}})
    by_template = hook(events=["*"], filter={"template": "node-20"})
    everything = hook(events=["*"])
    missing_key = hook(events=["*"], filter={"metadata": {"absent": "None"}})  # no sandbox has the key
    for sandbox in (mine, theirs):
        events.publish(sandbox=sandbox, type="sandbox.stopped")

    def heard(webhook):
        return [d.payload["data"]["id"] for d in _deliveries(webhook["id"])]

    assert heard(by_id) == [mine.id]
    assert heard(by_metadata) == [mine.id]
    assert heard(by_template) == []
    assert heard(everything) == [mine.id, theirs.id]
    assert heard(missing_key) == []


def test_redeliver_sends_the_same_event_again(api_client, hook, receiver):
    webhook = hook()
    queued = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test").json()
    sender.deliver_webhook(webhook["id"])
    response = api_client.post(f"/api/v1/webhooks/{webhook['id']}/deliveries/{queued['id']}/redeliver")
    assert response.status_code == 202, response.content
    again = response.json()
    assert again["id"] != queued["id"] and again["eventId"] == queued["eventId"]
    assert again["redeliveryOf"] == queued["id"] and again["status"] == "pending"
    sender.deliver_webhook(webhook["id"])
    assert len(receiver.requests) == 2 and len(receiver.seen) == 1  # the receiver dedupes on webhook-id
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]
    assert AuditEntry.objects.filter(action="delivery.redelivered", target_id=queued["id"]).exists()
    missing = api_client.post(f"/api/v1/webhooks/{webhook['id']}/deliveries/dlv_nope/redeliver")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "delivery_not_found"


def test_key_events(api_client, hook, receiver):
    webhook = hook(events=["key.created", "key.revoked"])
    created = api_client.post("/api/v1/keys", {"name": "ci"}, format="json").json()
    assert api_client.delete(f"/api/v1/keys/{created['id']}").status_code == 204
    sender.deliver_webhook(webhook["id"])
    kinds = [(request["json"]["type"], request["json"]["data"]["id"]) for request in receiver.requests]
    assert kinds == [("key.created", created["id"]), ("key.revoked", created["id"])]
    assert receiver.requests[1]["json"]["data"]["revokedAt"] is not None
    assert "key" not in receiver.requests[0]["json"]["data"]  # never the key's secret


def test_a_private_target_is_refused_at_send_time(api_client, hook, receiver, webhook_settings):
    webhook = hook()
    webhook_settings.VIBEBOX_WEBHOOK_ALLOW_PRIVATE = False  # e.g. the name now resolves to 127.0.0.1
    queued = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test").json()
    webhook_settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [60.0]
    sender.deliver_webhook(webhook["id"])
    assert receiver.requests == []
    delivery = Delivery.objects.get(pk=queued["id"])
    assert delivery.status == "retrying" and delivery.attempt_log.get().error.startswith("refused")


def test_one_sender_per_endpoint_and_a_dead_senders_lease_runs_out(api_client, hook, receiver):
    webhook = hook()
    api_client.post(f"/api/v1/webhooks/{webhook['id']}/test")
    assert sender.due_webhook_ids() == [webhook["id"]]
    held_until = timezone.now() + dt.timedelta(seconds=60)
    Webhook.objects.filter(pk=webhook["id"]).update(lease_until=held_until, lease_owner="another")
    assert sender.due_webhook_ids() == []
    assert sender.deliver_webhook(webhook["id"]) == 0 and receiver.requests == []
    # The sender holding it was killed: its lease runs out and the next one takes over.
    Webhook.objects.filter(pk=webhook["id"]).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert sender.due_webhook_ids() == [webhook["id"]]
    assert sender.deliver_webhook(webhook["id"]) == 1 and len(receiver.requests) == 1
    assert Webhook.objects.get(pk=webhook["id"]).lease_owner == ""
    assert sender.due_webhook_ids() == []


def test_an_endpoint_failing_for_days_is_disabled(
    owner, api_client, hook, receiver, webhook_settings, mailoutbox, django_capture_on_commit_callbacks
):
    webhook_settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [60.0]
    owner.email = "owner@example.com"
    owner.save()
    webhook = hook()
    Webhook.objects.filter(pk=webhook["id"]).update(first_failure_at=timezone.now() - dt.timedelta(days=6))
    receiver.default = 500
    api_client.post(f"/api/v1/webhooks/{webhook['id']}/test")
    with django_capture_on_commit_callbacks(execute=True):
        sender.deliver_webhook(webhook["id"])
    got = api_client.get(f"/api/v1/webhooks/{webhook['id']}").json()
    assert got["active"] is False and got["disabledReason"].startswith("every delivery failed")
    assert AuditEntry.objects.filter(action="webhook.disabled", target_id=webhook["id"]).exists()
    [mail] = mailoutbox  # to the organization's members who manage webhooks
    assert mail.to == ["owner@example.com"] and webhook["id"] in mail.subject and receiver.url in mail.body
    again = api_client.patch(f"/api/v1/webhooks/{webhook['id']}", {"active": True}, format="json").json()
    assert again["active"] is True and again["disabledReason"] == ""


def test_a_webhook_deleted_during_an_attempt_leaves_nothing_behind(api_client, hook, receiver):
    webhook = hook()
    queued = api_client.post(f"/api/v1/webhooks/{webhook['id']}/test").json()
    delivery = Delivery.objects.select_related("webhook").get(pk=queued["id"])
    assert api_client.delete(f"/api/v1/webhooks/{webhook['id']}").status_code == 204
    assert sender.attempt(delivery, delivery.webhook) is None  # sent (the request was out), nothing recorded
    assert len(receiver.requests) == 1 and not Delivery.objects.exists()
    assert sender.deliver_webhook(webhook["id"]) == 0


def test_old_finished_deliveries_are_pruned(api_client, hook, receiver, webhook_settings):
    webhook_settings.VIBEBOX_WEBHOOK_RETRY_SCHEDULE = [60.0]
    webhook = hook()
    for _ in range(3):
        api_client.post(f"/api/v1/webhooks/{webhook['id']}/test")
    receiver.answers = [200, 200, 500]
    sender.deliver_webhook(webhook["id"])
    done = list(Delivery.objects.filter(status="succeeded").values_list("pk", flat=True))
    old = timezone.now() - dt.timedelta(days=31)
    Delivery.objects.update(created_at=old)
    redelivered = api_client.post(f"/api/v1/webhooks/{webhook['id']}/deliveries/{done[0]}/redeliver").json()
    assert sender.prune() == 2  # the two succeeded; the retrying one stays, however old
    assert set(Delivery.objects.values_list("status", flat=True)) == {"retrying", "pending"}
    assert Delivery.objects.get(pk=redelivered["id"]).redelivery_of_id is None
    webhook_settings.VIBEBOX_WEBHOOK_RETENTION = 0
    assert sender.prune() == 0


def test_a_template_filter_takes_the_templates_aliases(owner, templates):
    sandbox = sandbox_row(owner, templates["python-3.13"])
    assert services.matches({"template": "python-3"}, sandbox)  # the alias it was created by
    assert services.matches({"template": "python-3.13"}, sandbox)
    assert not services.matches({"template": "node-20"}, sandbox)
