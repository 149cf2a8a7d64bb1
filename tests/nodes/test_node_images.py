"""Nodes kept current (docs/nodes.md, "Shipping images to nodes"): every image a sandbox can be
created from goes out to each healthy node, once; a template's publication sends the sync task."""

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.marketplace.catalog import base_image
from apps.marketplace.models import BuildState, Template, TemplateVersion, VersionState
from apps.marketplace.signals import template_published
from apps.sandboxes import sandboxd, tasks
from apps.sandboxes.models import Node
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services.node_images import node_images_sync, nodes_images_sync, wanted_images
from tests.nodes.engines import add_node, unprepare
from vibebox.celery import app as celery_app

pytestmark = pytest.mark.django_db

INSTANCE = settings.VIBEBOX_INSTANCE


@pytest.fixture
def tags(docker_client, docker_nodes):
    """Small local images (sandboxd's, ~6.5 MB) under tags of this test's own, untagged on every
    engine at the end."""
    made = []

    def tag(name: str) -> str:
        tag = f"vibebox-test/sync-{INSTANCE}:{name}"
        if tag not in made:
            docker_client.images.get(sandboxd.image(base_image())).tag(tag)
            made.append(tag)
        return tag

    yield tag
    for tag in made:
        docker_client.images.remove(tag)
    for engine in docker_nodes:
        unprepare(engine)  # the relay and volume node_prepare made
        engine.container.exec_run(["sh", "-c", f"docker rmi {' '.join(made)} >/dev/null 2>&1; true"])


def _template(name: str, image: str, **fields) -> Template:
    return Template.objects.create(name=name, display_name=name, image=image, **fields)


def test_every_creatable_image_goes_to_each_healthy_node_once(docker_nodes, tags):
    # Only this test's templates (the session's built-in rows would fill a nested engine).
    Template.objects.update(is_active=False)
    current, pinned, yanked, inactive = tags("current"), tags("pinned"), tags("yanked"), tags("inactive")
    market = _template("sync-market", current)
    TemplateVersion.objects.create(template=market, version="1.0.0", image=pinned, state=VersionState.PUBLISHED)
    TemplateVersion.objects.create(
        template=market, version="0.9.0", image=yanked, state=VersionState.PUBLISHED, yanked=True
    )
    TemplateVersion.objects.create(template=market, version="2.0.0-rc", image=tags("candidate"))  # a candidate
    _template("sync-off", inactive, is_active=False)
    _template("sync-building", tags("building"), build_state=BuildState.BUILDING)
    _template("sync-unbuilt", f"vibebox-test/sync-{INSTANCE}:never-built")
    assert {current, pinned} <= set(wanted_images())
    assert not {yanked, inactive, tags("candidate")} & set(wanted_images())

    a, b = add_node(docker_nodes[0], "node-a"), add_node(docker_nodes[1], "node-b")
    Node.objects.filter(pk=b.pk).update(state=Node.State.DRAINING)
    done = nodes_images_sync()
    assert list(done) == ["node-a"]  # a draining node takes nothing new
    assert {current, pinned} <= set(done["node-a"]["sent"])
    assert f"vibebox-test/sync-{INSTANCE}:never-built" in done["node-a"]["missing"]
    remote = get_driver(a)
    assert remote.image_exists(current) and remote.image_exists(pinned)
    assert not remote.image_exists(yanked) and not remote.image_exists(inactive)
    assert remote.volume_exists(sandboxd.volume_for_sandboxes())  # prepared first
    assert not get_driver(b).image_exists(current)

    again = node_images_sync(node=a)
    assert not again.sent and {current, pinned} <= set(again.present)

    out = StringIO()
    call_command("shipimage", "node-a", "--templates", stdout=out)
    assert f"node-a: {current} is there already, nothing sent" in out.getvalue()
    assert "not on the local engine (not built yet?), skipped" in out.getvalue()
    with pytest.raises(CommandError, match="Name at least one image"):
        call_command("shipimage", "node-a", stdout=StringIO())


@pytest.fixture
def eager_celery():
    """Tasks sent run at once, in this process (the test has no worker)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def test_a_published_template_is_sent_to_the_nodes(
    docker_nodes, tags, eager_celery, django_capture_on_commit_callbacks
):
    Template.objects.update(is_active=False)  # only this test's template is shipped
    node = add_node(docker_nodes[0], "node-a")
    image = tags("published")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _publish(image)
    assert len(callbacks) == 1  # the sync task, sent after the commit
    assert get_driver(node).image_exists(image)
    assert tasks.sync_node_images(node_name="node-a")["node-a"]["present"]  # the task itself: nothing left to send


def _publish(image: str) -> None:
    """A publication as template_upsert and submission_publish make it: the template's row, then
    template_published."""
    template = _template("sync-published", image)
    template_published.send(sender=Template, template=template)


def test_no_task_is_sent_when_no_node_is_registered(tags, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _publish(tags("nobody"))
    assert callbacks == []
