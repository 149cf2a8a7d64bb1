"""The outbox holds when the webhooks' Celery worker (the Procfile's `webhooks` line) is killed
(SIGKILL) in the middle of a delivery: a restarted worker (its embedded beat finds the due rows)
sends it again once the dead sender's lease runs out, with the same webhook-id, so a receiver that
dedupes has every event exactly once, in order."""

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest
from django.conf import settings
from django.db import transaction

from apps.sandboxes import events
from apps.webhooks.models import Delivery
from tests.conftest import ROOT, live_server, sandbox_row
from tests.test_make_run import own_redis, wait_for  # noqa: F401 (own_redis: a fixture)

KINDS = ["sandbox.started", "sandbox.paused", "sandbox.resumed"]


def procfile(name: str) -> str:
    """The command of the Procfile's process `name`."""
    return next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:")).split(
        ":", 1
    )[1]


def _worker(env, tmp_path, name):
    command = procfile("webhooks") + f" --beat --schedule={tmp_path / name}-schedule"
    log = tmp_path / f"{name}.log"
    out = log.open("wb")
    process = subprocess.Popen(
        ["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    return process, log


def _kill(process):
    """SIGKILL to the worker's own process group (its pool children with it)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


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

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{settings.DATABASES['default']['NAME']}",
        REDIS_URL=own_redis,
        VIBEBOX_PORT="1",  # names the worker (Procfile); nothing listens
        VIBEBOX_WEBHOOK_INTERVAL="1s",
        VIBEBOX_WEBHOOK_TIMEOUT="3s",  # a lease of 21 s
        VIBEBOX_RECONCILE_INTERVAL="1h",
        VIBEBOX_POOL_INTERVAL="1h",
        VIBEBOX_USAGE_FLUSH_INTERVAL="1h",
        VIBEBOX_AUDIT_PRUNE_INTERVAL="1h",
        VIBEBOX_WEBHOOK_PRUNE_INTERVAL="1h",
    )
    first, log = _worker(env, tmp_path, "first")
    try:
        wait_for(lambda: receiver.requests, "the first attempt to reach the receiver", deadline=120, log=log)
        _kill(first)
    finally:
        _kill(first)
    assert [d.status for d in Delivery.objects.order_by("seq")] == ["pending"] * 3  # nothing recorded

    second, log = _worker(env, tmp_path, "second")
    try:

        def all_delivered():
            assert second.poll() is None, log.read_text(errors="replace")
            return Delivery.objects.filter(status="succeeded").count() == 3

        wait_for(all_delivered, "the restarted worker to deliver everything", deadline=180, log=log)
    finally:
        second.terminate()
        second.wait(timeout=60)
        _kill(second)
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{settings.DATABASES['default']['NAME']}",
        REDIS_URL=own_redis,
        VIBEBOX_PORT="1",
        VIBEBOX_WEBHOOK_DISPATCH="true",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            ["bash", "-c", procfile("webhooks")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with live_server(REDIS_URL=own_redis, VIBEBOX_WEBHOOK_DISPATCH="true") as (url, _pid):
            request = urllib.request.Request(
                f"{url}/api/v1/webhooks/{webhook['id']}/test",
                method="POST",
                headers={"Authorization": f"Bearer {api_key[1]}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                queued = json.loads(response.read())
            wait_for(lambda: receiver.requests, "the worker to send the test event", deadline=120, log=log)
    finally:
        _kill(worker)
    [sent] = receiver.requests
    assert sent["headers"]["webhook-id"] == queued["eventId"] and sent["verified"]
    wait_for(
        lambda: Delivery.objects.get(pk=queued["id"]).status == "succeeded", "the delivery to be recorded", log=log
    )
