from functools import cache

from django.conf import settings

from .base import (
    DAEMON_BINARY,
    DAEMON_MOUNT,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EngineInfo,
    ExecRequest,
    ExecResult,
    ImageInfo,
    PathStat,
    RuntimeDriver,
)

__all__ = [
    "DAEMON_BINARY",
    "DAEMON_MOUNT",
    "ContainerInfo",
    "ContainerSpec",
    "ContainerStats",
    "EngineInfo",
    "ExecRequest",
    "ExecResult",
    "ImageInfo",
    "PathStat",
    "RuntimeDriver",
    "get_driver",
]


@cache
def get_driver() -> RuntimeDriver:
    if settings.VIBEBOX_RUNTIME_DRIVER == "docker":
        from .docker import DockerDriver

        agent_secret = settings.SECRET_KEY if settings.VIBEBOX_EXEC_AGENT else None
        return DockerDriver(
            base_url=settings.VIBEBOX_DOCKER_HOST or None,
            timeout=settings.VIBEBOX_DOCKER_TIMEOUT,
            agent_secret=agent_secret,
        )
    raise ValueError(f"unknown VIBEBOX_RUNTIME_DRIVER {settings.VIBEBOX_RUNTIME_DRIVER!r}")
