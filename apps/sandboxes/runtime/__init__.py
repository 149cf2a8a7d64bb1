from functools import cache

from django.conf import settings

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
    PathStat,
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
    "PathStat",
    "RuntimeDriver",
    "get_driver",
]


@cache
def get_driver() -> RuntimeDriver:
    if settings.VIBEBOX_RUNTIME_DRIVER == "docker":
        from .docker import DockerDriver

        return DockerDriver(
            base_url=settings.VIBEBOX_DOCKER_HOST or None,
            timeout=settings.VIBEBOX_DOCKER_TIMEOUT,
            secret=settings.SECRET_KEY,
        )
    raise ValueError(f"unknown VIBEBOX_RUNTIME_DRIVER {settings.VIBEBOX_RUNTIME_DRIVER!r}")
