"""Disk limits (issue 17, item 7): a sandbox that fills its disk gets its own ENOSPC (or EDQUOT),
never the host's, and keeps working once it frees space.

Needs an engine that enforces `--storage-opt size` (scripts/host-setup.sh puts the data root of an
engine it starts on such a filesystem: docs/operations.md, "Disk limits"); elsewhere these tests
are skipped, and tests/sandboxes/test_create_errors.py checks the refusal instead.
"""

import pytest
from django.conf import settings as django_settings

from apps.sandboxes.runtime import docker as docker_module
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.runtime.docker import DockerDriver
from tests.waiting import wait_for

MIB = 1024**2
FULL = ("No space left on device", "Disk quota exceeded")


@pytest.fixture(autouse=True)
def disk_limits_on():
    if not get_driver().engine_info().supports_disk_limit:
        pytest.skip("this engine cannot limit disk size (see docs/operations.md, Disk limits)")


def sh(client, sandbox_id, command):
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, "timeout": 120}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_full_disk_is_the_sandboxs_own(api_client, create_sandbox):
    sandbox = create_sandbox(template="python-3", resources={"disk": "64m"})
    assert sandbox["resources"]["disk"] == "64m"
    for target in ("/workspace/big", "/repo/big"):  # the workspace and the rest of its filesystem
        filled = sh(api_client, sandbox["id"], f"head -c {100 * MIB} /dev/zero > {target}")
        assert filled["exitCode"] != 0 and any(text in filled["stderr"] for text in FULL), filled
        size = int(sh(api_client, sandbox["id"], f"stat -c %s {target}")["stdout"])
        assert size < 70 * MIB
        # it still works once it frees space
        again = sh(api_client, sandbox["id"], f"rm {target} && head -c {10 * MIB} /dev/zero > {target} && echo ok")
        assert again["stdout"] == "ok\n", again
        sh(api_client, sandbox["id"], f"rm {target}")


def test_the_default_disk_applies(api_client, create_sandbox, settings, docker_client):
    settings.VIBEBOX_DEFAULT_DISK = 128 * MIB
    sandbox = create_sandbox(template="python-3")
    assert sandbox["resources"]["disk"] == "128m"
    assert docker_client.containers.get(sandbox["id"]).attrs["HostConfig"]["StorageOpt"]["size"]
    filled = sh(api_client, sandbox["id"], f"head -c {200 * MIB} /dev/zero > /workspace/big")
    assert filled["exitCode"] != 0 and any(text in filled["stderr"] for text in FULL), filled


def test_disk_counts_in_the_owners_quota(create_sandbox, settings):
    settings.VIBEBOX_MAX_DISK_PER_OWNER = 100 * MIB
    create_sandbox(template="python-3", resources={"disk": "64m"}, autoStart=False)
    refused = create_sandbox(expect=402, template="python-3", resources={"disk": "64m"})
    assert refused["error"]["details"] == {
        "quota": "disk",
        "resource": "disk",
        "limit": 100 * MIB,
        "used": 64 * MIB,
        "requested": 64 * MIB,
    }


def test_the_shipped_default_applies_without_any_setting(create_sandbox, docker_client):
    """No disk asked for and VIBEBOX_DEFAULT_DISK as configured (10g unless the environment says):
    the sandbox still gets a limit, in its answer and on its container."""
    default = django_settings.VIBEBOX_DEFAULT_DISK
    assert default
    sandbox = create_sandbox(template="python-3")
    assert sandbox["resources"]["disk"] in (f"{default // 1024**3}g", f"{default // MIB}m")
    assert int(docker_client.containers.get(sandbox["id"]).attrs["HostConfig"]["StorageOpt"]["size"]) >= default


def test_a_probe_container_left_by_a_killed_process_is_removed_by_the_next_probe(docker_client, monkeypatch):
    """The disk-limit probe creates a container and removes it on the next line; a process killed
    in between leaves it in `Created` with no label that reconcile or a test sweep follows."""
    image = docker_client.images.list(filters={"dangling": False})[0].id
    left = docker_client.api.create_container(image, command=["true"], labels=docker_module.PROBE_LABELS)["Id"]
    monkeypatch.setattr(docker_module, "PROBE_LEFT_AFTER", -60.0)  # count it as old
    DockerDriver().engine_info()  # a new process's first look probes
    assert not docker_client.containers.list(all=True, filters={"id": left})


def test_a_stale_look_at_the_engine_is_answered_at_once_and_renewed_in_the_background():
    """After the first look, a create never waits for the probe again: past the TTL the cached
    answer is given and a background thread looks again."""
    driver = DockerDriver()
    first = driver.engine_info()  # a process's first look: this one waits
    looked_at, cached = driver._engine_info
    driver._engine_info = (looked_at - docker_module._ENGINE_INFO_TTL - 1, cached)  # stale
    assert driver.engine_info() == first  # from the cache, at once
    wait_for(lambda: driver._engine_info[0] > looked_at, what="the look at the engine in the background")
    assert driver.engine_info() == first
