"""Per-owner quotas (issue 17, item 7): CPU and memory across live sandboxes, snapshot count and
bytes. Past a limit: 402 quota_exceeded saying what (`quota`, and `resource`: its old name), the
limit, what is used and what was asked. The organization's plan quotas: tests/billing/test_quotas.py."""

import pytest
from django.conf import settings as django_settings

from apps.sandboxes.models import Sandbox, Snapshot
from apps.sandboxes.services.snapshots import archive_path, snapshot_delete
from tests.races import concurrent_creates

GIB = 1024**3
MIB = 1024**2


@pytest.fixture(autouse=True)
def remove_snapshots(db):
    yield
    for snapshot in Snapshot.objects.all():
        snapshot_delete(snapshot=snapshot)


def quota_error(response, resource, limit, used, requested):
    """`response`: an API response, or the body create_sandbox(expect=402) answered."""
    if not isinstance(response, dict):
        assert response.status_code == 402, response.content
        response = response.json()
    error = response["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {
        "quota": resource,
        "resource": resource,
        "limit": limit,
        "used": used,
        "requested": requested,
    }


def test_cpu_and_memory_totals_across_live_sandboxes(api_client, create_sandbox, settings):
    settings.VIBEBOX_MAX_CPU_PER_OWNER = 2
    settings.VIBEBOX_MAX_MEMORY_PER_OWNER = 512 * MIB
    first = create_sandbox(template="python-3", resources={"cpu": 1.5, "memory": "256m"}, autoStart=False)
    quota_error(create_sandbox(expect=402, template="python-3", resources={"cpu": 1}), "cpu", 2, 1.5, 1)
    quota_error(
        create_sandbox(expect=402, template="python-3", resources={"cpu": 0.5, "memory": "512m"}),
        "memory", 512 * MIB, 256 * MIB, 512 * MIB,
    )  # fmt: skip
    assert Sandbox.objects.count() == 1  # nothing was made for the refused creates
    create_sandbox(template="python-3", resources={"cpu": 0.5, "memory": "256m"}, autoStart=False)  # fits exactly
    # a destroyed sandbox frees its share
    assert api_client.delete(f"/api/v1/sandboxes/{first['id']}").status_code in (200, 204)
    create_sandbox(template="python-3", resources={"cpu": 1.5, "memory": "256m"}, autoStart=False)


def test_the_sandbox_count_says_what_and_how_much(create_sandbox, settings):
    settings.VIBEBOX_MAX_SANDBOXES_PER_OWNER = 1
    create_sandbox(template="python-3", autoStart=False)
    quota_error(create_sandbox(expect=402, template="python-3"), "sandboxes", 1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_cannot_both_slip_past(owner, templates, settings, cleanup_sandbox_ids):
    settings.VIBEBOX_MAX_CPU_PER_OWNER = 1.5
    outcomes = concurrent_creates(
        owner, 4, cleanup_sandbox_ids, template="python-3", auto_start=False, resources={"cpu": 1}
    )
    assert outcomes == ["created", "quota_exceeded", "quota_exceeded", "quota_exceeded"]
    assert Sandbox.objects.filter(owner=owner).count() == 1


def test_snapshot_count_and_bytes(api_client, create_sandbox, settings, tmp_path, docker_client):
    settings.VIBEBOX_SNAPSHOT_DIR = tmp_path
    sandbox_id = create_sandbox(template="python-3")["id"]
    url = f"/api/v1/sandboxes/{sandbox_id}/snapshots"
    settings.VIBEBOX_MAX_SNAPSHOTS_PER_OWNER = 1
    assert api_client.post(url, {}, format="json").status_code == 201
    quota_error(api_client.post(url, {}, format="json"), "snapshots", 1, 1, 1)

    settings.VIBEBOX_MAX_SNAPSHOTS_PER_OWNER = 10
    used = Snapshot.objects.get().size
    settings.VIBEBOX_MAX_SNAPSHOT_BYTES_PER_OWNER = used + 1024  # room for almost nothing more
    api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "head -c 3000000 /dev/urandom > big.bin"}, format="json"
    )
    response = api_client.post(url, {}, format="json")
    assert response.status_code == 402, response.content
    details = response.json()["error"]["details"]
    assert (
        details["quota"] == details["resource"] == "snapshot_bytes"
        and details["limit"] == used + 1024
        and details["used"] == used
    )
    assert details["requested"] > 3000000
    # the refused snapshot left nothing behind: no row, no image, no archive
    assert Snapshot.objects.count() == 1
    kept = Snapshot.objects.get()
    assert [p.name for p in tmp_path.iterdir()] == [archive_path(kept).name]
    labels = [f"vibebox.instance={django_settings.VIBEBOX_INSTANCE}", "vibebox.snapshot-id"]
    assert [image.labels["vibebox.snapshot-id"] for image in docker_client.images.list(filters={"label": labels})] == [
        kept.id
    ]
    # at or above the limit already: refused before anything is taken
    settings.VIBEBOX_MAX_SNAPSHOT_BYTES_PER_OWNER = used
    quota_error(api_client.post(url, {}, format="json"), "snapshot_bytes", used, used, None)


def test_limits_of_zero_are_off(create_sandbox, settings):
    settings.VIBEBOX_MAX_CPU_PER_OWNER = 0
    settings.VIBEBOX_MAX_MEMORY_PER_OWNER = 0
    settings.VIBEBOX_MAX_SNAPSHOTS_PER_OWNER = 0
    create_sandbox(template="python-3", resources={"cpu": 2, "memory": "1g"}, autoStart=False)
