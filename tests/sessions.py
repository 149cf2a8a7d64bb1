"""Test sessions that share one Docker engine (and Redis) without disturbing each other.

Each session has its own instance label: VIBEBOX_TEST_INSTANCE when given, else a fresh random
one (tests/settings.py). Its containers, volumes, networks (`vibebox-<label>`, the git fixtures'
`vibebox-<label>-git`), snapshot images, SQLite file and cache/channel prefixes all derive from it.

A session claims its label with a marker in the engine: a volume `vibebox-test-session-<label>`
whose labels name the owning process (pid space, pid, start time). A session's start-up sweep
removes what carries its own label, and everything of a marked label whose owner is provably dead:
same pid space, and no process with that pid and start time. Labels without a marker (a server's,
an older run's), and owners in another pid space (a session in another container sharing the
engine), are never touched.

Plain stdlib + docker-py at import: tests/settings.py imports this before Django is set up.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
import string
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

MARKER_LABEL = "vibebox.test-session"
OWNER_LABEL = "vibebox.test-session-owner"
# Set by the pytest that made the label, for the servers and commands it starts (they import
# tests.settings too and must share its label); a new pytest makes its own.
SESSION_ENV = "VIBEBOX_TEST_SESSION"
_ALPHABET = string.ascii_lowercase + string.digits
# The sandbox bridge is `vbx-<label>`, and Linux interface names stop at 15 characters.
MAX_LABEL = 11


class LabelInUse(RuntimeError):
    """Another session, alive (or not provably dead), holds the label."""


def new_label(prefix: str = "t", length: int = 8) -> str:
    """A fresh short label: `prefix` and random letters/digits, `length` characters in all."""
    assert len(prefix) < length <= MAX_LABEL
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length - len(prefix)))


def marker_name(label: str) -> str:
    return f"vibebox-test-session-{label}"


def pid_space() -> str:
    """Where a pid names one process: this host name, this kernel boot, this pid namespace."""
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    namespace = os.readlink("/proc/self/ns/pid")
    return hashlib.sha256(f"{socket.gethostname()} {boot} {namespace}".encode()).hexdigest()[:16]


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks after boot (a reused pid has another); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name in (...) may hold spaces


def owner(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{pid_space()}:{pid}:{start_time(pid)}"


def owner_state(value: str) -> str:
    """ "alive", "dead" (provably: our pid space, no such process) or "unknown"."""
    space, _, rest = value.partition(":")
    pid, _, started = rest.partition(":")
    if space != pid_space() or not pid.isdigit():
        return "unknown"
    return "alive" if start_time(int(pid)) == started else "dead"


def claim(client, label: str) -> None:
    """Marks `label` as this process's. Raises LabelInUse if another session may still hold it;
    a dead owner's marker is taken over (the caller's own sweep removes what it left)."""
    me = owner()
    try:
        existing = client.volumes.get(marker_name(label))
    except Exception as exc:  # docker.errors.NotFound, without importing docker here
        if type(exc).__name__ != "NotFound":
            raise
    else:
        held_by = (existing.attrs.get("Labels") or {}).get(OWNER_LABEL, "")
        if held_by == me:
            return
        if owner_state(held_by) != "dead":
            raise LabelInUse(
                f"test instance {label!r} is held by another test session ({held_by}); pick another "
                f"VIBEBOX_TEST_INSTANCE, or leave it unset for a label of this session's own. If that session "
                f"is really gone: docker volume rm {marker_name(label)}"
            )
        existing.remove(force=True)
    client.volumes.create(name=marker_name(label), labels={MARKER_LABEL: label, OWNER_LABEL: me})


def release(client, label: str, *, held_by: str | None = None) -> None:
    """Removes the marker of `label` if it is this process's (or `held_by`'s): never a claim
    another session has made since."""
    with contextlib.suppress(Exception):
        marker = client.volumes.get(marker_name(label))
        if (marker.attrs.get("Labels") or {}).get(OWNER_LABEL) == (held_by or owner()):
            marker.remove(force=True)


@contextlib.contextmanager
def claimed(client, label: str) -> Iterator[str]:
    """`label`, claimed for as long as the block runs (for throwaway servers a test starts)."""
    claim(client, label)
    try:
        yield label
    finally:
        release(client, label)


def sqlite_files(data_dir: Path, label: str) -> list[Path]:
    """The session's test database (tests/settings.py) and SQLite's side files."""
    base = data_dir / f"{label}.sqlite3"
    return [base, *(base.with_name(base.name + suffix) for suffix in ("-journal", "-wal", "-shm"))]


def remove_instance(
    client, label: str, *, data_dir: Path | None = None, remove_network=None, fixtures: bool = True
) -> list[str]:
    """Removes everything of instance `label` from the engine (and its SQLite file under
    `data_dir`); answers what it removed. `remove_network(name)` is the driver's (it drops the
    bridge's firewall rules too); without it, docker-py's. `fixtures=False` leaves the session's
    own fixtures (its git servers and their network), for a clean-up in the middle of a session."""
    removed = []
    instance = {"label": [f"vibebox.instance={label}"]}
    fixture_filters = {"label": [f"vibebox.test-instance={label}"]}
    for filters in (instance, fixture_filters) if fixtures else (instance,):
        # ignore_removed: other sessions' workers sweep the same dead session at the same moment
        for container in client.containers.list(all=True, filters=filters, ignore_removed=True):
            with _logged(f"container {container.name}"):
                container.remove(force=True, v=True)
                removed.append(f"container {container.name}")
    for volume in client.volumes.list(filters=instance):
        with _logged(f"volume {volume.name}"):
            volume.remove(force=True)
            removed.append(f"volume {volume.name}")
    for name in (f"vibebox-{label}", *([f"vibebox-{label}-git"] if fixtures else [])):
        with _logged(f"network {name}"):
            found = [network for network in client.networks.list(names=[name]) if network.name == name]
            if remove_network is not None and name == f"vibebox-{label}":
                remove_network(name)  # the sandbox bridge has firewall rules; the git network has none
            else:
                for network in found:
                    network.remove()
            removed += [f"network {name}"] if found else []
    for image in image_ids(client, instance):
        with _logged(f"image {image}"):
            client.images.remove(image, force=True)
            removed.append(f"image {image[7:19]}")
    for path in sqlite_files(data_dir, label) if data_dir else []:
        if path.exists():
            path.unlink()
            removed.append(f"file {path}")
    return removed


def image_ids(client, filters: dict) -> list[str]:
    """The ids of the images the filters match, from one listing: docker-py's images.list inspects
    each one after listing, and raises when another process removed one in between."""
    return [row["Id"] for row in client.api.images(filters=filters)]


def dead_sessions(client) -> dict[str, str]:
    """Label -> owner of the markers whose owner is provably dead."""
    dead = {}
    for volume in client.volumes.list(filters={"label": [MARKER_LABEL]}):
        labels = volume.attrs.get("Labels") or {}
        if labels.get(MARKER_LABEL) and owner_state(labels.get(OWNER_LABEL, "")) == "dead":
            dead[labels[MARKER_LABEL]] = labels[OWNER_LABEL]
    return dead


def sweep_dead(client, *, data_dir: Path | None = None, remove_network=None) -> dict[str, list[str]]:
    """Removes what the provably dead sessions left, then their markers; answers label -> removed."""
    swept = {}
    for label, held_by in dead_sessions(client).items():
        if dead_sessions(client).get(label) != held_by:  # claimed again meanwhile: its new owner's now
            continue
        swept[label] = remove_instance(client, label, data_dir=data_dir, remove_network=remove_network)
        release(client, label, held_by=held_by)
        logger.warning("removed what dead test session %s left: %s", label, swept[label] or "nothing")
    return swept


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """A sweep goes on past one object the engine refuses to remove (it says which)."""
    try:
        yield
    except Exception as exc:
        if type(exc).__name__ != "NotFound":
            logger.warning("test session sweep: could not remove %s: %s", what, exc)
