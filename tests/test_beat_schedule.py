"""Every entry of Celery beat's schedule names a task the worker has (a renamed or moved task would
otherwise be sent every interval and dropped by the worker as unregistered)."""

from datetime import timedelta

from django.conf import settings

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
