"""Engine-side names and the container spec every sandbox (and warm-pool container) gets."""

from django.conf import settings

from apps.marketplace.models import Template

from . import sandboxd
from .models import Sandbox
from .runtime import ContainerSpec, get_driver


def network_name() -> str:
    return f"vibebox-{settings.VIBEBOX_INSTANCE}"


def base_labels() -> dict[str, str]:
    return {"vibebox.managed": "1", "vibebox.instance": settings.VIBEBOX_INSTANCE}


def disk_limits_on() -> bool:
    return get_driver().engine_info().supports_disk_limit


def default_disk() -> int | None:
    """VIBEBOX_DEFAULT_DISK where the engine enforces disk limits, else None (no limit; the engine
    logs a warning once)."""
    return settings.VIBEBOX_DEFAULT_DISK if settings.VIBEBOX_DEFAULT_DISK and disk_limits_on() else None


def container_spec(
    *,
    name: str,
    template: Template,
    image: str,
    labels: dict[str, str],
    cpu: float,
    memory: int,
    disk: int | None,
    volume: str | None = None,
) -> ContainerSpec:
    """The hardened container of a sandbox (or of a warm pool, which has no owner yet: `disk`
    None gets the default). With a disk limit, /workspace is part of the container's writable
    layer, which the limit covers (the engine can size that layer, not a volume); without one, a
    named volume (`volume`, default `<name>-workspace`)."""
    disk = disk or default_disk()
    return ContainerSpec(
        name=name,
        image=image,
        labels=labels,
        env=dict(template.default_env),  # sandbox variables go to each exec, not the container
        volume=None if disk else volume or f"{name}-workspace",
        network=network_name(),
        extra_networks=tuple(settings.VIBEBOX_EXTRA_NETWORKS),
        user=template.user,
        workdir=template.workdir or "/workspace",
        cpu=cpu,
        memory=memory,
        disk=disk,
        pids_limit=settings.VIBEBOX_PIDS_LIMIT,
        tmpfs_size=settings.VIBEBOX_TMPFS_SIZE,
        cap_add=tuple(template.cap_add),
        runtime=template.runtime,
        log_max_size=settings.VIBEBOX_LOG_MAX_SIZE,
        log_max_files=settings.VIBEBOX_LOG_MAX_FILES,
        daemon_volume=sandboxd.volume_for_sandboxes(),
    )


def sandbox_labels(sandbox: Sandbox) -> dict[str, str]:
    return {
        **base_labels(),
        "vibebox.sandbox-id": sandbox.id,
        "vibebox.owner": str(sandbox.owner_id),
        "vibebox.template": sandbox.template.name,
        "vibebox.pool": "",
    }


def sandbox_spec(sandbox: Sandbox) -> ContainerSpec:
    """The container of a sandbox, as its row describes it."""
    return container_spec(
        name=sandbox.container_name,
        template=sandbox.template,
        image=sandbox.image,
        labels=sandbox_labels(sandbox),
        cpu=sandbox.cpu,
        memory=sandbox.memory,
        disk=sandbox.disk,
        volume=sandbox.volume_name,
    )
