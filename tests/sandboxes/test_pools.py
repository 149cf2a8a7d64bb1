"""Warm pools against the real engine: fill, take, refill, health replacement, concurrency, visibility."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import PooledContainer, Sandbox, WarmPool
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services import pools
from tests.conftest import INSTANCE_LABEL, live_server


@pytest.fixture
def pool_settings(settings):
    settings.VIBEBOX_POOL_ENABLED = True
    settings.VIBEBOX_POOL_SIZES = {"python-3": 2}
    # As in production. The refill runs when the create's transaction commits, so tests inside a
    # rolled-back transaction (`db`) never see it; test_a_take_is_refilled_in_the_background does.
    settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = True
    return settings


@pytest.fixture
def python_pool(pool_settings, templates):
    template = templates["python-3"]
    yield template
    pools.pool_drain()


def pooled_containers(docker_client):
    return docker_client.containers.list(all=True, filters={"label": [INSTANCE_LABEL, "vibebox.pool=python-3.13"]})


def test_fill_take_refill(
    python_pool, pool_settings, api_client, docker_client, cleanup_sandbox_ids, django_capture_on_commit_callbacks
):
    assert pools.pool_fill(pools.pool_get(python_pool)) == 2
    rows = list(PooledContainer.objects.filter(status=PooledContainer.Status.READY))
    assert len(rows) == 2 and all(r.ready_ms for r in rows)
    containers = {c.name: c for c in pooled_containers(docker_client)}
    assert set(containers) == {r.id for r in rows}
    assert all(c.status == "running" for c in containers.values())
    labels = next(iter(containers.values())).labels
    assert labels["vibebox.owner"] == "" and labels["vibebox.template"] == "python-3.13"

    # Pooled containers are nobody's sandboxes.
    assert api_client.get("/api/v1/sandboxes").json()["count"] == 0
    assert api_client.get(f"/api/v1/sandboxes/{rows[0].id}").status_code == 404

    # Hits and misses count when the create commits (outside its transaction: concurrent creates
    # would wait on the pool's row): run the commit callbacks, the refill's aside.
    pool_settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = False
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(
            "/api/v1/sandboxes", {"template": "python-3", "name": "warm-one", "env": {"A": "1"}}, format="json"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    cleanup_sandbox_ids.append(body["id"])
    assert body["warm"] is True and body["status"] == "running"
    assert body["id"] == min(rows, key=lambda r: r.ready_at).id  # the oldest ready container
    run = api_client.post(f"/api/v1/sandboxes/{body['id']}/exec", {"command": "echo $A; id -un"}, format="json")
    assert run.json()["stdout"] == "1\nsandbox\n"
    assert PooledContainer.objects.count() == 1
    pool = WarmPool.objects.get(template=python_pool)
    assert (pool.hits, pool.misses) == (1, 0)

    assert pools.pool_fill(pools.pool_get(python_pool)) == 1  # back to the target
    assert PooledContainer.objects.filter(status=PooledContainer.Status.READY).count() == 2
    # The taken container is now a sandbox: destroy removes it like any other.
    assert api_client.delete(f"/api/v1/sandboxes/{body['id']}").status_code == 204
    # Filtered by name: an unfiltered list inspects every container on the engine one by one, and
    # another worker's container removed in between made it fail with 404.
    assert not docker_client.containers.list(all=True, filters={"name": f"^{body['id']}$"})


def refills_running() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pool-refill-")]


def test_a_take_is_refilled_in_the_background(transactional_db, python_pool, api_client, docker_client):
    """Nobody calls pool_fill after the take: the create's own refill brings the pool back."""
    pool = pools.pool_get(python_pool)
    assert pools.pool_fill(pool) == 2
    before = set(PooledContainer.objects.values_list("id", flat=True))
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert response.status_code == 201, response.content
    taken = response.json()["id"]
    try:
        assert response.json()["warm"] is True and taken in before

        def refilled():
            rows = PooledContainer.objects.filter(status=PooledContainer.Status.READY)
            ready = set(rows.values_list("id", flat=True))
            return len(ready) == 2 and not refills_running() and ready

        deadline = time.monotonic() + 120
        while not (ready := refilled()):
            assert time.monotonic() < deadline, f"no refill after the take: {list(PooledContainer.objects.values())}"
            time.sleep(0.2)
        new = ready - before
        assert len(new) == 1 and taken not in ready
        assert {c.name for c in pooled_containers(docker_client) if c.status == "running"} >= ready
        pool.refresh_from_db()
        assert (pool.hits, pool.misses) == (1, 0)
    finally:
        for thread in refills_running():
            thread.join(timeout=120)
        get_driver().remove(taken, volume=f"{taken}-workspace")


def test_creates_that_do_not_match_miss_the_pool(python_pool, api_client, cleanup_sandbox_ids):
    pools.pool_fill(pools.pool_get(python_pool))
    for body in (
        {"template": "python-3", "resources": {"memory": "512m"}},
        {"template": "python-3", "autoStart": False},
    ):
        response = api_client.post("/api/v1/sandboxes", body, format="json")
        assert response.status_code == 201
        cleanup_sandbox_ids.append(response.json()["id"])
        assert response.json()["warm"] is False
    assert PooledContainer.objects.count() == 2
    response = api_client.post("/api/v1/sandboxes", {"template": "node-20"}, format="json")
    cleanup_sandbox_ids.append(response.json()["id"])
    assert response.json()["warm"] is False  # node-20 has no pool here


def test_an_empty_pool_counts_a_miss_and_creates_cold(
    python_pool, pool_settings, api_client, cleanup_sandbox_ids, django_capture_on_commit_callbacks
):
    pools.pool_get(python_pool)
    pool_settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = False
    with django_capture_on_commit_callbacks(execute=True):  # the miss counts at the create's commit
        response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    cleanup_sandbox_ids.append(response.json()["id"])
    assert response.status_code == 201 and response.json()["warm"] is False
    assert WarmPool.objects.get(template=python_pool).misses == 1


def test_health_check_replaces_bad_containers_and_outdated_images(python_pool, docker_client):
    pools.pool_fill(pools.pool_get(python_pool))
    first, second = PooledContainer.objects.order_by("ready_at")
    docker_client.containers.get(first.id).kill()
    PooledContainer.objects.filter(pk=second.pk).update(image="vibebox/python-3:outdated")
    assert pools.pool_check(pools.pool_get(python_pool)) == 1
    assert not PooledContainer.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert not docker_client.containers.list(all=True, filters={"name": first.id})
    assert not docker_client.containers.list(all=True, filters={"name": second.id})
    assert WarmPool.objects.get(template=python_pool).replaced == 1
    report = pools.pools_maintain()
    assert report["python-3.13"]["started"] == 2


def test_target_follows_demand_within_bounds(python_pool, owner, templates):
    pool = pools.pool_get(python_pool)
    WarmPool.objects.filter(pk=pool.pk).update(min_size=1, max_size=3)
    for n in range(5):
        Sandbox.objects.create(
            owner=owner,
            org=personal_org_ensure(user=owner),
            name=f"demand-{n}",
            template=python_pool,
            image="x",
            cpu=pool.cpu,
            memory=pool.memory,
        )
    Sandbox.objects.create(
        owner=owner,
        org=personal_org_ensure(user=owner),
        name="other-size",
        template=python_pool,
        image="x",
        cpu=2,
        memory=pool.memory,
    )
    assert pools.pool_fill(pools.pool_get(python_pool)) == 3
    assert WarmPool.objects.get(pk=pool.pk).target_size == 3


def test_disabled_pool_is_drained_and_reconcile_keeps_pool_containers(python_pool, docker_client):
    pools.pool_fill(pools.pool_get(python_pool))
    report = sandbox_reconcile()
    assert not report.orphans_removed
    assert len(pooled_containers(docker_client)) == 2
    # A pool container whose row is gone is an orphan.
    row = PooledContainer.objects.first()
    PooledContainer.objects.filter(pk=row.pk).delete()
    assert row.id in sandbox_reconcile().orphans_removed
    WarmPool.objects.filter(template=python_pool).update(enabled=False)
    assert pools.pools_maintain()["python-3.13"] == {"drained": 1}
    assert pooled_containers(docker_client) == []


def test_pools_endpoint_for_operators_only(python_pool, owner, client_for, client):
    pools.pool_fill(pools.pool_get(python_pool))
    assert client_for(owner).get("/api/v1/pools").status_code == 403
    assert client.get("/api/v1/pools").status_code == 401
    owner.is_staff = True
    owner.save()
    stats = client_for(owner).get("/api/v1/pools").json()["pools"]
    assert stats == [
        {
            "template": "python-3.13",
            "cpu": 1.0,
            "memory": "256m",
            "enabled": True,
            "size": 2,
            "creating": 0,
            "targetSize": 2,
            "minSize": 2,
            "maxSize": 20,
            "hits": 0,
            "misses": 0,
            "hitRate": None,
            "replaced": 0,
            "lastReadyMs": stats[0]["lastReadyMs"],
            "engines": [{"engine": "local", "size": 2, "creating": 0}],
        }
    ]
    assert stats[0]["lastReadyMs"] > 0


def test_no_double_assignment_under_concurrent_creates(transactional_db, templates, owner, make_key, docker_client):
    """20 creates at once through the real server, from a pool of 5: every sandbox gets its own container."""
    settings_env = {
        "VIBEBOX_POOL_ENABLED": "1",
        "VIBEBOX_POOL_SIZES": "python-3=5",
        "VIBEBOX_POOL_REFILL_AFTER_TAKE": "0",
    }
    from django.test import override_settings

    with override_settings(VIBEBOX_POOL_ENABLED=True, VIBEBOX_POOL_SIZES={"python-3": 5}):
        assert pools.pool_fill(pools.pool_get(templates["python-3"])) == 5
    key = make_key(owner)[1]
    results, refused, ids = [], [], []
    try:
        with live_server(**settings_env) as (url, _pid):

            def create(n):
                request = urllib.request.Request(
                    f"{url}/api/v1/sandboxes",
                    data=json.dumps({"template": "python-3", "name": f"race-{n}"}).encode(),
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                    method="POST",
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        results.append(json.loads(response.read()))
                except urllib.error.HTTPError as exc:
                    refused.append((exc.code, exc.read()[:500]))

            threads = [threading.Thread(target=create, args=(n,)) for n in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        ids = [r["id"] for r in results]
        assert refused == []
        assert len(results) == 20
        assert len(set(ids)) == 20
        assert sum(r["warm"] for r in results) == 5
        rows = Sandbox.objects.filter(id__in=ids)
        assert len({r.container_id for r in rows}) == 20
        running = {c.name for c in docker_client.containers.list(filters={"label": INSTANCE_LABEL})}
        assert set(ids) <= running
        assert PooledContainer.objects.count() == 0
    finally:
        for sandbox_id in ids:
            docker_client.containers.get(sandbox_id).remove(force=True, v=True)
        with override_settings(VIBEBOX_POOL_SIZES={"python-3": 5}):
            pools.pool_drain()


def test_pools_for_other_resources(python_pool, api_client, cleanup_sandbox_ids, docker_client):
    """Operators add pools keyed by resources; a create asking for exactly those takes from them."""
    big = WarmPool.objects.create(template=python_pool, cpu=0.5, memory=512 * 1024**2, min_size=1, target_size=1)
    assert pools.pool_fill(big) == 1
    pooled = PooledContainer.objects.get(pool=big)
    assert docker_client.containers.get(pooled.id).attrs["HostConfig"]["Memory"] == 512 * 1024**2
    response = api_client.post(
        "/api/v1/sandboxes", {"template": "python-3", "resources": {"cpu": 0.5, "memory": "512m"}}, format="json"
    )
    cleanup_sandbox_ids.append(response.json()["id"])
    assert response.json()["warm"] is True and response.json()["id"] == pooled.id
    assert response.json()["resources"]["memory"] == "512m"
    other = api_client.post("/api/v1/sandboxes", {"template": "python-3", "resources": {"cpu": 0.5}}, format="json")
    cleanup_sandbox_ids.append(other.json()["id"])
    assert other.json()["warm"] is False  # 0.5 cpu with the default memory: no such pool
    assert "python-3.13:0.5cpu:512m" in pools.pools_maintain()
