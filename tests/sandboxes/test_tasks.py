"""The periodic tasks beat sends: a pass never runs beside another one of its kind."""

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from apps.sandboxes.models import Sandbox
from apps.sandboxes.tasks import reconcile_sandboxes


@pytest.mark.engine_timeout(120)  # the stuck pass stays stuck until the test lets it go
def test_a_pass_still_running_makes_the_next_one_skip(transactional_db, engine_fault, settings, create_sandbox):
    """Beat sends a pass every interval even when the last one is still at work (here: stuck on the
    engine); the next one does nothing instead of working on the same sandboxes beside it."""
    sandbox_id = create_sandbox()["id"]
    Sandbox.objects.filter(pk=sandbox_id).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    stuck = engine_fault.fail_on(r"^GET /containers/json", then="hang")
    first: dict = {}

    def first_pass():
        try:
            first["result"] = reconcile_sandboxes.apply().get()
        except Exception as exc:  # the engine goes away under it below
            first["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=first_pass)
    thread.start()
    try:
        assert stuck.wait(timeout=120), "the first pass never reached the engine"
        assert reconcile_sandboxes.apply().get() == {"skipped": "another reconcile pass is running"}
        assert Sandbox.objects.get(pk=sandbox_id).status == "running"
    finally:
        engine_fault.restore()  # the stuck pass fails now (its connection is closed)
        thread.join(timeout=180)
    assert not thread.is_alive()
    # A failed pass lets the lock go: the next one does the work.
    assert reconcile_sandboxes.apply().get()["expired"] == [sandbox_id]
    assert Sandbox.objects.get(pk=sandbox_id).status == "destroyed"
