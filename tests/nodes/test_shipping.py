"""Images shipped to a node (docs/nodes.md, "Shipping images"): the local engine's `docker save`
streamed into the node's `docker load` through the driver, checked by image id, never sent twice;
sandboxd's image and volume on a node (node_prepare); a node that is not healthy is refused."""

import sys
import tracemalloc
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.marketplace.catalog import base_image
from apps.sandboxes import sandboxd, tasks
from apps.sandboxes.models import Node
from apps.sandboxes.runtime import DAEMON_BINARY, get_driver
from apps.sandboxes.runtime.docker import CHUNK_BYTES
from apps.sandboxes.services.nodes import RELAY_NAME, RELAY_VOLUME, node_prepare, node_ship_image
from apps.sandboxes.specs import network_name
from tests.nodes.engines import add_node, unprepare
from vibebox import exceptions as errors

pytestmark = pytest.mark.django_db

INSTANCE = settings.VIBEBOX_INSTANCE


@pytest.fixture
def own_tag(docker_client):
    """Local images under tags of this test's own (so the node cannot have them from another
    test), untagged on both engines at the end."""
    made: list[tuple[str, object]] = []

    def tag(source: str, name: str, engine) -> str:
        tag = f"vibebox-test/ship-{INSTANCE}:{name}"
        docker_client.images.get(source).tag(tag)
        made.append((tag, engine))
        return tag

    yield tag
    for tag, engine in made:
        docker_client.images.remove(tag)
        engine.container.exec_run(["docker", "rmi", tag])


def _node_image_id(engine, tag: str) -> str:
    return engine.docker("image", "inspect", "--format", "{{.Id}}", tag).strip()


def test_an_image_ships_once_and_is_not_sent_again(docker_nodes, docker_client, own_tag):
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    tag = own_tag(sandboxd.image(base_image()), "small", engine)
    local_id = docker_client.images.get(tag).id
    assert not get_driver(node).image_exists(tag)

    shipped = node_ship_image(node=node, tag=tag)
    assert shipped.image_id == local_id and shipped.sent > 1024**2  # the whole tar went
    assert _node_image_id(engine, tag) == local_id  # the same image on the node

    again = node_ship_image(node=node, tag=tag)
    assert again.sent == 0 and again.image_id == local_id  # nothing sent
    assert tasks.ship_image("node-a", tag) == {"node": "node-a", "image": tag, "id": local_id, "sent": 0}
    out = StringIO()
    call_command("shipimage", "node-a", tag, stdout=out)
    assert f"node-a: {tag} is there already ({local_id}), nothing sent" in out.getvalue()


def test_prepare_ships_sandboxd_and_makes_its_volume_there(docker_nodes, docker_client):
    engine = docker_nodes[0]
    unprepare(engine)  # made here, not by an earlier test
    node = add_node(engine, "node-a")
    tag, volume = sandboxd.image(base_image()), sandboxd.volume(base_image())
    driver = get_driver(node)
    try:
        prepared = node_prepare(node=node)
        assert prepared.volume == volume and prepared.image.tag == tag
        assert prepared.volume_made and driver.volume_exists(volume)
        assert _node_image_id(engine, tag) == docker_client.images.get(tag).id
        # The shipped binary runs on the node, from the image and from the volume made there.
        local = docker_client.containers.run(tag, ["version"], entrypoint=DAEMON_BINARY, remove=True).decode()
        assert local.startswith("sandboxd ")
        from_image = engine.docker("run", "--rm", "--network", "none", "--entrypoint", DAEMON_BINARY, tag, "version")
        from_volume = engine.docker(
            "run", "--rm", "--network", "none", "-v", f"{volume}:/mnt/daemon:ro",
            "--entrypoint", "/mnt/daemon/sandboxd", tag, "version",
        )  # fmt: skip
        assert from_image == from_volume == local
        assert engine.docker("volume", "inspect", "--format", "{{.Labels}}", volume).strip() == (
            f"map[vibebox.sandboxd:{sandboxd.digest(base_image())}]"
        )

        again = node_prepare(node=node)  # idempotent: nothing sent, the volume left as it is
        assert again.image.sent == 0 and not again.volume_made
        out = StringIO()
        call_command("shipimage", "node-a", "--sandboxd", stdout=out)
        assert f"node-a: sandboxd volume {volume} in place already" in out.getvalue()
        assert "node-a: relay on port 2377 running already" in out.getvalue()  # tests/nodes/test_relay_node.py
    finally:
        get_driver(Node.objects.get(pk=node.pk)).remove_network(network_name())  # through the relay: first
        driver.relay_remove(RELAY_NAME, RELAY_VOLUME)
        driver.remove_volume(volume)


def test_a_node_that_is_not_healthy_is_refused(docker_nodes, own_tag):
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    tag = own_tag(sandboxd.image(base_image()), "refused", engine)
    for state in (Node.State.DOWN, Node.State.DRAINING):
        Node.objects.filter(pk=node.pk).update(state=state)
        with pytest.raises(errors.ValidationFailed) as refused:
            node_ship_image(node=node, tag=tag)  # the row as the caller had it: healthy
        assert refused.value.message == f"Node 'node-a' is {state}: images are shipped only to a healthy node."
        assert refused.value.details["reason"] == "node_not_healthy"
        with pytest.raises(CommandError, match=f"is {state}: images are shipped only to a healthy node"):
            call_command("shipimage", "node-a", tag)
        with pytest.raises(errors.ValidationFailed):
            node_prepare(node=node)
    assert not get_driver(node).image_exists(tag)  # nothing reached the node
    with pytest.raises(CommandError, match="No node is named 'nowhere'"):
        call_command("shipimage", "nowhere", tag)
    Node.objects.filter(pk=node.pk).update(state=Node.State.HEALTHY)
    with pytest.raises(CommandError, match="No image vibebox-test/none:0 on the local engine"):
        call_command("shipimage", "node-a", "vibebox-test/none:0")


def test_a_bigger_image_is_streamed_never_held_whole(docker_nodes, docker_client, own_tag):
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    local = get_driver()
    sizes = [len(chunk) for chunk in local.image_save(base_image())]
    assert sum(sizes) > 20 * CHUNK_BYTES and max(sizes) <= CHUNK_BYTES  # read in chunks, as they come

    tag = own_tag(base_image(), "big", engine)
    tracemalloc.start()
    try:
        shipped = node_ship_image(node=node, tag=tag)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Not an assertion (no timed assertions): the numbers for docs/nodes.md.
    sys.__stderr__.write(
        f"\nshipped {shipped.sent / 1024**2:.1f} MiB in {shipped.seconds:.1f} s, peak {peak / 1024**2:.1f} MiB traced\n"
    )
    assert shipped.sent > 20 * CHUNK_BYTES
    assert peak < 8 * CHUNK_BYTES < shipped.sent / 2  # this process never held the image whole
    assert _node_image_id(engine, tag) == docker_client.images.get(tag).id

    with pytest.raises(errors.RuntimeFailure):  # the engine's refusal, as the seam's error
        get_driver(node).image_load(iter([b"not a tar" * 1000]))


def test_a_source_that_fails_mid_stream_loads_nothing(docker_nodes, own_tag):
    engine = docker_nodes[0]
    node = add_node(engine, "node-a")
    tag = own_tag(sandboxd.image(base_image()), "cut", engine)

    def cut_short():
        for number, chunk in enumerate(get_driver().image_save(tag)):
            if number == 10:
                raise errors.RuntimeUnavailable("the source engine went away")
            yield chunk

    with pytest.raises(errors.RuntimeUnavailable, match="the source engine went away"):
        get_driver(node).image_load(cut_short())
    assert not get_driver(node).image_exists(tag)
    assert node_ship_image(node=node, tag=tag).sent > 0  # and a later ship works
