"""Keeping each node's images current (docs/nodes.md, "Shipping images to nodes"): sandboxd (its
image and volume: node_prepare) and the image of every template a sandbox can be created from,
streamed from the local engine with node_ship_image, which sends nothing a node has already.

Placement prefers the nodes that have a template's image, so a create never waits for a transfer:
the images go out ahead, when a template is published (a built-in's build, a marketplace version),
when a node is added or comes back, and on Celery beat's `sync-node-images` pass (the safety net:
a node that missed a publication, a shipment that failed)."""

import logging
from dataclasses import dataclass, field

from apps.marketplace.models import BuildState, Template, TemplateVersion, VersionState
from vibebox import exceptions as errors

from ..models import Node
from ..runtime import get_driver
from .nodes import node_prepare, node_ship_image

logger = logging.getLogger(__name__)


@dataclass
class NodeImages:
    """What one node's sync did: images sent (tag -> bytes), already there, not on the local
    engine (nothing to send), and failed (tag -> message; the next pass tries again)."""

    node: str
    sent: dict[str, int] = field(default_factory=dict)
    present: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "present": self.present, "missing": self.missing, "failed": self.failed}


def wanted_images() -> list[str]:
    """Every image a sandbox can be created from: active templates' current images, and the
    published versions that are not yanked (a create may pin one). Sorted, each once."""
    current = Template.objects.filter(is_active=True, build_state=BuildState.READY).exclude(image="")
    versions = TemplateVersion.objects.filter(
        template__is_active=True, state=VersionState.PUBLISHED, yanked=False
    ).exclude(image="")
    return sorted(set(current.values_list("image", flat=True)) | set(versions.values_list("image", flat=True)))


def node_images_sync(*, node: Node) -> NodeImages:
    """Prepares `node` (sandboxd) and ships it every wanted image the local engine has. One image
    failing does not stop the others; a node that is not healthy is refused (node_prepare)."""
    node_prepare(node=node)
    report, local = NodeImages(node=node.name), get_driver()
    for tag in wanted_images():
        if not local.image_exists(tag):
            report.missing.append(tag)  # still building, or removed here: nothing to send
            continue
        try:
            shipped = node_ship_image(node=node, tag=tag)
        except errors.ApplicationError as exc:
            report.failed[tag] = exc.message
            logger.warning("image %s not shipped to node %s: %s", tag, node.name, exc.message)
            continue
        if shipped.sent:
            report.sent[tag] = shipped.sent
        else:
            report.present.append(tag)
    return report


def nodes_images_sync(*, name: str | None = None) -> dict[str, dict]:
    """node_images_sync for every healthy node (or the one named): name -> what it did, or the
    error that stopped it."""
    nodes = Node.objects.filter(state=Node.State.HEALTHY).order_by("name")
    if name is not None:
        nodes = nodes.filter(name=name)
    done = {}
    for node in nodes:
        try:
            done[node.name] = node_images_sync(node=node).as_dict()
        except errors.ApplicationError as exc:
            logger.warning("node %s not synced: %s", node.name, exc.message)
            done[node.name] = {"error": exc.message}
    return done
