from functools import cache

from django.conf import settings

from .base import ContainerInfo, ContainerSpec, EngineInfo, ExecRequest, ExecResult, PathStat, RuntimeDriver

__all__ = [
    "ContainerInfo",
    "ContainerSpec",
    "EngineInfo",
    "ExecRequest",
    "ExecResult",
    "PathStat",
    "RuntimeDriver",
    "get_driver",
]


@cache
def get_driver() -> RuntimeDriver:
    if settings.VIBEBOX_RUNTIME_DRIVER == "docker":
        from .docker import DockerDriver

        return DockerDriver(base_url=settings.VIBEBOX_DOCKER_HOST or None)
    raise ValueError(f"unknown VIBEBOX_RUNTIME_DRIVER {settings.VIBEBOX_RUNTIME_DRIVER!r}")
