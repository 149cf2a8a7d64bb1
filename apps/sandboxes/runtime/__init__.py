import threading
from typing import Protocol

from django.conf import settings

from vibebox import exceptions as errors

from .base import (
    DAEMON_BINARY,
    DAEMON_MOUNT,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EgressRules,
    EngineInfo,
    ExecRequest,
    ExecResult,
    FileInfo,
    FileStream,
    ImageInfo,
    MeterReading,
    NodeConnection,
    NodeEngine,
    PathStat,
    RelaySpec,
    RuntimeDriver,
)

__all__ = [
    "DAEMON_BINARY",
    "DAEMON_MOUNT",
    "ContainerInfo",
    "ContainerSpec",
    "ContainerStats",
    "EgressRules",
    "EngineInfo",
    "ExecRequest",
    "ExecResult",
    "FileInfo",
    "FileStream",
    "ImageInfo",
    "MeterReading",
    "NodeConnection",
    "NodeEngine",
    "PathStat",
    "RelaySpec",
    "RuntimeDriver",
    "driver_for",
    "forget_node_driver",
    "get_driver",
    "node_driver",
]


class OnNode(Protocol):
    """What driver_for needs: a sandbox or a snapshot (apps.sandboxes.models), or anything else that
    lives on one engine (node_id None: the local engine)."""

    node_id: object
    node: "Node | None"


class Node(Protocol):
    """What get_driver needs of a registered node (apps.sandboxes.models.Node)."""

    pk: object

    def connection(self) -> NodeConnection: ...


_drivers: dict[object, RuntimeDriver] = {}  # None (the local engine) or (node pk, connection) -> driver
_drivers_lock = threading.Lock()


def get_driver(node: Node | None = None) -> RuntimeDriver:
    """The driver of the local engine (no node: the implicit default node, as it always was), or
    of a registered node's engine over mutual TLS. One driver per node, kept; a node whose address
    or certificates changed gets a new one (docs/nodes.md)."""
    connection = None if node is None else node.connection()
    key = None if node is None else (node.pk, connection)
    driver = _drivers.get(key)
    if driver is not None:
        return driver
    driver_class = _driver_class()
    with _drivers_lock:
        driver = _drivers.get(key)
        if driver is None:
            if settings.VIBEBOX_RUNTIME_DRIVER == "kubernetes":
                driver = driver_class(connection)  # kubernetes.driver_from_settings: no nodes there
            elif node is None:
                driver = driver_class(
                    base_url=settings.VIBEBOX_DOCKER_HOST or None,
                    timeout=settings.VIBEBOX_DOCKER_TIMEOUT,
                    secret=settings.SECRET_KEY,
                )
            else:
                for stale in [k for k in _drivers if k is not None and k[0] == node.pk]:
                    _drivers.pop(stale).close()
                timeout = settings.VIBEBOX_DOCKER_TIMEOUT
                driver = driver_class(timeout=timeout, secret=settings.SECRET_KEY, node=connection)
            _drivers[key] = driver
    return driver


def driver_for(obj: OnNode) -> RuntimeDriver:
    """The driver of the engine a sandbox (or snapshot) lives on: every engine call made for one
    goes through here (docs/nodes.md, tests/test_layers.py). A sandbox on the local engine costs no
    query; one on a node reads the node row once unless it was loaded with select_related("node").
    A sandbox that is `unreachable` (its node is down) gets none: 409 sandbox_unreachable, before
    any wait on an engine that does not answer (services check first; this is the net under them)."""
    if getattr(obj, "status", None) == "unreachable":  # models.Status.UNREACHABLE (a Snapshot has no such status)
        raise errors.SandboxUnreachable(details={"status": "unreachable"})
    if obj.node_id is None:
        return get_driver()
    return get_driver(obj.node)


def node_driver(connection: NodeConnection, *, timeout: int) -> RuntimeDriver:
    """A driver for a node's engine that is not kept (a check before the node is registered, or
    a health check with a short timeout): the caller closes it. Nodes are Docker engines: the
    Kubernetes runtime refuses them (501 runtime_unsupported)."""
    if settings.VIBEBOX_RUNTIME_DRIVER == "kubernetes":
        return _driver_class()(connection)
    return _driver_class()(timeout=timeout, secret=settings.SECRET_KEY, node=connection)


def _driver_class():
    if settings.VIBEBOX_RUNTIME_DRIVER == "kubernetes":  # docs/kubernetes.md
        from .kubernetes import driver_from_settings

        return driver_from_settings
    if settings.VIBEBOX_RUNTIME_DRIVER != "docker":
        raise ValueError(f"unknown VIBEBOX_RUNTIME_DRIVER {settings.VIBEBOX_RUNTIME_DRIVER!r}")
    from .docker import DockerDriver

    return DockerDriver


def forget_node_driver(pk: object) -> None:
    """Drops the kept driver of a node (removed)."""
    with _drivers_lock:
        for stale in [k for k in _drivers if k is not None and k[0] == pk]:
            _drivers.pop(stale).close()


def _drivers_clear() -> None:
    with _drivers_lock:
        _drivers.clear()


get_driver.cache_clear = _drivers_clear  # as functools.cache had it (tests reset the driver this way)
