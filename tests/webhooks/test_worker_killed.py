"""The outbox holds when the webhooks' Celery worker (the Procfile's `webhooks` line, as it is) is
killed (SIGKILL) in the middle of a delivery: a restarted worker (its embedded beat finds the due
rows) sends it again once the dead sender's lease runs out, with the same webhook-id, so a receiver
that dedupes has every event exactly once, in order."""

import json
import time
import urllib.request

import pytest
from django.db import transaction

from apps.sandboxes import events
from apps.webhooks.models import Delivery
from tests.conftest import live_server, sandbox_row
from tests.test_make_run import own_redis, wait_for  # noqa: F401 (own_redis: a fixture)
from tests.webhooks.conftest import QUIET_PASSES, celery_worker, kill_worker, worker_env

KINDS = ["sandbox.started", "sandbox.paused", "sandbox.resumed"]


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_delivery_loses_nothing_and_duplicates_nothing(
    transactional_db,
    owner,
    templates,
    hook,
    receiver,
    own_redis,  # noqa: F811 (the fixture)
    tmp_path,
):
    hook(events=KINDS)
    sandbox = sandbox_row(owner, templates["python-3"])
    for kind in KINDS:
        with transaction.atomic():
            events.publish(sandbox=sandbox, type=kind)
    receiver.answers = [("sleep", 30, 200)]  # the first attempt hangs: the worker is killed meanwhile

    env = worker_env(
        own_redis,
        VIBEBOX_WEBHOOK_INTERVAL="1s",
        VIBEBOX_WEBHOOK_TIMEOUT="3s",  # a lease of 21 s
        **QUIET_PASSES,
    )
    log = tmp_path / "first.log"
    with celery_worker(env, log, beat_schedule=tmp_path / "first-schedule", line="webhooks") as first:
        wait_for(lambda: receiver.requests, "the first attempt to reach the receiver", deadline=120, log=log)
        kill_worker(first)
    assert [d.status for d in Delivery.objects.order_by("seq")] == ["pending"] * 3  # nothing recorded

    log = tmp_path / "second.log"
    with celery_worker(env, log, beat_schedule=tmp_path / "second-schedule", line="webhooks") as second:

        def all_delivered():
            assert second.poll() is None, log.read_text(errors="replace")
            return Delivery.objects.filter(status="succeeded").count() == 3

        wait_for(all_delivered, "the restarted worker to deliver everything", deadline=180, log=log)
    time.sleep(0.5)
    kinds = [request["json"]["type"] for request in receiver.requests]
    assert kinds == ["sandbox.started", "sandbox.started", "sandbox.paused", "sandbox.resumed"]
    assert [record["json"]["type"] for record in receiver.seen.values()] == KINDS  # once each, in order
    assert all(request["verified"] for request in receiver.requests)
    assert [d.attempts for d in Delivery.objects.order_by("seq")] == [1, 1, 1]


@pytest.mark.timeout(300)
def test_a_committed_event_is_sent_by_the_worker_at_once(
    transactional_db,
    api_key,
    hook,
    receiver,
    own_redis,  # noqa: F811 (the fixture)
    tmp_path,
):
    """No beat: the sender task queued when the event committed (VIBEBOX_WEBHOOK_DISPATCH, the
    production default) is what reaches the receiver, through the live server and a real worker
    (the Procfile's `webhooks`, which alone consumes the `webhooks` queue)."""
    webhook = hook()
    log = tmp_path / "worker.log"
    with (
        celery_worker(worker_env(own_redis, VIBEBOX_WEBHOOK_DISPATCH="true"), log, line="webhooks"),
        live_server(REDIS_URL=own_redis, VIBEBOX_WEBHOOK_DISPATCH="true") as (url, _pid),
    ):
        request = urllib.request.Request(
            f"{url}/api/v1/webhooks/{webhook['id']}/test",
            method="POST",
            headers={"Authorization": f"Bearer {api_key[1]}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            queued = json.loads(response.read())
        wait_for(lambda: receiver.requests, "the worker to send the test event", deadline=120, log=log)
        wait_for(
            lambda: Delivery.objects.get(pk=queued["id"]).status == "succeeded",
            "the delivery to be recorded",
            log=log,
        )
    [sent] = receiver.requests
    assert sent["headers"]["webhook-id"] == queued["eventId"] and sent["verified"]
