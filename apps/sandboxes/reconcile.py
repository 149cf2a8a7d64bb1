"""Keeps the database and the engines in agreement (run at start-up and every minute).

The container and volume part runs per engine, each with its own rows: the local engine with the
rows on no node, and each `healthy` or `draining` node (docs/nodes.md) with its rows, through
`get_driver(node)`. A `down` node is skipped, its rows untouched (they are `unreachable`:
services/nodes.py), and so is a node whose listing fails in the pass (the error is in the
report: never are its sandboxes marked vanished). `sandbox_reconcile(node=...)` runs that part
for one node: the health check does it when a down node answers again. Per engine:

- containers and volumes of this instance with no live sandbox row (nor warm-pool row) are
  removed (orphans);
- live rows whose container vanished are marked `error` with a reason;
- rows stuck in a transitional state are finished from what the engine says;
- `unreachable` rows (their node was down and is back) follow their container: `running`,
  `paused` or `stopped`, or `error` ("container lost with node") when it is gone; destroys asked
  for while the node was down (`destroying`, reason "node down") are finished at once;
- running rows whose container exited are marked `stopped`;
- expired sandboxes are destroyed (a paused one with `pauseStopsTimeout` waits), and so are
  ephemeral sandboxes whose creating API key was revoked;
- running sandboxes with `autoPause` and no use (API, commands, terminal input) for that
  long, and no command running, are paused;
- executions left `running` by a server that stopped are marked `error`;
- snapshot images whose snapshot row is gone (older than VIBEBOX_STUCK_AFTER) are removed
  (this instance's: a deleted snapshot's copy on a node that was down when it was deleted too);
- at start-up, commands and terminals a previous server started (marked VIBEBOX_EXEC_ID) are
  killed: nobody can follow them any more (sandboxd's background processes and terminals stay:
  any server serves them).

Once per pass, not per engine (and not in a pass for one node): abandoned executions (the
database's), the egress firewall rewrite (this host's, for the local engine's sandboxes), and the
other apps' receivers.

Each object is one step: if the engine refuses it (or anything else goes wrong with it), the
failure is logged and reported under `failed` and the pass goes on with the others; the next pass
tries again. Only a failure to list the local engine's containers ends the pass: without the
list, "gone" cannot be told from "unknown" (a node's failure skips that node alone).
"""

import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from vibebox import exceptions as errors

from . import events, exceeded, idle, processes, signals, states
from .models import Execution, Node, PooledContainer, Sandbox, Status
from .runtime import ExecRequest, driver_for, get_driver
from .runtime.scripts import REAPER_ID, STRAYS
from .services import network, snapshots
from .services.create import sandbox_destroy
from .services.lifecycle import OOM_REASON, sandbox_pause
from .specs import base_labels

logger = logging.getLogger(__name__)


@dataclass
class Report:
    orphans_removed: list[str] = field(default_factory=list)
    volumes_removed: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    exited: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    executions_abandoned: int = 0
    processes_recorded: int = 0  # background processes whose end their web process did not record
    more: dict[str, int] = field(default_factory=dict)  # counts from other apps' receivers (signals.reconcile_pass)
    strays_ended: list[str] = field(default_factory=list)
    key_revoked: list[str] = field(default_factory=list)
    auto_paused: list[str] = field(default_factory=list)
    snapshot_images_removed: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)  # unreachable, their node back: following their container
    lost: list[str] = field(default_factory=list)  # unreachable, their node back without their container: error
    failed: dict[str, str] = field(default_factory=dict)  # sandbox, container, volume or image -> why
    # Each registered node's own findings (also in the lists above, which span every engine), or
    # why it was skipped ({"skipped": "down"}, {"skipped": "<listing error>"}); the local engine's
    # are only in the lists above.
    nodes: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        fields = {key: value for key, value in self.__dict__.items() if key != "more"}
        return {key: value for key, value in {**fields, **self.more}.items() if value}

    def add(self, other: "Report") -> None:
        """Another engine's findings, into this pass's."""
        for key, value in other.__dict__.items():
            if isinstance(value, list):
                getattr(self, key).extend(value)
            elif isinstance(value, dict):
                getattr(self, key).update(value)
            else:
                setattr(self, key, getattr(self, key) + value)


def _reason(exc: Exception) -> str:
    if isinstance(exc, errors.ApplicationError):
        detail = exc.details.get("reason")
        return f"{exc.message} ({detail})"[:500] if detail else exc.message[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


@contextlib.contextmanager
def _step(report: Report, what: str, action: str):
    """One object's step: a failure is logged and reported, and the pass goes on without it."""
    try:
        yield
    except (errors.SandboxStateConflict, errors.SandboxNotFound):
        pass  # a request moved (or removed) it meanwhile; the next pass looks again
    except errors.RuntimeUnsupported:
        pass  # the runtime has no such thing (the Kubernetes driver's images): nothing to reconcile
    except errors.ApplicationError as exc:
        logger.warning("reconcile could not %s %s: %s", action, what, _reason(exc))
        report.failed[what] = _reason(exc)
    except Exception as exc:  # not the engine's: still, one object must not stop the pass for the others
        logger.exception("reconcile could not %s %s", action, what)
        report.failed[what] = _reason(exc)


def _exited(sandbox: Sandbox, now) -> None:
    """A running row whose container exited: `stopped`, and if the OOM killer ended it (the
    engine's State.OOMKilled, one inspect for such rare rows), `sandbox.limit_exceeded` (memory)
    in the same transaction."""
    inspected = driver_for(sandbox).inspect(sandbox.container_name)
    oom = inspected is not None and inspected.oom_killed
    reason = OOM_REASON if oom else "container exited"
    with transaction.atomic():
        moved = states.move(sandbox, {Status.RUNNING}, Status.STOPPED, status_reason=reason, stopped_at=now)
        if moved and oom:
            exceeded.publish(sandbox, "memory")


def _finish_stuck(sandbox: Sandbox, container, report: Report) -> None:
    if sandbox.status == Status.DESTROYING:
        sandbox_destroy(sandbox=sandbox)
    else:
        target = states.of_container(container)
        reason = "" if container else f"container missing after interrupted {sandbox.status}"
        stopped = {"stopped_at": timezone.now(), "paused_at": None} if target == Status.STOPPED else {}
        states.move(sandbox, {sandbox.status}, target, status_reason=reason, **stopped)
    report.finished.append(sandbox.id)


def _returned(sandbox: Sandbox, container, report: Report) -> None:
    """An `unreachable` sandbox whose node answers again follows its container there; gone, it is
    `error` ("container lost with node")."""
    now = timezone.now()
    target = states.of_container(container)
    with transaction.atomic():  # the move and its events (webhook deliveries, the meter's mark) together
        if target == Status.ERROR:
            if states.move(sandbox, {Status.UNREACHABLE}, Status.ERROR, status_reason=states.LOST_WITH_NODE):
                events.publish(sandbox=sandbox, type="sandbox.error", data={"reason": states.LOST_WITH_NODE})
                report.lost.append(sandbox.id)
            return
        fields = {"paused_at": sandbox.paused_at or now} if target == Status.PAUSED else {"paused_at": None}
        if target == Status.STOPPED:
            fields["stopped_at"] = now
        if states.move(sandbox, {Status.UNREACHABLE}, target, status_reason="", **fields):
            events.publish(sandbox=sandbox, type="sandbox.reachable", data={"status": target})
            report.returned.append(sandbox.id)


def _kill_strays(sandboxes, containers, report: Report) -> None:
    """Commands and terminals of a previous server run on in their sandboxes, unwatched: end them.
    sandboxd's background processes and terminals stay: any server follows them. A container made
    before sandboxd runs nothing of ours (every command there is refused: sandbox_outdated)."""
    for sandbox in sandboxes:
        if not containers[sandbox.id].has_daemon:
            continue
        users, ended = sorted({sandbox.template.user, "0"}), 0
        keep = None
        with _step(report, sandbox.id, "list the terminals of"):
            listed = driver_for(sandbox).terminal_list(sandbox.container_name)
            keep = processes.running_ids(sandbox) + [t.exec_id for t in listed if t.running]
        if keep is None:  # which terminals run is unknown: end nothing there this time
            continue
        for user in users:
            with _step(report, sandbox.id, f"end stray commands (as user {user}) in"):
                driver_for(sandbox).exec(
                    sandbox.container_name,
                    ExecRequest(
                        argv=("sh", "-c", STRAYS, "sh", *keep),
                        exec_id=REAPER_ID,
                        user=user,
                        timeout=30,
                        output_limit=1024,
                    ),
                )
                ended += 1
        if ended == len(users):
            report.strays_ended.append(sandbox.id)


def _remove_lost_snapshot_images(engine: Node | None, now: dt.datetime, report: Report) -> None:
    """Snapshot images on one engine whose row is gone (a deleted snapshot whose copy was on a node
    that was down, a snapshot that failed half-way, a deleted database): services/snapshots.py,
    lost_snapshot_images. Only images older than VIBEBOX_STUCK_AFTER: a snapshot being taken has
    its image first."""
    before = (now - dt.timedelta(seconds=settings.VIBEBOX_STUCK_AFTER)).timestamp()
    images = []
    with _step(report, "snapshot images" + (f" of node {engine.name}" if engine else ""), "list"):
        images = snapshots.lost_snapshot_images(node=engine, older_than=before)
    for image in images:
        with _step(report, image.tag, "remove lost snapshot image"):
            get_driver(engine).image_remove(image.tag)
            report.snapshot_images_removed.append(image.tag)


def _idle(sandbox: Sandbox, now: dt.datetime, busy: set[str]) -> bool:
    """Running, with `autoPause`, no command running, and no use for that long."""
    if sandbox.status != Status.RUNNING or not sandbox.auto_pause_seconds or sandbox.id in busy:
        return False
    return idle.idle_since(sandbox) <= now - dt.timedelta(seconds=sandbox.auto_pause_seconds)


def _listing(driver) -> tuple[dict, dict]:
    """An engine's containers of this instance: by sandbox id, and the ones a restore set aside. A
    sandbox's container has its id as its name; another with its label is one a restore set aside."""
    containers, aside = {}, {}
    for container in driver.list_containers(base_labels()):
        sandbox_id = container.labels.get("vibebox.sandbox-id", "")
        if sandbox_id and container.name != sandbox_id:
            aside[sandbox_id] = container
        else:
            containers[sandbox_id] = container
    return containers, aside


def _engine_pass(
    node: Node | None, live: dict[str, Sandbox], *, listing, pooled: set[str], busy: set[str], startup: bool, now
) -> Report:
    """The containers, volumes and rows of one engine (`node` None: the local one): `live` are the
    live rows on it, `listing` what _listing() found there."""
    driver = get_driver(node)
    report = Report()
    containers, aside = listing
    # Warm-pool containers belong to their pool's rows (on this engine) until a sandbox takes them.
    known = set(live) | pooled

    for sandbox_id, container in containers.items():
        if sandbox_id not in known:
            with _step(report, container.name, "remove orphan container"):
                driver.remove(container.name, volume=f"{sandbox_id}-workspace" if sandbox_id else None)
                report.orphans_removed.append(container.name)
    # Set-aside containers and superseded workspaces, once no restore of theirs is under way.
    restoring = {i for i, s in live.items() if s.status == Status.STARTING}
    for sandbox_id, container in aside.items():
        if sandbox_id not in restoring:
            with _step(report, container.name, "remove set-aside container"):
                driver.remove(container.name)
                report.orphans_removed.append(container.name)
    current = {s.volume_name for s in live.values()}
    volumes = []
    with _step(report, "volumes", "list"):
        volumes = driver.list_volumes(base_labels())
    for volume in volumes:
        owner = volume.partition("-workspace")[0]  # `<id>-workspace`, or `<id>-workspace-<suffix>` after a restore
        if owner not in known or (owner in live and owner not in restoring and volume not in current):
            with _step(report, volume, "remove orphan volume"):
                driver.remove_volume(volume)
                report.volumes_removed.append(volume)

    stuck_before = now - dt.timedelta(seconds=0 if startup else settings.VIBEBOX_STUCK_AFTER)
    for sandbox in live.values():
        container = containers.get(sandbox.id)
        with _step(report, sandbox.id, "reconcile sandbox"):
            # A destroy asked for while the node was down waited for its return: no request is on it.
            left_for_return = sandbox.status == Status.DESTROYING and sandbox.status_reason == states.NODE_DOWN
            if sandbox.status == Status.UNREACHABLE:
                _returned(sandbox, container, report)
            elif sandbox.status in states.TRANSITIONAL:
                if sandbox.updated_at <= stuck_before and sandbox.id in aside:
                    # A restore that never finished: the set-aside container is the sandbox.
                    snapshots.restore_roll_back(sandbox, aside.pop(sandbox.id))
                    report.finished.append(sandbox.id)
                elif sandbox.updated_at <= stuck_before or left_for_return:
                    _finish_stuck(sandbox, container, report)
            elif container is None and sandbox.status != Status.ERROR:
                with transaction.atomic():  # the move and its webhook deliveries together
                    states.move(sandbox, {sandbox.status}, Status.ERROR, status_reason="container vanished")
                    events.publish(sandbox=sandbox, type="sandbox.error", data={"reason": "container vanished"})
                report.vanished.append(sandbox.id)
            elif sandbox.status == Status.RUNNING and container and container.status in ("exited", "dead"):
                _exited(sandbox, now)
                report.exited.append(sandbox.id)
            if sandbox.status == Status.DESTROYED:
                continue  # a stuck destroy just finished: nothing more to do (nor to report)
            frozen_clock = sandbox.status == Status.PAUSED and sandbox.pause_stops_timeout
            if sandbox.expires_at and sandbox.expires_at <= now and not frozen_clock:
                sandbox_destroy(sandbox=sandbox, expired=True)  # sandbox.expired with its sandbox.destroyed
                report.expired.append(sandbox.id)
            elif sandbox.ephemeral and sandbox.api_key_id and sandbox.api_key.revoked_at:
                sandbox_destroy(sandbox=sandbox)
                report.key_revoked.append(sandbox.id)
            elif _idle(sandbox, now, busy):
                sandbox_pause(sandbox=sandbox)
                report.auto_paused.append(sandbox.id)
    running = [s for s in live.values() if s.status == Status.RUNNING and s.id in containers]
    if startup:
        _kill_strays(running, containers, report)
    for sandbox in running:
        if containers[sandbox.id].has_daemon:
            with _step(report, sandbox.id, "record ended background processes of"):
                report.processes_recorded += processes.record_ended(sandbox, now=now)
    return report


def sandbox_reconcile(*, startup: bool = False, now: dt.datetime | None = None, node: Node | None = None) -> Report:
    """One pass: the local engine and every healthy or draining node, then the once-a-pass parts;
    with `node`, that node's engine and rows alone. `startup=True` treats every transitional row as
    stuck (no request is running)."""
    now = now or timezone.now()
    report = Report()
    if node is None:
        engines = [None, *Node.objects.filter(state__in=[Node.State.HEALTHY, Node.State.DRAINING])]
        for down in Node.objects.filter(state=Node.State.DOWN).values_list("name", flat=True):
            report.nodes[down] = {"skipped": Node.State.DOWN}
    else:
        node = Node.objects.filter(pk=node.pk).first() or node  # its state now
        engines = [node] if node.state != Node.State.DOWN else []
        if not engines:
            report.nodes[node.name] = {"skipped": Node.State.DOWN}
    for engine in engines:
        if engine is None:
            listing = _listing(get_driver())  # the local engine: a failure ends the pass
        else:
            try:
                listing = _listing(get_driver(engine))
            except Exception as exc:  # never "vanished" for what could not be listed
                logger.warning("reconcile skipped node %s: %s", engine.name, _reason(exc))
                report.failed[f"node {engine.name}"] = _reason(exc)
                report.nodes[engine.name] = {"skipped": _reason(exc)}
                continue
        # The rows after the listing: a container made meanwhile has its row (never an orphan).
        rows = Sandbox.objects.filter(status__in=states.ALIVE, node=engine)
        live = {s.id: s for s in rows.select_related("template", "api_key", "node")}
        busy = set(Execution.objects.filter(status=Execution.Status.RUNNING).values_list("sandbox_id", flat=True))
        pooled = set(PooledContainer.objects.filter(node=engine).values_list("id", flat=True))  # this engine's
        found = _engine_pass(engine, live, listing=listing, pooled=pooled, busy=busy, startup=startup, now=now)
        _remove_lost_snapshot_images(engine, now, found)  # per engine: a node back from down too
        report.add(found)
        if engine is not None and found.as_dict():
            report.nodes[engine.name] = found.as_dict()
    if node is None:
        _once_a_pass(report, startup=startup, now=now)
    if report.as_dict():
        logger.info("reconciled: %s", report.as_dict())
    return report


def _once_a_pass(report: Report, *, startup: bool, now: dt.datetime) -> None:
    # An execution still `running` past the longest possible timeout lost its server (a restart).
    abandoned = now - dt.timedelta(seconds=settings.VIBEBOX_EXEC_MAX_TIMEOUT + settings.VIBEBOX_STUCK_AFTER)
    report.executions_abandoned = Execution.objects.filter(
        status=Execution.Status.RUNNING, started_at__lt=abandoned
    ).update(status=Execution.Status.ERROR, stderr="The server stopped while this ran.", finished_at=now)
    with _step(report, "egress rules", "rewrite"):
        # Each restricted sandbox's kernel rules at its current address, and nothing else: what a
        # firewall reload, a crash or a container that died behind VibeBox's back left (each engine's:
        # this host's firewall, and each healthy prepared node's through its relay, docs/nodes.md).
        network.network_reconcile()
    for _, counts in signals.reconcile_pass.send(sender=Report, startup=startup):
        report.more.update(counts or {})
