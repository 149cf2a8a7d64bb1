"""What VibeBox does with the engine as a whole, beside any one sandbox: readiness, the sandbox
network's gateway address, dropping an instance. Interfaces and other apps call these, never
the driver (the engine layer is reached through sandboxes' services only)."""

from dataclasses import dataclass

from .runtime import get_driver
from .specs import base_labels, network_name


def engine_ping() -> None:
    """Raises RuntimeUnavailable / RuntimeFailure unless the engine answers."""
    get_driver().ping()


def sandbox_network_gateway() -> str:
    """The host's address on the sandbox network (created if missing), where sandboxes reach
    the model gateway."""
    driver = get_driver()
    driver.ensure_network(network_name(), base_labels())
    return driver.network_gateway(network_name())


@dataclass(frozen=True)
class Dropped:
    containers: int
    volumes: int
    network: str


def instance_drop() -> Dropped:
    """Removes everything this instance (VIBEBOX_INSTANCE) has in the engine: containers,
    volumes, its network and firewall rules. The database is left alone."""
    driver = get_driver()
    containers = driver.list_containers(base_labels())
    for container in containers:
        driver.remove(container.name)
    volumes = driver.list_volumes(base_labels())
    for volume in volumes:
        driver.remove_volume(volume)
    driver.remove_network(network_name())
    return Dropped(containers=len(containers), volumes=len(volumes), network=network_name())
