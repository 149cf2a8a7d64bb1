"""Images streamed from one engine to another (docs/nodes.md, "Shipping images to a node"): the
source's `docker save` into the target's `docker load`, never held whole, checked by image id.
nodes.node_ship_image (the local engine to a node) and a snapshot's image taken to another engine
(snapshot_image_ship: a create or restore that runs away from the snapshot's engine) use it."""

import logging
import time
from dataclasses import dataclass

from vibebox import exceptions as errors

from ..models import Node, Snapshot
from ..runtime import get_driver

logger = logging.getLogger(__name__)

LOCAL = "local"  # the local engine's name (services.nodes.LOCAL_NODE)


@dataclass(frozen=True)
class ShippedImage:
    """One image on a node after node_ship_image: `sent` bytes streamed (0: the node had it
    already, nothing was sent) in `seconds`."""

    tag: str
    image_id: str
    sent: int
    seconds: float


def image_stream(tag: str, *, source: Node | None, target: Node | None) -> ShippedImage:
    """Image `tag` from one engine (`source`; None: the local engine) onto another (`target`),
    streamed from the source's `docker save` into the target's `docker load`, then checked (the
    same image id under the tag there). Nothing is sent when the target has it already. The
    engines' states are the caller's to check."""
    give, take = get_driver(source), get_driver(target)
    where, there_name = (source.name if source else LOCAL), (target.name if target else LOCAL)
    image = give.image_details(tag)
    if image is None:
        raise errors.NotFound(
            f"No image {tag} on the " + (f"node {where!r}" if source else "local engine") + " to ship.",
            details={"image": tag},
        )
    there = take.image_details(tag)
    if there is not None and there.id == image.id:
        logger.info("image %s is on %s already (%s): nothing sent", tag, there_name, image.id)
        return ShippedImage(tag=tag, image_id=image.id, sent=0, seconds=0.0)
    began, sent = time.monotonic(), 0

    def counted():
        nonlocal sent
        for chunk in give.image_save(tag):
            sent += len(chunk)
            yield chunk

    take.image_load(counted())
    seconds = time.monotonic() - began
    there = take.image_details(tag)
    if there is None or there.id != image.id:
        raise errors.RuntimeFailure(
            f"Image {tag} was sent to node {there_name!r}, but the node has "
            + (f"another image under that tag ({there.id})." if there else "no such tag after the load."),
            details={"image": tag, "node": there_name, "expected": image.id, "found": there.id if there else None},
        )
    logger.info(
        "image %s shipped from %s to %s: %d bytes in %.1f s (%s)", tag, where, there_name, sent, seconds, image.id
    )
    return ShippedImage(tag=tag, image_id=image.id, sent=sent, seconds=seconds)


def snapshot_image_ship(*, snapshot: Snapshot, node: Node | None) -> ShippedImage:
    """The snapshot's image onto `node` (None: the local engine), streamed from the engine the
    snapshot was taken on (docs/nodes.md, "Placement"): a create or restore from it that runs
    elsewhere because that engine is full or draining. Nothing is sent when the image is there
    already. The copies are removed with the snapshot (snapshots.snapshot_delete)."""
    if snapshot.node_id == (node.pk if node is not None else None):
        return ShippedImage(tag=snapshot.image, image_id="", sent=0, seconds=0.0)
    # A tenant's call: image_stream's errors name engines, which are the operator's to read (log).
    try:
        return image_stream(snapshot.image, source=snapshot.node, target=node)
    except errors.NotFound as exc:
        logger.warning("snapshot %s cannot be shipped: %s", snapshot.pk, exc)
        raise errors.SnapshotUnusable(details={"snapshot": snapshot.id, "reason": "image_missing"}) from exc
    except errors.RuntimeFailure as exc:
        logger.warning("snapshot %s could not be shipped: %s %s", snapshot.pk, exc, getattr(exc, "details", None))
        raise errors.RuntimeFailure(
            "The snapshot's image could not be copied to where the sandbox runs.",
            details={"reason": "snapshot_ship_failed"},
        ) from exc
