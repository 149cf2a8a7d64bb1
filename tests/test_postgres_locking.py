"""What only PostgreSQL can show: two transactions at once, where SQLite's IMMEDIATE transactions
would serialize them (vibebox/env.py). `make test-postgres` runs these; on SQLite they skip.

Each test holds one transaction open on this thread's connection, lets another thread's
transaction run into it, waits until PostgreSQL reports that one waiting on a lock
(pg_stat_activity), then commits: deterministic, no sleeps."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection, transaction

from apps.billing import rollup
from apps.billing.models import UsageRecord
from tests.conftest import sandbox_row
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only (make test-postgres)"),
]

HOUR = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


def _someone_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else the transaction's first look stays
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


def _in_thread(target) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run():
        try:
            outcome.append(target())
        except Exception as exc:  # the test checks it
            outcome.append(exc)
        finally:
            close_old_connections()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_two_rollups_writing_the_same_new_sandbox_hour_both_finish(owner, templates):
    """The beat's rollup and an invoice's both find no row for a sandbox-hour and insert it: the
    second insert waits on the first's unique key and, once that commits, must update the row
    instead of failing the whole pass with an IntegrityError (apps/billing/rollup.py `_write`)."""
    sandbox = sandbox_row(owner, templates["python-3"])
    amounts = rollup._quantized({**rollup._empty(), "cpu_seconds": Decimal(30), "running_seconds": Decimal(60)})
    with transaction.atomic():
        assert rollup._write(sandbox, HOUR, amounts) is True  # the first rollup's row, not committed yet
        thread, outcome = _in_thread(lambda: rollup._write(sandbox, HOUR, amounts))
        wait_for(_someone_waits_on_a_lock, timeout=60, what="the second rollup waiting on the first's row")
    thread.join(timeout=60)
    assert outcome == [False]  # it found the same amounts already there: nothing to change
    record = UsageRecord.objects.get(sandbox=sandbox, hour=HOUR)
    assert (record.cpu_seconds, record.running_seconds) == (Decimal(30), Decimal(60))
