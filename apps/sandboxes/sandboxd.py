"""sandboxd's build: from its Go source (sandboxd/) to the read-only volume sandboxes mount.

The Dockerfile's stages: `toolchain` (Debian's Go on the base image), `build` (gofmt, go vet and
a static binary), `sandboxd` (the binary alone, at /opt/vibebox/sandboxd), `relay` (the binary
on the base image with Debian's iptables: a remote node's relay and firewall agent, docs/nodes.md)
and `check` (go test).
Names carry a digest of the source, the base image and the extra CA bundle, so a changed source
builds a new volume and an unchanged one is never built twice.
"""

import collections
import logging
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

from django.conf import settings

from apps.marketplace.catalog import base_image, extra_ca_bytes, tree_digest
from vibebox import exceptions as errors

from .images import base_image_build, log_to_stderr
from .runtime import DAEMON_MOUNT, get_driver

logger = logging.getLogger(__name__)


def digest(base: str) -> str:
    return tree_digest(settings.VIBEBOX_SANDBOXD_DIR, base.encode(), extra_ca_bytes())


def image(base: str) -> str:
    return f"{settings.VIBEBOX_IMAGE_PREFIX}/sandboxd:{digest(base)}"


def relay_image(base: str) -> str:
    """The relay's image (`sandboxd relay --firewall` needs iptables): same digest as sandboxd's."""
    return f"{settings.VIBEBOX_IMAGE_PREFIX}/sandboxd-relay:{digest(base)}"


_relay_current: dict[tuple, str] = {}


def relay_current() -> str:
    """The relay image's tag every node should run now: what `manage.py sandboxd --relay` builds
    (relay_build), from the source alone (no engine call, nothing built). Kept per process, keyed
    by the settings it is made from: a process's source does not change under it. A node whose
    recorded relay image (Node.relay_image) is another one is stale: not placeable until prepared
    again (services/placement.py, placeable; services/nodes.py, node_check sends the sync)."""
    key = (
        settings.VIBEBOX_IMAGE_PREFIX,
        str(settings.VIBEBOX_SANDBOXD_DIR),
        str(settings.VIBEBOX_IMAGES_DIR),
        settings.VIBEBOX_DEBIAN_MIRROR,
        settings.VIBEBOX_EXTRA_CA_CERTS,  # the digest holds the extra CA bundle: another setting, another tag
    )
    tag = _relay_current.get(key)
    if tag is None:
        tag = _relay_current[key] = relay_image(base_image())
    return tag


def volume(base: str) -> str:
    return f"vibebox-sandboxd-{digest(base)}"


_BUILDER_NOISE = ("Step ", " ---> ", "Removing intermediate container", "Successfully ", "DEPRECATED")


def _build(*, tag: str, target: str, base: str, log, buildargs: dict[str, str] | None = None) -> None:
    """Builds `target`; `log` sees the steps and what the build's commands print (gofmt, go vet
    and go test), the whole of it when the build fails."""
    recent = collections.deque(maxlen=200)

    def progress(line: str) -> None:
        recent.append(line)
        if line.startswith("Step ") or not line.startswith(_BUILDER_NOISE):
            log(f"  {line}")

    with tempfile.TemporaryDirectory(prefix="vibebox-sandboxd-") as context:
        shutil.copytree(settings.VIBEBOX_SANDBOXD_DIR, context, dirs_exist_ok=True)
        Path(context, "extra-ca.crt").write_bytes(extra_ca_bytes())
        try:
            get_driver().image_build(
                context=context,
                tag=tag,
                target=target,
                buildargs={"BASE_IMAGE": base, **(buildargs or {})},
                labels={"vibebox.managed-image": "1", "vibebox.sandboxd": digest(base)},
                log=progress,
            )
        except errors.ApplicationError:
            log("sandboxd build failed; its last lines:")
            for line in recent:
                log(f"  {line}")
            raise


def build(*, log=log_to_stderr) -> str:
    """Builds sandboxd (gofmt and go vet included) unless built, and fills its volume; answers
    the volume's name."""
    base = base_image_build(log=log)
    driver = get_driver()
    tag = image(base)
    if not driver.image_exists(tag):
        log(f"building sandboxd -> {tag}")
        _build(tag=tag, target="sandboxd", base=base, log=log)
    name = volume(base)
    driver.volume_from_image(name, image=tag, path=DAEMON_MOUNT, labels={"vibebox.sandboxd": digest(base)})
    return name


def relay_build(*, log=log_to_stderr) -> str:
    """Builds the relay's image (the `relay` stage) unless built; answers its tag. Shipped to a
    node like any image (services/nodes.py, node_ship_image) and run there with `--network host
    --cap-add NET_ADMIN --cap-add NET_RAW`, as `/opt/vibebox/sandboxd relay ... --firewall`."""
    base = base_image_build(log=log)
    tag = relay_image(base)
    if not get_driver().image_exists(tag):
        log(f"building sandboxd's relay -> {tag}")
        _build(tag=tag, target="relay", base=base, log=log)
    return tag


_volume: str | None = None
_volume_lock = threading.Lock()


def volume_for_sandboxes() -> str:
    """sandboxd's volume for this process's sandboxes, built on first use when missing (`make run`
    and `make test` build it first; a process finds it in place). Once per process: the first
    creates of a fresh server arrive together, and each would otherwise fill the volume."""
    global _volume
    if settings.VIBEBOX_RUNTIME_DRIVER == "kubernetes":
        return ""  # the driver copies sandboxd from VIBEBOX_KUBERNETES_SANDBOXD_IMAGE (docs/kubernetes.md)
    if _volume is None:
        with _volume_lock:
            if _volume is None:
                _volume = build(log=logger.info)
    return _volume


def check(*, log=log_to_stderr) -> None:
    """Runs sandboxd's `go test` suite (every time: a fresh RUN_ID defeats the build cache);
    raises RuntimeFailure when it fails, after `log` saw its output."""
    base = base_image_build(log=log)
    tag = f"{settings.VIBEBOX_IMAGE_PREFIX}/sandboxd-check:{digest(base)}"
    try:
        _build(tag=tag, target="check", base=base, log=log, buildargs={"RUN_ID": secrets.token_hex(8)})
    finally:
        get_driver().image_remove(tag)
