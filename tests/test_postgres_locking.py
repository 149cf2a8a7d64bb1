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
from django.utils import timezone

from apps.billing import rollup
from apps.billing.models import UsageRecord
from apps.sandboxes.models import PooledContainer, WarmPool
from apps.sandboxes.services import pools
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


def test_two_creates_take_two_warm_containers_without_waiting_for_each_other(templates):
    """Two creates racing for a warm pool's oldest container: the first holds it in its (still
    open) transaction, the second skips the locked row and takes the next one at once
    (apps/sandboxes/services/pools.py `pool_claim`, SELECT … FOR UPDATE SKIP LOCKED): neither
    waits on the other, and no container is handed out twice."""
    template = templates["python-3"]
    pool = WarmPool.objects.create(template=template, cpu=1.0, memory=1024**3)
    now = timezone.now()
    rows = [
        PooledContainer.objects.create(
            pool=pool, image=template.image, status=PooledContainer.Status.READY, ready_at=now + dt.timedelta(seconds=i)
        )
        for i in range(2)
    ]
    with transaction.atomic():
        first = pools.pool_claim(pool)
        assert first is not None and first.pk == rows[0].pk  # the oldest, its row locked until commit
        thread, outcome = _in_thread(lambda: _claim_in_transaction(pool))
        thread.join(timeout=60)  # it must finish while this transaction still holds its row
        assert not thread.is_alive(), "the second create waited for the first one's transaction"
    assert [claimed.pk for claimed in outcome] == [rows[1].pk]
    assert not PooledContainer.objects.filter(pool=pool).exists()
    pool.refresh_from_db()
    assert pool.hits == 2 and pool.misses == 0


def _claim_in_transaction(pool):
    with transaction.atomic():
        return pools.pool_claim(pool)
