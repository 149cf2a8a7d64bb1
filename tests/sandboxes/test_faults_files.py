"""File uploads when a step fails for real (issue 18): the sandbox's disk is full, the container
is killed, or the upload's body breaks off on its way to sandboxd. The answer is a clean 4xx/5xx
with a stable code, the file that was there keeps its content (never half-written), and no
temporary file of sandboxd's (`.vibebox-upload-*`, beside the target) is left to eat the sandbox's
disk."""

import io
import os
import tarfile
import time

import pytest
from asgiref.sync import async_to_sync

from apps.sandboxes.models import Sandbox
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.services import files
from vibebox import exceptions as errors

MIB = 1024**2
OLD = b"the content that was there\n"


def upload(api_client, sandbox_id, path, data):
    return api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/files?path={path}", data, content_type="application/octet-stream"
    )


def upload_tar(api_client, sandbox_id, path, entries: dict[str, bytes]):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/files?path={path}", buffer.getvalue(), content_type="application/x-tar"
    )


def download(api_client, sandbox_id, path) -> bytes:
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files/{path}")
    assert response.status_code == 200, response

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


def sh(docker_client, sandbox_id, script, user="") -> tuple[int, str]:
    """Run `script` through the engine's exec. This engine (20.10) now and then hands back an
    empty output for a short-lived exec on a loaded machine, which read as "no files left"; a
    sentinel line tells a lost output from an empty one, and a lost one is run again."""
    container = docker_client.containers.get(sandbox_id)
    for _ in range(5):
        result = container.exec_run(["sh", "-c", f"{script}\nstatus=$?; echo __end__; exit $status"], user=user)
        output = result.output.decode(errors="replace")
        if output.endswith("__end__\n"):
            return result.exit_code, output.removesuffix("__end__\n")
    raise AssertionError(f"the engine lost the output of {script!r} five times")


def uploads_left(docker_client, sandbox_id) -> str:
    """sandboxd's temporary files of uploads still in /workspace (a failed upload removes its own)."""
    code, output = sh(docker_client, sandbox_id, "find /workspace -name '.vibebox-upload-*'", user="0")
    assert code == 0, output
    return output.strip()


def fill_disk(docker_client, sandbox_id, leave_mib: int = 0) -> None:
    """Writes until the disk is full, then frees `leave_mib` MiB."""
    _, output = sh(
        docker_client,
        sandbox_id,
        f"head -c {leave_mib * MIB} /dev/zero > /workspace/.reserve; head -c 200M /dev/zero > /workspace/.fill; "
        "rm -f /workspace/.reserve; sync",
    )
    assert "No space left" in output or "quota exceeded" in output, output


@pytest.fixture
def limited(create_sandbox):
    if not get_driver().engine_info().supports_disk_limit:
        pytest.skip("this engine cannot limit disk size (see docs/operations.md, Disk limits)")
    return create_sandbox(template="python-3", resources={"disk": "64m"})["id"]


def test_upload_to_a_full_disk_is_507_and_keeps_the_old_file(api_client, limited, docker_client):
    assert upload(api_client, limited, "keep.txt", OLD).status_code == 201
    fill_disk(docker_client, limited)
    response = upload(api_client, limited, "keep.txt", os.urandom(8 * MIB))
    assert response.status_code == 507, response.content
    assert response.json()["error"]["code"] == "disk_full"
    assert download(api_client, limited, "keep.txt") == OLD
    assert uploads_left(docker_client, limited) == ""
    # once space is freed, the same upload works
    sh(docker_client, limited, "rm -f /workspace/.fill")
    data = os.urandom(8 * MIB)
    assert upload(api_client, limited, "keep.txt", data).status_code == 201
    assert download(api_client, limited, "keep.txt") == data


def test_archive_upload_to_a_full_disk_is_507_and_keeps_the_old_files(api_client, limited, docker_client):
    assert upload(api_client, limited, "proj/a.txt", OLD).status_code == 201
    fill_disk(docker_client, limited, leave_mib=4)
    response = upload_tar(api_client, limited, "proj", {"a.txt": os.urandom(8 * MIB), "b.txt": b"new"})
    assert response.status_code == 507 and response.json()["error"]["code"] == "disk_full", response.content
    assert download(api_client, limited, "proj/a.txt") == OLD
    assert api_client.get(f"/api/v1/sandboxes/{limited}/files/proj/b.txt").status_code == 404
    assert uploads_left(docker_client, limited) == ""


def test_an_archive_that_fits_once_is_placed_without_a_second_copy(api_client, limited, docker_client):
    """Staged files are moved into place, not copied: an archive that fits the disk once fits
    (a copy ran out of space half-way and left the old file truncated)."""
    assert upload(api_client, limited, "proj/a.txt", OLD).status_code == 201
    fill_disk(docker_client, limited, leave_mib=20)
    new = os.urandom(12 * MIB)
    response = upload_tar(api_client, limited, "proj", {"a.txt": new, "sub/b.txt": b"new"})
    assert response.status_code == 201, response.content
    assert download(api_client, limited, "proj/a.txt") == new
    assert download(api_client, limited, "proj/sub/b.txt") == b"new"
    assert uploads_left(docker_client, limited) == ""


@pytest.mark.parametrize("kind", ["file", "archive"])
def test_upload_to_a_killed_container_is_409_and_the_row_follows(kind, api_client, sandbox_id, docker_client):
    """The container was killed behind VibeBox's back: 409 sandbox_not_running (was 502 with the
    engine's text) and the sandbox is `stopped` with a reason at once, not at the next reconcile."""
    assert upload(api_client, sandbox_id, "keep.txt", OLD).status_code == 201
    docker_client.api.kill(sandbox_id)
    if kind == "file":
        response = upload(api_client, sandbox_id, "keep.txt", b"new")
    else:
        response = upload_tar(api_client, sandbox_id, ".", {"keep.txt": b"new"})
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "sandbox_not_running" and error["details"]["status"] == "stopped", error
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    assert sandbox.status == "stopped" and "exited" in sandbox.status_reason
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/start").status_code == 200
    assert download(api_client, sandbox_id, "keep.txt") == OLD
    assert uploads_left(docker_client, sandbox_id) == ""


# ---- the engine's connection reset ----


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


class Failing(io.BytesIO):
    """An upload body whose reads fail once `after` bytes were read (its client went away)."""

    def __init__(self, data: bytes, after: int):
        super().__init__(data)
        self.after = after

    def read(self, size=-1):
        if self.tell() >= self.after:
            raise OSError("the client went away")
        return super().read(size)


def test_upload_cut_on_the_way_to_sandboxd_leaves_no_half_written_file(sandbox_id, api_client, docker_client):
    """The upload's body fails after 4 MiB of 16 went to sandboxd: a clean error, the target keeps
    its content, and sandboxd removes the half-written file beside it (the connection closed)."""
    assert upload(api_client, sandbox_id, "keep.txt", OLD).status_code == 201
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    data = os.urandom(16 * MIB)
    with pytest.raises(errors.ApplicationError) as failure:
        files.file_upload(sandbox=sandbox, path="keep.txt", fileobj=Failing(data, 4 * MIB), size=len(data))
    assert failure.value.status == 502 and failure.value.code == "runtime_error", failure.value
    assert download(api_client, sandbox_id, "keep.txt") == OLD
    for _ in range(50):
        left = sh(docker_client, sandbox_id, "ls -A /workspace")[1].split()
        if left == ["keep.txt"]:
            break
        time.sleep(0.1)
    assert left == ["keep.txt"]
    assert uploads_left(docker_client, sandbox_id) == ""
    # a tar cut the same way: nothing of it stays half-written either
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        info = tarfile.TarInfo("keep.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    count = files.tarstream.check(io.BytesIO(tar.getvalue()))
    with pytest.raises(errors.ApplicationError):
        files._untar_by_daemon(sandbox, "/workspace", Failing(tar.getvalue(), 4 * MIB), len(tar.getvalue()), count)
    assert download(api_client, sandbox_id, "keep.txt") == OLD


def test_an_upload_shorter_than_announced_is_400_and_changes_nothing(sandbox_id, api_client, docker_client):
    assert upload(api_client, sandbox_id, "keep.txt", OLD).status_code == 201
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    with pytest.raises(errors.ValidationFailed):
        files.file_upload(sandbox=sandbox, path="keep.txt", fileobj=io.BytesIO(b"short"), size=100)
    assert download(api_client, sandbox_id, "keep.txt") == OLD
    for _ in range(50):
        left = sh(docker_client, sandbox_id, "ls -A /workspace")[1].split()
        if left == ["keep.txt"]:
            break
        time.sleep(0.1)
    assert left == ["keep.txt"]
