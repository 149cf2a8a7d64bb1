"""`vb.webhooks` (sync and async) against the live server: endpoints from create to delete, the
secret shown once, test events and redeliveries sent to a real receiver on loopback (the sender
runs when the test runs it, `conftest.deliver`), deliveries listed and shown with their attempts,
another organization's webhook a 404, and error codes as the SDK's exception classes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import pytest
from conftest import deliver
from vibebox_sdk import (
    AsyncVibeBox,
    Delivery,
    DeliveryAttempt,
    DeliveryNotFoundError,
    PermissionDeniedError,
    UnknownEventError,
    ValidationError,
    VibeBox,
    Webhook,
    WebhookNotFoundError,
    paging,
    verify_webhook,
)


@pytest.fixture
def hooks(vb: VibeBox) -> Iterator[list[Webhook]]:
    """Webhooks a test made (append them): deleted afterwards, when the test has not."""
    made: list[Webhook] = []
    yield made
    for hook in made:
        with contextlib.suppress(WebhookNotFoundError):
            vb.webhooks.delete(hook)


def test_create_shows_the_secret_once_then_list_get_update_rotate_delete(vb, hooks):
    url = f"https://hooks.example.com/{uuid.uuid4().hex[:8]}"
    hook = vb.webhooks.create(
        url, ["sandbox.created", "execution.failed"], description="ci", filter={"template": "python-3"}
    )
    hooks.append(hook)
    assert isinstance(hook, Webhook) and hook.id.startswith("whk_")
    assert hook.secret and hook.secret.startswith("whsec_") and hook.raw["secret"] == hook.secret
    assert (hook.url, hook.events, hook.description, hook.active) == (
        url,
        ["sandbox.created", "execution.failed"],
        "ci",
        True,
    )
    assert hook.filter == {"template": "python-3"} and hook.created_at and hook.disabled_reason == ""
    assert hook.secret not in repr(hook)  # never printed by accident

    got = vb.webhooks.get(hook.id)
    assert got.id == hook.id and got.url == url and got.secret is None and "secret" not in got.raw
    listed = vb.webhooks.list()
    assert hook.id in [h.id for h in listed] and all(h.secret is None for h in listed)
    assert vb.webhooks.list(limit=1) == listed[:1]  # newest first

    changed = vb.webhooks.update(
        hook, events=["*"], description="all of it", active=False, filter={"sandbox_id": "sbx_x"}
    )
    assert (changed.events, changed.description, changed.active) == (["*"], "all of it", False)
    assert changed.filter == {"sandboxId": "sbx_x"} and changed.url == url and changed.secret is None
    cleared = vb.webhooks.update(hook.id, filter={}, active=True)
    assert cleared.filter == {} and cleared.active is True and cleared.description == "all of it"

    rotated = vb.webhooks.rotate_secret(hook)
    assert rotated.secret and rotated.secret.startswith("whsec_") and rotated.secret != hook.secret
    assert rotated.previous_secret_expires_at  # the old secret signs beside it for 24 h
    assert vb.webhooks.get(hook).secret is None

    assert vb.webhooks.delete(hook) is None
    with pytest.raises(WebhookNotFoundError) as missing:
        vb.webhooks.get(hook)
    assert missing.value.status == 404 and missing.value.code == "webhook_not_found"
    assert hook.id not in [h.id for h in vb.webhooks.list()]


def test_test_event_is_delivered_listed_shown_with_attempts_and_redelivered(vb, server, receiver, hooks, monkeypatch):
    hook = vb.webhooks.create(receiver.url, ["sandbox.created"], description="receiver")
    hooks.append(hook)
    receiver.secrets.append(hook.secret)
    receiver.answers = [500]  # the first attempt fails; the schedule's next delay is 0s

    queued = vb.webhooks.test(hook)
    assert isinstance(queued, Delivery) and queued.id.startswith("dlv_") and queued.event == "webhook.test"
    assert (queued.status, queued.attempts, queued.webhook_id) == ("pending", 0, hook.id)
    assert deliver(server, hook.id) == 2

    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert request["verified"] == [hook.secret] and request["headers"]["webhook-id"] == queued.event_id
        event = verify_webhook(request["body"], request["headers"], hook.secret)  # the SDK's own check agrees
        assert event["type"] == "webhook.test" and event["data"]["webhookId"] == hook.id

    (listed,) = vb.webhooks.deliveries(hook)
    assert (listed.id, listed.status, listed.attempts, listed.response_status) == (queued.id, "succeeded", 2, 200)
    assert listed.payload is None and listed.attempt_log == []  # the list leaves those out

    shown = vb.webhooks.delivery(hook, queued)
    assert shown.payload["type"] == "webhook.test" and shown.payload["data"]["webhookId"] == hook.id
    assert [type(a) for a in shown.attempt_log] == [DeliveryAttempt, DeliveryAttempt]
    assert [a.status_code for a in shown.attempt_log] == [500, 200]
    first = shown.attempt_log[0]
    assert first.request_headers["webhook-id"] == queued.event_id and first.response_body == '{"ok": true}'
    assert first.duration_ms is not None and first.at and first.error == ""

    again = vb.webhooks.redeliver(hook, queued.id)
    assert again.id != queued.id and again.redelivery_of == queued.id and again.event_id == queued.event_id
    assert again.status == "pending"
    assert deliver(server, hook.id) == 1
    assert len(receiver.requests) == 3 and len(receiver.seen) == 1  # the same webhook-id: a receiver dedupes it
    assert receiver.requests[-1]["body"] == receiver.requests[0]["body"]

    newest_first = vb.webhooks.deliveries(hook)
    assert [d.id for d in newest_first] == [again.id, queued.id]
    assert [d.status for d in newest_first] == ["succeeded", "succeeded"]
    assert [d.id for d in vb.webhooks.deliveries(hook, limit=1)] == [again.id]
    assert vb.webhooks.deliveries(hook, status="failed") == []
    assert [d.id for d in vb.webhooks.deliveries(hook, event="webhook.test", status="succeeded")] == [
        again.id,
        queued.id,
    ]
    monkeypatch.setattr(paging, "PAGE", 1)  # one delivery a request: the list follows the pages
    assert [d.id for d in vb.webhooks.deliveries(hook)] == [again.id, queued.id]


def test_another_organizations_webhook_is_not_found(vb, server, outsider_key, hooks):
    hook = vb.webhooks.create("https://hooks.example.com/private", ["sandbox.created"])
    hooks.append(hook)
    delivery = vb.webhooks.test(hook)
    with VibeBox(api_key=outsider_key, base_url=server.url) as outsider:
        assert hook.id not in [h.id for h in outsider.webhooks.list()]
        for attempt in (
            lambda: outsider.webhooks.get(hook),
            lambda: outsider.webhooks.update(hook, description="mine now"),
            lambda: outsider.webhooks.delete(hook),
            lambda: outsider.webhooks.rotate_secret(hook),
            lambda: outsider.webhooks.test(hook),
            lambda: outsider.webhooks.deliveries(hook),
            lambda: outsider.webhooks.delivery(hook, delivery),
            lambda: outsider.webhooks.redeliver(hook, delivery),
        ):
            with pytest.raises(WebhookNotFoundError):
                attempt()
    assert vb.webhooks.get(hook).description == ""  # nothing changed
    with pytest.raises(DeliveryNotFoundError) as missing:
        vb.webhooks.delivery(hook, "dlv_nosuchdelivery")
    assert missing.value.code == "delivery_not_found"
    with pytest.raises(DeliveryNotFoundError):
        vb.webhooks.redeliver(hook, "dlv_nosuchdelivery")


def test_errors_are_the_sdks_exception_classes(vb, server, hooks):
    before = {h.id for h in vb.webhooks.list()}
    with pytest.raises(UnknownEventError) as unknown:
        vb.webhooks.create("https://hooks.example.com/x", ["sandbox.created", "sandbox.exploded"])
    assert isinstance(unknown.value, ValidationError) and unknown.value.status == 400
    assert (
        unknown.value.details["unknown"] == ["sandbox.exploded"] and "sandbox.created" in unknown.value.details["known"]
    )
    with pytest.raises(ValidationError) as bad_url:
        vb.webhooks.create("ftp://hooks.example.com/x", ["*"])
    assert bad_url.value.code == "validation_error" and "url" in bad_url.value.details["fields"]
    with pytest.raises(ValidationError):
        vb.webhooks.create("https://hooks.example.com/x", [])
    with pytest.raises(ValidationError):
        vb.webhooks.create("https://hooks.example.com/x", ["*"], filter={"colour": "red"})
    assert {h.id for h in vb.webhooks.list()} == before  # nothing was made

    hook = vb.webhooks.create("https://hooks.example.com/x", ["*"])
    hooks.append(hook)
    with pytest.raises(UnknownEventError):
        vb.webhooks.update(hook, events=["nope"])
    assert vb.webhooks.get(hook).events == ["*"]
    with pytest.raises(WebhookNotFoundError):
        vb.webhooks.update("whk_nosuchwebhook", active=False)

    narrow = vb.keys.create(f"no-webhooks-{uuid.uuid4().hex[:6]}", scopes=["sandboxes:read"])
    try:
        with (
            VibeBox(api_key=narrow.key, base_url=server.url) as limited,
            pytest.raises(PermissionDeniedError) as denied,
        ):
            limited.webhooks.list()
        assert denied.value.status == 403
    finally:
        vb.keys.revoke(narrow.id)


def test_async_webhooks(server, receiver):
    async def scenario() -> None:
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            hook = await vb.webhooks.create(receiver.url, ["sandbox.created"], description="async")
            try:
                assert hook.secret and hook.secret.startswith("whsec_")
                receiver.secrets.append(hook.secret)
                assert (await vb.webhooks.get(hook.id)).secret is None
                assert hook.id in [h.id for h in await vb.webhooks.list()]
                assert (await vb.webhooks.update(hook, description="changed")).description == "changed"
                rotated = await vb.webhooks.rotate_secret(hook)
                assert rotated.secret != hook.secret
                receiver.secrets.append(rotated.secret)

                queued = await vb.webhooks.test(hook)
                assert await asyncio.to_thread(deliver, server, hook.id) == 1
                # During the rotation's overlap both secrets sign: the receiver verifies with either.
                assert sorted(receiver.requests[0]["verified"]) == sorted([hook.secret, rotated.secret])
                (listed,) = await vb.webhooks.deliveries(hook)
                assert (listed.id, listed.status) == (queued.id, "succeeded")
                shown = await vb.webhooks.delivery(hook, listed)
                assert [a.status_code for a in shown.attempt_log] == [200]
                again = await vb.webhooks.redeliver(hook, shown)
                assert again.redelivery_of == queued.id
                assert [d.id for d in await vb.webhooks.deliveries(hook, limit=5)] == [again.id, queued.id]
                with pytest.raises(DeliveryNotFoundError):
                    await vb.webhooks.delivery(hook, "dlv_nosuchdelivery")
            finally:
                await vb.webhooks.delete(hook)
            with pytest.raises(WebhookNotFoundError):
                await vb.webhooks.get(hook)

    asyncio.run(scenario())
