"""Sandboxes whose container was made before sandboxd (an upgraded install): no sandboxd label, no
sandboxd mount, `sleep infinity` under Docker's init. Nothing can run in them any more, so
everything that needs sandboxd answers a clean 409 sandbox_outdated (never a 500 or 502), what
does not need it (reads, stop, start, a stopped sandbox's downloads, snapshots) works, a snapshot
restored in place gives the sandbox a current container with its files, and the warm pool's health
check replaces such containers instead of handing them out. Real containers, through the API."""

import pytest
from asgiref.sync import async_to_sync

from apps.sandboxes.models import PooledContainer, Sandbox, Snapshot
from apps.sandboxes.runtime import get_driver, sandboxd_client
from apps.sandboxes.services import pools
from apps.sandboxes.services.snapshots import snapshot_delete
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def make_outdated(docker_client, name: str) -> None:
    """Replaces container `name` by one made as before sandboxd: same image, labels (but sandboxd's),
    network and workspace, `sleep infinity` as the template's user under Docker's init."""
    old = docker_client.containers.get(name)
    attrs = old.attrs
    labels = {k: v for k, v in attrs["Config"]["Labels"].items() if k != sandboxd_client.USER_LABEL}
    user = attrs["Config"]["Labels"][sandboxd_client.USER_LABEL]
    network = next(iter(attrs["NetworkSettings"]["Networks"]))
    volumes = {
        m["Name"]: {"bind": "/workspace", "mode": "rw"} for m in attrs["Mounts"] if m["Destination"] == "/workspace"
    }
    old.remove(force=True)
    docker_client.containers.run(
        attrs["Config"]["Image"],
        ["sleep", "infinity"],
        name=name,
        labels=labels,
        user=user,
        working_dir="/workspace",
        network=network,
        volumes=volumes,
        init=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        detach=True,
    )
    get_driver()._daemons.pop(name, None)  # as after a restart of the server: nothing cached


@pytest.fixture
def outdated(create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="python-3")["id"]
    make_outdated(docker_client, sandbox_id)
    container = docker_client.containers.get(sandbox_id)
    assert container.exec_run(["sh", "-c", "echo kept > /workspace/kept.txt"]).exit_code == 0
    assert sandboxd_client.USER_LABEL not in container.labels
    yield sandbox_id
    for snapshot in Snapshot.objects.all():
        snapshot_delete(snapshot=snapshot)


def assert_outdated(response) -> None:
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "sandbox_outdated", error
    assert "snapshot" in error["message"] and "restore" in error["message"]


def test_what_needs_sandboxd_is_409_sandbox_outdated(api_client, outdated):
    base = f"/api/v1/sandboxes/{outdated}"
    assert_outdated(api_client.post(f"{base}/exec", {"command": "echo hi"}, format="json"))
    assert_outdated(api_client.post(f"{base}/exec", {"command": "sleep 60", "background": True}, format="json"))
    assert_outdated(api_client.post(f"{base}/execute", {"code": "print(1)", "language": "python"}, format="json"))
    assert_outdated(api_client.get(f"{base}/files?path=/workspace"))
    assert_outdated(api_client.get(f"{base}/files/kept.txt"))
    assert_outdated(api_client.post(f"{base}/files?path=new.txt", b"new", content_type="application/octet-stream"))
    assert_outdated(api_client.post(f"{base}/files/mkdir", {"path": "d"}, format="json"))
    assert_outdated(api_client.delete(f"{base}/files/kept.txt"))
    assert_outdated(api_client.get(f"{base}/terminals"))
    # reads of the row, and what the engine does alone, still work
    assert api_client.get(base).json()["status"] == "running"
    assert api_client.get(f"{base}/processes").json() == {"processes": []}


def test_a_terminal_is_refused_with_4409(api_key, outdated):
    async def scenario():
        comm = Communicator(
            application,
            f"/ws/sandboxes/{outdated}/terminal",
            headers=[(b"host", b"testserver"), (b"authorization", f"Bearer {api_key[1]}".encode())],
        )
        connected, code = await comm.connect(timeout=30)
        if connected:  # accepted, then closed with the refusal
            output = await comm.receive_output(timeout=30)
            while output["type"] != "websocket.close":
                output = await comm.receive_output(timeout=30)
            code = output.get("code")
        await comm.disconnect()
        return code

    assert async_to_sync(scenario)() == 4409


def test_stop_start_and_a_stopped_download_work_and_a_snapshot_restored_in_place_brings_it_up_to_date(
    api_client, outdated, docker_client
):
    base = f"/api/v1/sandboxes/{outdated}"
    assert api_client.post(f"{base}/stop").status_code == 200
    download = api_client.get(f"{base}/files/kept.txt")  # stopped: the engine's archive API, no sandboxd
    assert download.status_code == 200

    async def collect():
        return b"".join([chunk async for chunk in download.streaming_content])

    assert async_to_sync(collect)() == b"kept\n"
    assert api_client.post(f"{base}/start").json()["status"] == "running"
    assert_outdated(api_client.post(f"{base}/exec", {"command": "true"}, format="json"))

    # What the error says: snapshot it, restore the snapshot in place.
    snapshot = api_client.post(f"{base}/snapshots", {}, format="json")
    assert snapshot.status_code == 201, snapshot.content
    restored = api_client.post(f"{base}/restore", {"snapshot": snapshot.json()["id"]}, format="json")
    assert restored.status_code == 200, restored.content
    assert restored.json()["id"] == outdated and restored.json()["status"] == "running"
    assert sandboxd_client.USER_LABEL in docker_client.containers.get(outdated).labels
    ran = api_client.post(f"{base}/exec", {"command": "cat kept.txt; id -un"}, format="json")
    assert ran.status_code == 200 and ran.json()["stdout"] == "kept\nsandbox\n", ran.content
    assert Sandbox.objects.get(pk=outdated).status == "running"


def test_the_pool_health_check_replaces_a_pooled_container_made_before_sandboxd(settings, templates, docker_client):
    settings.VIBEBOX_POOL_ENABLED = True
    settings.VIBEBOX_POOL_SIZES = {"python-3": 1}
    pool = pools.pool_get(templates["python-3"])
    try:
        assert pools.pool_fill(pool) == 1
        row = PooledContainer.objects.get(pool=pool)
        make_outdated(docker_client, row.id)
        assert pools.pool_check(pool) == 1  # replaced, not handed out
        assert not PooledContainer.objects.filter(pk=row.pk).exists()
        assert not docker_client.containers.list(all=True, filters={"name": f"^{row.id}$"})
        assert pools.pool_fill(pool) == 1
        fresh = PooledContainer.objects.get(pool=pool)
        assert sandboxd_client.USER_LABEL in docker_client.containers.get(fresh.id).labels
        assert pools.pool_check(pool) == 0
    finally:
        pools.pool_drain()
