"""Placement of new sandboxes over the local engine and the nodes (docs/nodes.md, "Placement"), with
real nested engines and the real database: the most free memory wins (ties: fewest sandboxes, then
the name), draining and down nodes and nodes without the image are never picked, a snapshot's
create stays on the snapshot's node, a policy that needs the egress proxy stays local without back
links, and no room anywhere is 503 no_capacity with nothing made.

The local engine is made to look full with sandbox rows holding its memory (rows with no
container), since both engines report the same host's memory. Creates on a node run with
autoStart false where the test checks only where the container is; commands in sandboxes placed on
nodes (through their relays) are drill (f), tests/nodes/test_three_nodes.py."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import close_old_connections, transaction
from django.test import override_settings

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes import sandboxd
from apps.sandboxes.models import Node, PooledContainer, Sandbox, Snapshot, WarmPool
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services import placement, pools
from apps.sandboxes.services.create import sandbox_create, sandbox_destroy
from apps.sandboxes.services.network import sandbox_by_address, sandbox_network_update
from apps.sandboxes.services.nodes import node_add, node_prepare
from apps.sandboxes.specs import base_labels
from tests.conftest import sandbox_row
from tests.nodes.engines import add_node, fill_local_engine, ship, unprepare
from vibebox import exceptions as errors

pytestmark = pytest.mark.django_db

MiB = 1024**2


@pytest.fixture(autouse=True)
def fresh_caches(settings):
    # The nested engines (vfs) cannot limit a container's disk, which only a sandbox with a disk size
    # minds (tested below): no default one.
    settings.VIBEBOX_DEFAULT_DISK = None
    placement.placement_caches_clear()
    yield
    placement.placement_caches_clear()


@pytest.fixture
def template(db):
    # The base image carries the label of images built here (vibebox.managed-image), as a template's does.
    return Template.objects.create(
        name="placed", display_name="Placed", image=base_image()
    )  # no user: root (the base image has none)


@pytest.fixture
def local_memory():
    return get_driver().node_engine().memory


def _pick(image: str, memory: int = 256 * MiB, cpu: float = 0.0, **kwargs) -> str:
    with transaction.atomic():
        node = placement.node_pick(placement.placement_candidates(image=image, **kwargs), memory=memory, cpu=cpu)
    return node.name if node is not None else "local"


@pytest.fixture
def node_a(docker_nodes, template):
    """node-a, with the template's image and sandboxd (node_prepare) on its engine; sandboxd's volume
    is removed afterwards (test_shipping.py makes it on a fresh engine)."""
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    ship(engine, template.image)
    node_prepare(node=node)
    node.refresh_from_db()
    yield node
    unprepare(engine)


def _as_prepared(node: Node) -> Node:
    """A node placement may pick, for tests of the pick alone: what node_prepare records once the
    node's relay answers, without the relay (node_a is prepared for real)."""
    Node.objects.filter(pk=node.pk).update(relay_image=sandboxd.relay_current())
    node.refresh_from_db()
    return node


def test_a_node_not_prepared_is_never_picked(docker_nodes, owner, template, local_memory):
    node = add_node(docker_nodes[1], "node-b")  # healthy, but no relay yet: sandboxd unreachable there
    ship(docker_nodes[1], template.image)
    fill_local_engine(template)
    placement.placement_caches_clear()
    assert [c.name for c in placement.placement_candidates(image=template.image).engines] == ["local"]
    node_prepare(node=node)
    try:
        placement.placement_caches_clear()
        assert _pick(template.image) == "node-b"
    finally:
        unprepare(docker_nodes[1])
        docker_nodes[1].container.exec_run(["docker", "rmi", template.image])  # other tests: node-b has no image


def test_with_no_node_the_pick_is_local_with_one_query_and_no_engine_call(owner, template, django_assert_num_queries):
    with django_assert_num_queries(1):
        candidates = placement.placement_candidates(image=template.image)
    with django_assert_num_queries(0):
        assert placement.node_pick(candidates, memory=1 << 40) is None  # nothing counted: as before nodes
    # Placement's engine calls (memory, image lists) fill its caches: none was made.
    assert placement._local_engine is None and not placement._images
    # Node labels the local engine has (VIBEBOX_LOCAL_NODE_LABELS): the same; others: 400, one query.
    with django_assert_num_queries(1), override_settings(VIBEBOX_LOCAL_NODE_LABELS={"region": "eu"}):
        assert placement.placement_candidates(image=template.image, labels={"region": "eu"}).anywhere
    with django_assert_num_queries(1), pytest.raises(errors.NoMatchingNode):
        placement.placement_candidates(image=template.image, labels={"region": "eu"})
    assert placement._local_engine is None and not placement._images


def test_a_create_goes_to_the_node_with_the_most_free_memory(
    node_a, docker_client, owner, template, local_memory, settings
):
    fill_local_engine(template, leave=512 * MiB)
    Node.objects.filter(pk=node_a.pk).update(memory=local_memory)  # 512 MiB free locally, most of it there
    sandbox = sandbox_create(owner=owner, template="placed", auto_start=False, resources={"memory": 256 * MiB})
    try:
        assert sandbox.node_id == node_a.pk and Sandbox.objects.get(pk=sandbox.pk).node_id == node_a.pk
        assert sandbox.status == "stopped"
        there = get_driver(node_a).inspect(sandbox.container_name)
        assert there is not None and there.labels["vibebox.sandbox-id"] == sandbox.pk
        assert not docker_client.containers.list(all=True, filters={"name": sandbox.container_name})
    finally:
        sandbox_destroy(sandbox=sandbox)
    assert get_driver(node_a).inspect(sandbox.container_name) is None

    # Room on both, more of it locally: local.
    Sandbox.objects.filter(name="local-hog").delete()
    Node.objects.filter(pk=node_a.pk).update(memory=local_memory // 2)
    assert _pick(template.image) == "local"


def test_a_started_sandbox_runs_on_the_node(node_a, docker_client, owner, template, local_memory, settings):
    """Without services or a clone, a started create needs no sandboxd call: it runs there."""
    fill_local_engine(template)
    sandbox = sandbox_create(owner=owner, template="placed", resources={"memory": 256 * MiB})
    try:
        assert sandbox.node_id == node_a.pk and sandbox.status == "running" and not sandbox.warm
        assert get_driver(node_a).inspect(sandbox.container_name).status == "running"
        assert not docker_client.containers.list(all=True, filters={"name": sandbox.container_name})
        # Its address is on the node's bridge: this host's egress proxy does not take it for a local one's.
        sandbox.refresh_from_db()
        assert sandbox.network_address and sandbox_by_address(sandbox.network_address) is None
        # Without back links a policy that goes through the egress proxy cannot be enforced there:
        # refused, the open one kept (test_node_egress.py, test_node_backlinks.py: with them it is).
        settings.VIBEBOX_NODE_BACK_LINKS = 0
        before = sandbox.network
        with pytest.raises(errors.EgressUnavailable):
            sandbox_network_update(sandbox=sandbox, changes={"internet": False})
        sandbox.refresh_from_db()
        assert sandbox.network == before
    finally:
        sandbox_destroy(sandbox=sandbox)


def test_draining_and_down_nodes_are_never_picked(node_a, owner, template, local_memory):
    fill_local_engine(template, leave=512 * MiB)
    assert _pick(template.image) == "node-a"
    for state in (Node.State.DRAINING, Node.State.DOWN):
        Node.objects.filter(pk=node_a.pk).update(state=state)
        assert _pick(template.image) == "local"
        with pytest.raises(errors.NoCapacity):  # and local has no room for 1 GiB
            _pick(template.image, memory=1024 * MiB)


def test_a_sandbox_with_a_disk_size_goes_only_where_the_engine_enforces_it(node_a, owner, template, local_memory):
    fill_local_engine(template, leave=512 * MiB)
    assert _pick(template.image) == "node-a"
    assert not get_driver(node_a).engine_info().supports_disk_limit  # vfs
    assert _pick(template.image, disk=1024 * MiB) == "local"


def test_a_node_without_the_image_is_not_picked_while_another_has_it(
    node_a, docker_nodes, owner, template, local_memory
):
    node_b = _as_prepared(add_node(docker_nodes[1], "node-b"))  # never given the image
    fill_local_engine(template)
    Node.objects.filter(pk=node_b.pk).update(memory=node_a.memory * 2)  # the most room, but no image
    assert _pick(template.image) == "node-a"

    # No engine but the local one has an image (a fresh marketplace version, say): local, never a wait.
    placement.placement_caches_clear()
    assert placement.placement_candidates(image=sandboxd.image(base_image()) + "-not-here").why == "image"

    # A node whose listing fails is skipped: node-a's engine stopped, node-b still has no image.
    docker_nodes[0].stop()
    try:
        placement.placement_caches_clear()
        candidates = placement.placement_candidates(image=template.image)
        assert [c.name for c in candidates.engines] == ["local"]
    finally:
        docker_nodes[0].start()


def test_ties_go_to_the_fewest_sandboxes_then_to_the_name(node_a, docker_nodes, owner, template, local_memory):
    node_b = _as_prepared(add_node(docker_nodes[1], "node-b"))
    ship(docker_nodes[1], template.image)
    fill_local_engine(template)
    same = 8 * 1024 * MiB
    Node.objects.filter(pk__in=[node_a.pk, node_b.pk]).update(memory=same)
    assert _pick(template.image) == "node-a"  # the same room, no sandboxes: the name

    # node-a holds one sandbox, and as much more memory: the same room, more sandboxes.
    sandbox_row(owner, template, name="on-a", memory=512 * MiB, node=node_a)
    Node.objects.filter(pk=node_a.pk).update(memory=same + 512 * MiB)
    assert _pick(template.image) == "node-b"

    # A stopped sandbox holds no memory.
    Sandbox.objects.filter(name="on-a").update(status="stopped")
    assert _pick(template.image) == "node-a"


def test_node_labels_choose_the_engines_and_none_matching_is_400(node_a, api_client, owner, template, settings):
    Node.objects.filter(pk=node_a.pk).update(labels={"region": "eu", "disk": "ssd"})
    eu = {"region": "eu"}
    assert _pick(template.image) == "local"  # as much room, no labels asked: the name
    assert _pick(template.image, labels=eu) == "node-a"  # only node-a has them
    assert _pick(template.image, labels={"region": "eu", "disk": "ssd"}) == "node-a"
    settings.VIBEBOX_LOCAL_NODE_LABELS = {"region": "eu"}  # the local engine has them too: the name again
    assert _pick(template.image, labels=eu) == "local"
    settings.VIBEBOX_LOCAL_NODE_LABELS = {}
    with pytest.raises(errors.NoMatchingNode) as refused:
        _pick(template.image, labels={"region": "us"})
    assert refused.value.details == {"nodeLabels": {"region": "us"}} and "node-a" not in refused.value.message
    # A restricted policy goes where it can be enforced and the labels are: node-a's relay enforces it.
    assert _pick(template.image, labels=eu, policy={"internet": True, "allow": [], "deny": ["203.0.113.0/24"]}) == (
        "node-a"
    )
    # The only matching node drained: it exists, so 503 no_capacity (retried), not 400.
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.DRAINING)
    with pytest.raises(errors.NoCapacity, match="node labels"):
        _pick(template.image, labels=eu)
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.HEALTHY)

    # Through the API: 400 no_matching_node with nothing made; a bad label is a validation error.
    rows = Sandbox.objects.count()
    for labels, code in (({"region": "us"}, "no_matching_node"), ({"Region!": "eu"}, "validation_error")):
        response = api_client.post(
            "/api/v1/sandboxes", {"template": "placed", "autoStart": False, "nodeLabels": labels}, format="json"
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == code, response.content
    assert Sandbox.objects.count() == rows
    response = api_client.post(
        "/api/v1/sandboxes", {"template": "placed", "autoStart": False, "nodeLabels": eu}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Sandbox.objects.get(pk=response.json()["id"]).node_id == node_a.pk
    sandbox_destroy(sandbox=Sandbox.objects.get(pk=response.json()["id"]))

    # addnode checks the labels first (nothing dialled for a bad one).
    with pytest.raises(errors.ValidationFailed, match="Invalid label"):
        node_add(name="node-x", docker_url="tcp://192.0.2.1:2376", ca="", labels={"zone": "eu west"})


def test_cpus_are_counted_beside_memory(docker_nodes, owner, template, settings):
    settings.VIBEBOX_NODE_CPU_OVERCOMMIT = 1.0  # an engine's sandboxes ask for its CPUs at most
    node_b = _as_prepared(add_node(docker_nodes[1], "node-b"))
    ship(docker_nodes[1], template.image)
    local_cpus = get_driver().node_engine().cpus
    assert node_b.cpus >= 1 and local_cpus >= 1
    hog, _ = get_user_model().objects.get_or_create(username="hog")
    sandbox_row(hog, template, name="local-cpus", cpu=local_cpus, memory=MiB)  # every local CPU asked for
    sandbox_row(hog, template, name="node-cpus", cpu=0.5, memory=2 * MiB, node=node_b)  # less memory free there
    assert _pick(template.image) == "local"  # asking for no CPU: the most free memory
    assert _pick(template.image, cpu=1) == "node-b"  # the local CPUs are all asked for
    Sandbox.objects.filter(name="node-cpus").update(cpu=node_b.cpus - 0.5)
    assert _pick(template.image, cpu=0.5) == "node-b"
    with pytest.raises(errors.NoCapacity, match="fewer CPUs") as refused:
        _pick(template.image, cpu=1)
    assert refused.value.details == {"memory": 256 * MiB, "cpu": 1}
    Sandbox.objects.filter(name="node-cpus").update(status="stopped")  # a stopped sandbox holds none
    assert _pick(template.image, cpu=1) == "node-b"
    settings.VIBEBOX_NODE_CPU_OVERCOMMIT = 4.0  # the default: four times the CPUs
    Sandbox.objects.filter(name="node-cpus").update(status="running")
    assert _pick(template.image, cpu=1) == "local"  # room for it on both: the most free memory


def test_a_snapshot_create_stays_on_the_snapshot_node(node_a, owner, template, local_memory):
    source = sandbox_row(owner, template, name="source", node=node_a, status="stopped")
    on_node = Snapshot.objects.create(
        owner=owner, org=source.org, sandbox=source, template=template, image="snap:on-node", node=node_a
    )
    local = Snapshot.objects.create(owner=owner, org=source.org, sandbox=source, template=template, image="snap:here")
    # Far more room locally: the snapshot's node all the same.
    Node.objects.filter(pk=node_a.pk).update(memory=4 * 1024 * MiB)
    assert _pick(on_node.image, snapshot=on_node) == "node-a"
    # The local engine full, node-a with room: a local snapshot's create goes there (its image is
    # shipped there by the create: tests/nodes/test_node_ops.py).
    fill_local_engine(template)
    assert _pick(template.image) == "node-a"
    assert _pick(local.image, snapshot=local) == "node-a"
    # The snapshot's node drained (its image can still be read) and the local engine full: no room.
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.DRAINING)
    with pytest.raises(errors.NoCapacity) as refused:
        _pick(on_node.image, snapshot=on_node)
    assert "where the snapshot is" in refused.value.message
    Sandbox.objects.filter(name="local-hog").delete()  # room locally again: shipped here
    assert _pick(on_node.image, snapshot=on_node) == "local"
    # Down: its image cannot be read, so nowhere.
    Node.objects.filter(pk=node_a.pk).update(state=Node.State.DOWN)
    with pytest.raises(errors.NoCapacity):
        _pick(on_node.image, snapshot=on_node)


def test_a_restricted_policy_goes_where_it_can_be_enforced(node_a, owner, template, local_memory, settings):
    fill_local_engine(template, leave=512 * MiB)
    open_policy = {"internet": True, "allow": [], "deny": []}
    assert _pick(template.image, policy=open_policy) == "node-a"
    # A chain of its own: written on the node through its relay (test_node_egress.py); through the
    # egress proxy: reached from the node by back links (test_node_backlinks.py).
    proxied = (
        {"internet": False, "allow": [], "deny": []},  # the proxy: its direct connections closed
        {"internet": True, "allow": [], "deny": ["example.com"]},  # a name: only the proxy can tell
    )
    for policy in ({"internet": True, "allow": [], "deny": ["203.0.113.0/24"]}, *proxied):
        assert _pick(template.image, policy=policy) == "node-a"
    settings.VIBEBOX_NODE_BACK_LINKS = 0  # no back links: the proxy is out of a node's reach
    for policy in proxied:
        assert _pick(template.image, policy=policy) == "local"
    with pytest.raises(errors.NoCapacity) as refused:
        _pick(template.image, memory=1024 * MiB, policy={"internet": False, "allow": [], "deny": []})
    assert "restricted egress policy" in refused.value.message


def test_no_room_anywhere_is_503_no_capacity_with_nothing_made(
    node_a, docker_client, api_client, owner, template, settings
):
    settings.VIBEBOX_NODE_MEMORY_RESERVE = 1.0  # every engine keeps all its memory
    rows = Sandbox.objects.count()
    response = api_client.post(
        "/api/v1/sandboxes", {"template": "placed", "name": "nowhere", "autoStart": False}, format="json"
    )
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "no_capacity" and error["details"] == {
        "memory": settings.VIBEBOX_DEFAULT_MEMORY,
        "cpu": settings.VIBEBOX_DEFAULT_CPU,
    }
    assert "node-a" not in response.content.decode()  # a tenant is not told the engines
    assert Sandbox.objects.count() == rows and not Sandbox.objects.filter(name="nowhere").exists()
    labels = {**base_labels(), "vibebox.owner": str(owner.pk)}  # this session's (other sessions share the engine)
    assert not get_driver(node_a).list_containers(labels)
    assert not docker_client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})


@pytest.mark.django_db(transaction=True)
def test_two_creates_at_once_cannot_both_take_the_last_room(node_a, owner, template, local_memory, settings):
    """Two owners (their own locks do not serialise them) create at once where node-a has room for
    one: the node's row lock and the recount leave the other no room (the local engine is full)."""
    settings.VIBEBOX_NODE_MEMORY_RESERVE = 0
    fill_local_engine(template)
    Node.objects.filter(pk=node_a.pk).update(memory=300 * MiB)
    other = get_user_model().objects.create_user(username="other", password="pw-other")
    barrier, outcomes, made = threading.Barrier(2), [], []

    def create(user):
        try:
            barrier.wait()
            sandbox = sandbox_create(owner=user, template="placed", auto_start=False, resources={"memory": 256 * MiB})
            made.append(sandbox)
            outcomes.append(sandbox.node.name if sandbox.node else "local")
        except errors.ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=create, args=(user,)) for user in (owner, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    try:
        assert sorted(outcomes) == ["no_capacity", "node-a"]
        assert Sandbox.objects.filter(node=node_a).count() == 1
    finally:
        for sandbox in made:
            sandbox_destroy(sandbox=sandbox)


def test_the_warm_pool_serves_only_a_local_pick(node_a, docker_client, owner, template, local_memory, settings):
    """The pool filled on the local engine only: a create placed locally takes a pooled container;
    one placed on a node takes from the node's pool only (empty here: made there, cold) and leaves
    the local pooled container in the pool (a node's own pool: test_node_pools.py)."""
    settings.VIBEBOX_POOL_ENABLED, settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = True, False
    pool = WarmPool.objects.create(
        template=template,
        cpu=settings.VIBEBOX_DEFAULT_CPU,
        memory=settings.VIBEBOX_DEFAULT_MEMORY,
        min_size=1,
        target_size=1,
        max_size=1,
    )
    made = []
    try:
        assert pools.pool_fill(pool) == 1
        Node.objects.filter(pk=node_a.pk).update(memory=local_memory // 2)  # more room locally
        made.append(sandbox_create(owner=owner, template="placed"))
        assert made[-1].warm and made[-1].node_id is None and made[-1].status == "running"

        assert pools.pool_fill(pool) == 1
        pooled = PooledContainer.objects.get(status=PooledContainer.Status.READY)
        fill_local_engine(template)  # now node-a has the room
        made.append(sandbox_create(owner=owner, template="placed"))
        assert not made[-1].warm and made[-1].node_id == node_a.pk and made[-1].status == "running"
        assert get_driver(node_a).inspect(made[-1].container_name).status == "running"
        assert PooledContainer.objects.filter(pk=pooled.pk, status=PooledContainer.Status.READY).exists()
        assert docker_client.containers.get(pooled.id).status == "running"  # still in the pool, untouched
    finally:
        for sandbox in made:
            sandbox_destroy(sandbox=sandbox)
        pools.pool_drain()
