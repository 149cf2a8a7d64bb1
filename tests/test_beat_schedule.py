"""Every entry of Celery beat's schedule names a task the worker has (a renamed or moved task would
otherwise be sent every interval and dropped by the worker as unregistered)."""

import os
import re
import subprocess
import time
from datetime import timedelta

import pytest
from django.conf import settings

from tests.test_make_run import PYTHON, ROOT, own_redis, wait_for  # noqa: F401 (own_redis: a fixture)
from vibebox.celery import app


def test_every_beat_entry_names_a_registered_task():
    # What the worker does at start: import the installed apps' tasks modules (autodiscovery).
    app.loader.import_default_modules()
    schedule = app.conf.beat_schedule
    assert schedule == settings.CELERY_BEAT_SCHEDULE
    assert {"reconcile-sandboxes", "maintain-pools"} <= set(schedule)
    unregistered = {name: entry["task"] for name, entry in schedule.items() if entry["task"] not in app.tasks}
    assert not unregistered, f"beat entries naming no registered task: {unregistered}"
    assert "apps.sandboxes.tasks.no_such_task" not in app.tasks  # the lookup can say no
    for name, entry in schedule.items():
        interval = entry["schedule"]
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
        assert seconds > 0, name


SEND_AS_BEAT_DOES = """
from django.conf import settings
from vibebox.celery import app

for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
    print(name, app.send_task(entry["task"], **entry.get("options", {})).id)
"""


@pytest.mark.timeout(600)
def test_passes_queued_while_no_worker_ran_are_dropped(own_redis, tmp_path):  # noqa: F811 (the fixture)
    """Beat goes on sending while the worker is down; when it is back it does not run every pass
    that piled up: those older than their interval are dropped (the next one comes anyway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIBEBOX_", "DJANGO_", "CELERY_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        VIBEBOX_DATA_DIR=str(tmp_path / "var"),
        VIBEBOX_INSTANCE=f"beat{os.getpid()}",
        REDIS_URL=own_redis,
        VIBEBOX_PORT="1",  # names the worker (Procfile); nothing listens
        VIBEBOX_RECONCILE_INTERVAL="1s",
        VIBEBOX_POOL_INTERVAL="1s",
        VIBEBOX_USAGE_FLUSH_INTERVAL="1s",
        VIBEBOX_AUDIT_PRUNE_INTERVAL="1s",
        VIBEBOX_WEBHOOK_INTERVAL="1s",
        VIBEBOX_WEBHOOK_PRUNE_INTERVAL="1s",
        VIBEBOX_BILLING_LIVE_INTERVAL="1s",
        VIBEBOX_INVOICE_INTERVAL="1s",
        VIBEBOX_DUNNING_INTERVAL="1s",
        VIBEBOX_METER_INTERVAL="1s",
        VIBEBOX_METER_ROLLUP_INTERVAL="1s",
        VIBEBOX_METER_PRUNE_INTERVAL="1s",
        VIBEBOX_SLO_SAMPLE_INTERVAL="1s",
        VIBEBOX_NODE_CHECK_INTERVAL="1s",
        VIBEBOX_NODE_IMAGE_SYNC_INTERVAL="1s",
    )
    sent = subprocess.run(
        [str(PYTHON), "manage.py", "shell", "-c", SEND_AS_BEAT_DOES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    sent_at = time.monotonic()
    tasks = dict(re.findall(r"^([\w-]+) ([0-9a-f-]{36})$", sent, re.M))
    assert set(tasks) == {
        "reconcile-sandboxes",
        "reap-submissions",
        "maintain-pools",
        "flush-key-usage",
        "prune-audit-log",
        "deliver-webhooks",
        "prune-webhook-deliveries",
        "billing-live-costs",
        "close-invoices",
        "dunning",
        "sample-meters",
        "rollup-usage",
        "prune-meter-samples",
        "check-quotas",
        "record-sli-samples",
        "check-nodes",
        "sync-node-images",
    }
    wait_for(lambda: time.monotonic() > sent_at + 2, "the passes' interval to pass")

    # The Celery workers of the Procfile: the default queue's, the webhooks' and the builds' (each its queue).
    logs, processes = [], []
    for name in ("worker", "webhooks", "builds"):
        line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:"))
        logs.append(tmp_path / f"{name}.log")
        with logs[-1].open("wb") as out:
            processes.append(
                subprocess.Popen(
                    ["bash", "-c", line.split(":", 1)[1]], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
    log = logs[0]
    try:

        def handled():
            text = "\n".join(log.read_text(errors="replace") for log in logs)
            assert all(process.poll() is None for process in processes), text
            done = [rf"(Discarding revoked task: \S+\[{i}\]|\[{i}\] (succeeded|raised))" for i in tasks.values()]
            return all(re.search(pattern, text) for pattern in done) and text

        text = wait_for(handled, "the workers to take the queued passes", log=log)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    for name, task_id in tasks.items():
        assert re.search(rf"Discarding revoked task: \S+\[{task_id}\]", text), (name, text)
        assert not re.search(rf"\[{task_id}\] (succeeded|raised)", text), (name, text)


def _consumed(name: str) -> set[str]:
    """The queues the Procfile's process `name` consumes (--queues=a,b)."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:"))
    return set(re.search(r"--queues=(\S+)", line).group(1).split(","))


def test_webhook_tasks_and_builds_have_a_queue_and_worker_of_their_own():
    """A slow endpoint holds a thread of the `webhooks` worker, and a build of minutes the `builds`
    worker, never a slot of the `worker` that runs reconciliation and the warm pools: each worker
    consumes only its own queue, and every task (beat's passes included) is routed to a queue one
    of them consumes."""
    app.loader.import_default_modules()
    assert _consumed("worker") == {"celery"} and _consumed("webhooks") == {"webhooks"}
    assert _consumed("builds") == {"builds"}
    webhooks_line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("webhooks:"))
    assert "--pool=threads" in webhooks_line
    builds = {"apps.sandboxes.tasks.build_templates", "apps.sandboxes.tasks.validate_submission"}
    builds |= {
        "apps.sandboxes.tasks.ship_image",
        "apps.sandboxes.tasks.prepare_node",
        "apps.sandboxes.tasks.sync_node_images",
    }  # nodes
    assert builds <= set(app.tasks)
    for task in [name for name in app.tasks if name.startswith("apps.")]:
        queue = app.amqp.router.route({}, task)["queue"].name
        if task.startswith("apps.webhooks."):
            assert queue == "webhooks", task
        elif task in builds:
            assert queue == "builds", task
        else:
            assert queue == "celery", task
