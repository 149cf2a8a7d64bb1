"""Per-node warm pools (docs/nodes.md, "Per-node warm pools"), with a real nested engine prepared as
a node (sandboxd's volume, its relay, the template's image): `pools_maintain` fills the pool on the
node through its driver as well as on the local engine; a create placed on the node takes the
node's pooled container (warm, on the node's engine, a command through its relay) and leaves the
local pool alone; a node that is not placeable gets no fill and its pooled rows are dropped (a
draining node's containers removed; a down node's left to reconcile, which removes them when the
node returns because no row knows them); VIBEBOX_POOL_NODES off keeps pools local.

The local engine is made to look full as in test_placement.py (a row holding its memory)."""

import pytest

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes.models import Node, PooledContainer, WarmPool
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services import placement, pools
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.nodes import node_prepare
from tests.nodes.engines import add_node, fill_local_engine, ship, unprepare

pytestmark = pytest.mark.django_db

READY = PooledContainer.Status.READY


@pytest.fixture
def pool(settings):
    settings.VIBEBOX_DEFAULT_DISK = None  # the nested engines (vfs) cannot limit a container's disk
    settings.VIBEBOX_POOL_ENABLED, settings.VIBEBOX_POOL_NODES = True, True
    settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = False
    settings.VIBEBOX_POOL_SIZES = {}  # this test's pool only
    Template.objects.update(is_active=False)  # the session's built-in rows: not pooled here
    template = Template.objects.create(name="pooled", display_name="Pooled", image=base_image())  # root
    placement.placement_caches_clear()
    yield WarmPool.objects.create(
        template=template,
        cpu=settings.VIBEBOX_DEFAULT_CPU,
        memory=settings.VIBEBOX_DEFAULT_MEMORY,
        min_size=1,
        target_size=1,
        max_size=1,
    )
    pools.pool_drain()
    placement.placement_caches_clear()


@pytest.fixture
def node_a(docker_nodes, pool):
    """node-a, prepared (sandboxd, its relay) with the template's image; bare again afterwards."""
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    ship(engine, pool.template.image)
    node_prepare(node=node)
    node.refresh_from_db()
    yield node
    pools.pool_drain()
    unprepare(engine)


def _on(node):
    return PooledContainer.objects.filter(node=node)


def test_a_node_pool_is_filled_and_a_create_placed_there_is_a_warm_hit(
    node_a, pool, owner, api_client, docker_client, django_capture_on_commit_callbacks
):
    report = pools.pools_maintain()
    assert report["pooled"] == {"replaced": 0, "started": 1}
    assert report["pooled@node-a"] == {"replaced": 0, "started": 1}
    local, there = _on(None).get(status=READY), _on(node_a).get(status=READY)
    assert get_driver(node_a).inspect(there.id).status == "running"  # on the node's engine...
    assert not docker_client.containers.list(all=True, filters={"name": f"^{there.id}$"})  # ...not here
    assert docker_client.containers.get(local.id).status == "running"
    # Sandboxd from the node's volume answered the health check through the relay (it is READY);
    # a second pass finds both pools full and healthy.
    again = pools.pools_maintain()
    assert again["pooled@node-a"] == {"replaced": 0, "started": 0} and again["pooled"]["started"] == 0
    # GET /api/v1/pools: per engine, and the sums kept.
    (stats,) = [s for s in pools.pool_stats() if s.template == "pooled"]
    assert [(e.engine, e.size, e.creating) for e in stats.engines] == [("local", 1, 0), ("node-a", 1, 0)]
    assert (stats.size, stats.creating) == (2, 0)

    fill_local_engine(pool.template)
    with django_capture_on_commit_callbacks(execute=True):  # the hit is counted at commit
        sandbox = sandbox_create(owner=owner, template="pooled")
    try:
        assert sandbox.warm and sandbox.node_id == node_a.pk and sandbox.status == "running"
        assert sandbox.id == there.id  # the pooled container became the sandbox, on the node
        assert not _on(node_a).exists()
        run = api_client.post(f"/api/v1/sandboxes/{sandbox.id}/exec", {"command": "echo $((6 * 7))"}, format="json")
        assert run.status_code == 200 and run.json()["stdout"] == "42\n", run.content  # through the relay
        # The local pool is untouched by a create placed on the node.
        assert list(_on(None).values_list("id", "status")) == [(local.id, READY)]
        assert docker_client.containers.get(local.id).status == "running"
        pool.refresh_from_db()
        assert (pool.hits, pool.misses) == (1, 0)
        # The next pass refills the node's pool (the create's own refill is off here).
        assert pools.pools_maintain()["pooled@node-a"]["started"] == 1
        assert _on(node_a).filter(status=READY).count() == 1
    finally:
        sandbox_destroy(sandbox=sandbox)
    assert get_driver(node_a).inspect(sandbox.container_name) is None


def test_a_node_that_is_not_placeable_gets_no_fill_and_its_rows_are_dropped(node_a, pool, settings):
    # Pools on nodes off: the local engine's only, and a node's rows dropped.
    settings.VIBEBOX_POOL_NODES = False
    report = pools.pools_maintain()
    assert report["pooled"]["started"] == 1 and "pooled@node-a" not in report
    assert not _on(node_a).exists()
    settings.VIBEBOX_POOL_NODES = True
    assert pools.pools_maintain()["pooled@node-a"]["started"] == 1

    # Draining (it answers): its rows dropped and its containers removed; no fill.
    drained = _on(node_a).get().id
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.DRAINING)
    report = pools.pools_maintain()
    assert report["@node-a"] == {"dropped": 1} and "pooled@node-a" not in report
    assert not _on(node_a).exists() and get_driver(node_a).inspect(drained) is None

    # Down: not asked; its rows dropped, no fill; the container left where it is...
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.HEALTHY)
    assert pools.pools_maintain()["pooled@node-a"]["started"] == 1
    lost = _on(node_a).get().id
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.DOWN)
    report = pools.pools_maintain()
    assert report["@node-a"] == {"dropped": 1} and "pooled@node-a" not in report
    assert not _on(node_a).exists() and _on(None).filter(status=READY).count() == 1  # the local pool stays
    assert get_driver(node_a).inspect(lost).status == "running"
    # ...until the node returns: reconcile removes it (no row knows it), and the local pool's stays.
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.HEALTHY)
    node_a.refresh_from_db()
    found = sandbox_reconcile(node=node_a)
    assert lost in found.orphans_removed and get_driver(node_a).inspect(lost) is None
    assert _on(None).filter(status=READY).count() == 1
