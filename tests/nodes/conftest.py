"""The nodes tests' session fixture: two Docker engines in containers (tests/nodes/engines.py),
named with VIBEBOX_TEST_INSTANCE, removed at the end. Defined here, never imported by a test module
(tests/test_fixture_imports.py)."""

import contextlib
import ipaddress
import shutil
import sys
import time

import docker
import pytest
from django.conf import settings as django_settings

from apps.marketplace.catalog import base_image
from tests.nodes import engines

INSTANCE = django_settings.VIBEBOX_INSTANCE
LABELS = {"vibebox.test-fixture": "nodes", "vibebox.test-instance": INSTANCE}
NETWORK = f"vibebox-{INSTANCE}-nodes"


def _remove(client) -> None:
    for container in client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in LABELS.items()]}):
        container.remove(force=True, v=True)  # v: the engine's /var/lib/docker volume
    for network in client.networks.list(names=[NETWORK]):
        if network.name == NETWORK:
            network.remove()


@pytest.fixture(scope="session")
def docker_nodes(docker_client):
    """Two nested engines, each reached over TCP with mutual TLS at a fixed address."""
    _remove(docker_client)
    began = time.monotonic()
    engines.build_engine_image(docker_client, base_image())
    built_in = time.monotonic() - began
    network = engines.fixed_address_network(docker_client, NETWORK, LABELS)
    subnet = ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])
    started = []
    try:
        for number in (1, 2):
            started.append(
                engines.start_engine(
                    docker_client,
                    name=f"vibebox-{INSTANCE}-node-{number}",
                    network=network,
                    address=str(subnet[10 + number]),
                    labels=LABELS,
                )
            )
        # Not an assertion (no timed assertions): the numbers for docs/nodes.md and CI's budget.
        sys.__stderr__.write(
            f"\nnested engines: image ready in {built_in:.1f} s, started in "
            + ", ".join(f"{engine.started_in:.1f} s" for engine in started)
            + "\n"
        )
        yield started
    finally:
        with contextlib.suppress(docker.errors.APIError):
            _remove(docker_client)
        for engine in started:
            shutil.rmtree(engine.client_dir, ignore_errors=True)
