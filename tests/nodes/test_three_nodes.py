"""Drill (f), `make test-ha` (docs/operations.md): three nodes, one stopped and brought back.

The local engine and the two nested engines of tests/nodes/conftest.py, each registered and
prepared as an operator would (`addnode`, then the node sync: sandboxd, the relay with its
firewall agent, the template's image). Through the REST API: creates spread over the three
engines (placement by free memory), and a command runs in each sandbox (on a node, through its
relay). Then one node's engine stops answering (`docker pause` on its container: its
/var/lib/docker is a tmpfs, a stop would empty it): the health check marks it down and its
sandboxes `unreachable` (409 for a command), the other sandboxes keep answering and new creates go
to the other two engines. Unpaused, the next check finds it healthy, reconciles it, and its
sandboxes run commands again. It prints the spread and the times.

Not in `make test` (its --ignore): `make test-ha` runs it (scripts/test-ha.sh)."""

import sys
import time
from collections import Counter

import pytest
from django.test import override_settings

from apps.marketplace.catalog import base_image
from apps.marketplace.models import Template
from apps.sandboxes.models import Node, Sandbox
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services import placement
from apps.sandboxes.services.node_images import node_images_sync
from apps.sandboxes.services.nodes import nodes_check
from tests.nodes.engines import add_node, unprepare

pytestmark = pytest.mark.django_db

MiB = 1024**2


@pytest.fixture
def three_engines(docker_nodes, settings):
    """node-a and node-b registered and synced (only this drill's template active), the local
    engine as the third; what the sync made on the nested engines is removed afterwards."""
    settings.VIBEBOX_DEFAULT_DISK = None  # the nested engines (vfs) cannot limit a container's disk
    Template.objects.update(is_active=False)  # the session's built-in rows: not for the nested engines
    Template.objects.create(name="drill", display_name="Drill", image=base_image())  # no user: root
    nodes = [add_node(docker_nodes[0], "node-a"), add_node(docker_nodes[1], "node-b")]
    for node in nodes:
        report = node_images_sync(node=node)
        assert not report.failed and not report.missing, report
    placement.placement_caches_clear()
    yield [Node.objects.get(pk=node.pk) for node in nodes]
    placement.placement_caches_clear()
    for engine in docker_nodes:
        engine.container.unpause() if engine.container.status == "paused" else None
        unprepare(engine)


def _where(sandbox_id: str) -> str:
    node = Sandbox.objects.select_related("node").get(pk=sandbox_id).node
    return node.name if node else "local"


def _create(api_client, name: str) -> str:
    body = {"template": "drill", "name": name, "resources": {"memory": "256m"}}
    response = api_client.post("/api/v1/sandboxes", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _run(api_client, sandbox_id: str, command: str):
    return api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")


@override_settings(VIBEBOX_NODE_DOWN_AFTER=2, VIBEBOX_NODE_CHECK_TIMEOUT=2)
def test_creates_spread_over_three_nodes_and_one_stopped_leaves_the_others_serving(
    three_engines, docker_nodes, api_client, cleanup_sandbox_ids
):
    node_a, node_b = three_engines
    created = []
    began = time.monotonic()
    for number in range(6):
        created.append(_create(api_client, f"s{number}"))
    created_in = time.monotonic() - began
    where = {sandbox_id: _where(sandbox_id) for sandbox_id in created}
    cleanup_sandbox_ids.extend(i for i in created if where[i] == "local")  # a node's go with its engine
    spread = Counter(where.values())
    assert spread == {"local": 2, "node-a": 2, "node-b": 2}, spread  # equal room: round and round

    for sandbox_id in created:  # every sandbox answers, on a node through its relay
        response = _run(api_client, sandbox_id, "echo $((6 * 7)) && hostname")
        assert response.status_code == 200, response.content
        assert response.json()["stdout"].splitlines()[0] == "42"
    on_b = [i for i in created if where[i] == "node-b"]
    assert get_driver(node_b).inspect(Sandbox.objects.get(pk=on_b[0]).container_name).status == "running"

    # node-b stops answering: two failed checks mark it down and its sandboxes unreachable.
    docker_nodes[1].container.pause()
    stopped = time.monotonic()
    checks = 0
    while Node.objects.get(pk=node_b.pk).state != Node.State.DOWN:
        nodes_check()
        checks += 1
        assert checks <= 4, "node-b was not marked down"
    down_in = time.monotonic() - stopped
    for sandbox_id in on_b:
        assert Sandbox.objects.get(pk=sandbox_id).status == "unreachable"
        response = _run(api_client, sandbox_id, "true")
        assert response.status_code == 409 and response.json()["error"]["code"] == "sandbox_unreachable"
    for sandbox_id in (i for i in created if where[i] != "node-b"):  # the others keep serving
        assert _run(api_client, sandbox_id, "echo still").json()["stdout"] == "still\n"
    placement.placement_caches_clear()
    more = []
    for number in range(3):
        more.append(_create(api_client, f"m{number}"))
    more_spread = Counter(_where(i) for i in more)
    cleanup_sandbox_ids.extend(i for i in more if _where(i) == "local")
    assert set(more_spread) == {"local", "node-a"}, more_spread  # new creates go elsewhere

    # Back: the next check finds it healthy and reconciles it; its sandboxes answer again.
    docker_nodes[1].container.unpause()
    back = time.monotonic()
    assert nodes_check()["node-b"] == Node.State.HEALTHY
    back_in = time.monotonic() - back
    for sandbox_id in on_b:
        assert Sandbox.objects.get(pk=sandbox_id).status == "running"
        response = _run(api_client, sandbox_id, "echo back")
        assert response.status_code == 200 and response.json()["stdout"] == "back\n", response.content

    for sandbox_id in created + more:  # destroyed through the API, wherever they are
        assert api_client.delete(f"/api/v1/sandboxes/{sandbox_id}").status_code == 204
    for node in (node_a, node_b):
        assert not get_driver(node).list_containers({"vibebox.managed": "1"})
    sys.__stderr__.write(
        f"\nHA drill (f) three nodes: 6 creates in {created_in:.1f} s spread {dict(sorted(spread.items()))}; "
        f"node-b down after {checks} checks ({down_in:.1f} s), its {len(on_b)} sandboxes unreachable, "
        f"3 more creates on {dict(sorted(more_spread.items()))}; back and reconciled "
        f"in {back_in:.1f} s\n"
    )
