"""Slow endpoints never take the slots of the sandboxes' own tasks: the Procfile's two Celery
workers, as `make run` starts them, each consume their own queue. With every thread of the
`webhooks` worker held by an endpoint that does not answer, the `worker` still runs beat's passes
at once, and never runs a webhook task."""

import re

import pytest
from django.db import transaction

from apps.sandboxes import events
from apps.webhooks.models import Delivery
from tests.conftest import sandbox_row
from tests.test_make_run import own_redis, wait_for  # noqa: F401 (own_redis: a fixture)
from tests.webhooks.conftest import QUIET_PASSES, celery_worker, kill_worker, worker_env

SUCCEEDED = re.compile(r"Task apps\.keys\.tasks\.flush_key_usage\[[0-9a-f-]+\] succeeded")


@pytest.mark.timeout(300)
def test_slow_endpoints_fill_only_the_webhooks_worker(
    transactional_db,
    owner,
    templates,
    hook,
    receiver,
    own_redis,  # noqa: F811 (the fixture)
    tmp_path,
):
    for _ in range(3):
        hook(events=["sandbox.started"])
    sandbox = sandbox_row(owner, templates["python-3"])
    with transaction.atomic():
        events.publish(sandbox=sandbox, type="sandbox.started")
    assert Delivery.objects.count() == 3
    receiver.answers = [("sleep", 40, 200)] * 3  # longer than the test waits below

    env = worker_env(
        own_redis,
        VIBEBOX_WEBHOOK_CONCURRENCY="2",  # two threads: two slow endpoints take them all
        VIBEBOX_WEBHOOK_TIMEOUT="60s",
        VIBEBOX_WEBHOOK_INTERVAL="1s",
        **{**QUIET_PASSES, "VIBEBOX_USAGE_FLUSH_INTERVAL": "1s"},  # a pass of the default queue every second
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("worker", "webhooks")}
    with (
        celery_worker(env, logs["worker"], line="worker") as worker,
        # Beat alongside the webhooks' worker, as the Procfile's `beat` would send (its schedule here).
        celery_worker(env, logs["webhooks"], line="webhooks", beat_schedule=tmp_path / "schedule") as webhooks,
    ):
        wait_for(lambda: len(receiver.requests) >= 2, "two senders to hang", deadline=180, log=logs["webhooks"])

        def worker_passes() -> int:
            return len(SUCCEEDED.findall(logs["worker"].read_text(errors="replace")))

        before = worker_passes()
        wait_for(lambda: worker_passes() >= before + 3, "the worker's passes", deadline=20, log=logs["worker"])
        # Meanwhile the webhooks worker's two threads are still held: the third endpoint waits.
        assert len(receiver.requests) == 2
        for process in (worker, webhooks):  # no warm shutdown: the webhooks' threads still wait
            kill_worker(process)
    # Each worker received only its own queue's tasks (their banners list every task: not counted).
    worker_log, webhooks_log = (logs[name].read_text(errors="replace") for name in ("worker", "webhooks"))
    assert re.search(r"Task apps\.keys\.tasks\.flush_key_usage\[\S+\] received", worker_log)
    assert not re.search(r"Task apps\.webhooks\.\S+ received", worker_log)
    assert re.search(r"Task apps\.webhooks\.tasks\.deliver_webhook\[\S+\] received", webhooks_log)
    assert not re.search(r"Task apps\.(?!webhooks\.)\S+ received", webhooks_log)
