"""Failover drills (`make test-ha`; docs/operations.md, "Several processes and HAProxy"): three web
processes and two Celery workers behind HAProxy (deploy/haproxy/haproxy.cfg), on PostgreSQL and a
Redis of the run's own (scripts/test-ha.sh). Each drill prints its numbers ("HA drill ...")."""

import collections
import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from django.db import connection, transaction

from apps.keys.models import ApiKey
from apps.sandboxes import events
from apps.sandboxes.models import Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.webhooks.models import Delivery
from tests.conftest import LABEL_FILTER, sandbox_row
from tests.ha.stack import ha_stack, haproxy_binary
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not haproxy_binary(), reason="haproxy is not installed (make proxies)"),
]

# The burst is 200 calls; two go at a time, so two writes in flight on the killed process
# can fail: 300 calls keep that worst case (2) under the 1 % the drill allows.
BURST = 300


def call(url: str, secret: str, method: str = "GET", body: dict | None = None, timeout: float = 60):
    """(status, JSON answer or None, headers); a connection that failed is status 0."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            return answer.status, (json.loads(raw) if raw else None), answer.headers
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"raw": raw[:200].decode(errors="replace")}
        return exc.code, payload, exc.headers
    except OSError as exc:
        return 0, {"raw": str(exc)}, {}


def test_drill_a_web_process_killed_during_a_burst(api_key, templates, cleanup_sandbox_ids, docker_client, capsys):
    """kill -9 of one of three web processes while 300 API calls go through HAProxy: under 1 % fail,
    no write is done twice, no container is left without its sandbox."""
    secret = api_key[1]
    with ha_stack(celery=2) as stack:
        victim = stack.webs[1]

        def one(index: int):
            if index % 40 == 0:  # a few creates: a killed create must leave no orphan
                status, body, headers = call(
                    f"{stack.url}/api/v1/sandboxes", secret, "POST", {"template": "python-3", "name": f"burst-{index}"}
                )
            elif index % 2:
                status, body, headers = call(f"{stack.url}/api/v1/sandboxes?limit=5", secret)
            else:  # a write whose rows can be counted: one key per call, by its name
                status, body, headers = call(
                    f"{stack.url}/api/v1/keys", secret, "POST", {"name": f"burst-{index}", "scopes": ["sandboxes:read"]}
                )
            return index, status, body, headers.get("X-VibeBox-Backend", "")

        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(one, index) for index in range(BURST)]
            wait_for(lambda: sum(f.done() for f in futures) >= BURST // 3, timeout=300, what="a third of the burst")
            os.kill(victim.pid, signal.SIGKILL)
            killed_at = sum(f.done() for f in futures)
            results = [f.result() for f in futures]
        elapsed = time.monotonic() - started
        wait_for(lambda: victim.name not in stack.up(), timeout=60, what="HAProxy to take the killed process out")
        stats = stack.stats()

    failed = [(index, status, body) for index, status, body, _ in results if status not in (200, 201)]
    served = collections.Counter(backend for *_, backend in results)
    for index, status, body, _ in results:
        if status == 201 and index % 40 == 0:
            cleanup_sandbox_ids.append(body["id"])
    # No write done twice: each key name once at most, once exactly when it was answered 201.
    for index, status, _body, _ in results:
        if index % 2 == 0 and index % 40:
            rows = ApiKey.objects.filter(name=f"burst-{index}").count()
            assert rows == (1 if status == 201 else rows) and rows <= 1, (index, status, rows)
    creates = Sandbox.objects.filter(name__startswith="burst-")
    assert all(count <= 1 for count in collections.Counter(creates.values_list("name", flat=True)).values())
    # No orphan: after the periodic reconciliation pass every container of this session has a live
    # sandbox, and every sandbox answered 201 has its container.
    sandbox_reconcile()
    live = set(Sandbox.objects.exclude(status__in=["destroyed", "error"]).values_list("id", flat=True))
    containers = {c.name for c in docker_client.containers.list(all=True, filters={"label": LABEL_FILTER})}
    sandbox_containers = {name for name in containers if name.startswith("sbx_")}
    orphans = sandbox_containers - live
    retries = sum(int(row.get("wretr") or 0) for row in stats.values())
    redispatches = sum(int(row.get("wredis") or 0) for row in stats.values())
    with capsys.disabled():  # the numbers show in make test-ha's output
        print(
            f"\nHA drill kill -9 web: {BURST} calls in {elapsed:.1f} s (2 at a time), {victim.name} killed after "
            f"{killed_at}; failed {len(failed)} ({100 * len(failed) / BURST:.1f} %): {failed}; "
            f"served by {dict(served)}; "
            f"HAProxy retries {retries}, redispatches {redispatches}; orphan containers {len(orphans)}"
        )
    assert len(failed) / BURST < 0.01, failed
    assert not orphans, orphans
    for index, status, body, _ in results:
        if status == 201 and index % 40 == 0:
            assert body["id"] in sandbox_containers


def _pg():
    data, pg_ctl, user = (
        os.environ.get(name) for name in ("VIBEBOX_PG_DATA", "VIBEBOX_PG_CTL", "VIBEBOX_PG_SERVER_USER")
    )
    if not (data and pg_ctl and connection.vendor == "postgresql"):
        pytest.skip("needs the PostgreSQL server of scripts/test-postgres.sh (make test-ha)")
    as_server = ["runuser", "-u", user, "--"] if os.geteuid() == 0 and user and user != "root" else []
    return lambda *args: subprocess.run(
        [*as_server, pg_ctl, "-D", data, *args], check=True, capture_output=True, text=True, timeout=120
    )


def test_drill_postgresql_restarted(api_key, templates, capsys):
    """PostgreSQL stopped then started under three web processes: meanwhile every API call is
    answered at once with 503 `database_unavailable` and a Retry-After; then they recover by
    themselves (no process restarted)."""
    pg_ctl = _pg()
    secret = api_key[1]
    with ha_stack() as stack:
        assert call(f"{stack.url}/api/v1/sandboxes", secret)[0] == 200
        connection.close()
        pg_ctl("-m", "fast", "-w", "stop")
        down = []
        try:
            for _ in range(20):
                started = time.monotonic()
                status, body, headers = call(f"{stack.url}/api/v1/sandboxes", secret, timeout=30)
                down.append(
                    (
                        status,
                        (body or {}).get("error", {}).get("code"),
                        headers.get("Retry-After"),
                        headers.get("X-VibeBox-Backend"),
                        time.monotonic() - started,
                    )
                )
        finally:
            stopped_at = time.monotonic()
            pg_ctl("-w", "-l", str(Path(os.environ["VIBEBOX_PG_DATA"]).parent / "server.log"), "start")
        recovered = wait_for(
            lambda: call(f"{stack.url}/api/v1/sandboxes", secret)[0] == 200 and time.monotonic(),
            timeout=120,
            interval=0.2,
            what="the API to answer again after PostgreSQL's start",
        )
        after = collections.Counter(call(f"{stack.url}/api/v1/sandboxes", secret)[0] for _ in range(30))
    connection.close()
    codes = collections.Counter((status, code) for status, code, *_ in down)
    with capsys.disabled():  # the numbers show in make test-ha's output
        print(
            f"\nHA drill PostgreSQL restart: while down {dict(codes)}, "
            f"slowest answer {max(d[-1] for d in down):.2f} s, "
            f"Retry-After {sorted({d[2] for d in down}, key=str)}, backends {sorted({d[3] for d in down}, key=str)}; "
            f"first 200 {recovered - stopped_at:.1f} s after the start began; then 30 calls: {dict(after)}"
        )
    assert all(status == 503 and code == "database_unavailable" for status, code, *_ in down), down
    assert all(retry_after for _, _, retry_after, *_ in down), down
    assert after == {200: 30}


def _own_redis():
    conf = os.environ.get("VIBEBOX_HA_REDIS_CONF")
    if not conf:
        pytest.skip("needs the Redis server of scripts/test-ha.sh (make test-ha)")
    client = redis.Redis.from_url(os.environ["REDIS_URL"])

    def stop():
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(save=False)  # the append-only file is fsynced at every write already
        wait_for(lambda: not _pings(client), timeout=30, what="redis-server to stop")

    def start():
        subprocess.run(["redis-server", conf], check=True, timeout=30)
        wait_for(lambda: _pings(client), timeout=60, what="redis-server to answer again")

    return stop, start


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


def test_drill_redis_restarted(api_key, owner, templates, hook, receiver, tmp_path, capsys):
    """Redis stopped and started under three web processes and two Celery workers (beat embedded
    in one): the processes reconnect by themselves, and every webhook event (before, while Redis is
    down, after) reaches the receiver exactly once: the outbox is in the database."""
    stop, start = _own_redis()
    hook(events=["sandbox.started"])
    sandbox = sandbox_row(owner, templates["python-3"])
    secret = api_key[1]

    def publish(count: int):
        for _ in range(count):
            with transaction.atomic():
                events.publish(sandbox=sandbox, type="sandbox.started")

    with ha_stack(
        celery=2, beat=tmp_path / "beat", VIBEBOX_WEBHOOK_DISPATCH="1", VIBEBOX_WEBHOOK_INTERVAL="1s"
    ) as stack:
        publish(5)
        wait_for(lambda: len(receiver.requests) >= 5, timeout=120, what="the first five events delivered")
        stop()
        down_at = time.monotonic()
        publish(5)
        during = collections.Counter(call(f"{stack.url}/readyz", secret)[0] for _ in range(6))
        start()
        downtime = time.monotonic() - down_at

        def every_process_ready():
            answers = collections.Counter(call(f"{stack.url}/readyz", secret)[0] for _ in range(9))
            return answers == {200: 9} and time.monotonic()

        ready_at = wait_for(every_process_ready, timeout=120, what="every web process ready again")
        writes = collections.Counter(
            call(f"{stack.url}/api/v1/keys", secret, "POST", {"name": f"after-{i}", "scopes": ["sandboxes:read"]})[0]
            for i in range(12)
        )
        publish(5)
        wait_for(
            lambda: Delivery.objects.filter(status="succeeded").count() == 15,
            timeout=180,
            what="all 15 deliveries succeeded",
        )
        delivered_at = time.monotonic()
    ids = [request["headers"].get("webhook-id") for request in receiver.requests]
    with capsys.disabled():  # the numbers show in make test-ha's output
        print(
            f"\nHA drill Redis restart: down {downtime:.1f} s (readyz meanwhile {dict(during)}); every process ready "
            f"{ready_at - down_at - downtime:.1f} s after the start; 12 writes after: {dict(writes)}; "
            f"15 events (5 before, "
            f"5 while down, 5 after) -> {len(ids)} requests, {len(set(ids))} distinct webhook-ids, the last delivered "
            f"{delivered_at - down_at:.1f} s after the stop"
        )
    assert writes == {201: 12}
    assert len(set(ids)) == 15
    assert Delivery.objects.count() == 15
