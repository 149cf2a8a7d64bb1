"""File transfer through the API, against the real engine."""

import io
import os
import tarfile

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.sandboxes.runtime.docker import _file_info
from vibebox import exceptions as errors


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


def sh(api_client, sandbox_id, command):
    return api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json").json()


def raw_upload(api_client, sandbox_id, path, data, content_type="application/octet-stream", **params):
    query = "&".join(f"{k}={v}" for k, v in {"path": path, **params}.items())
    return api_client.post(f"/api/v1/sandboxes/{sandbox_id}/files?{query}", data, content_type=content_type)


def content(response) -> bytes:
    """The whole body of a streamed download (the view streams asynchronously, as under ASGI)."""

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


def make_tar(entries) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_binary_round_trip_raw_and_multipart(api_client, sandbox_id):
    payload = os.urandom(3 * 1024 * 1024 + 7)
    response = raw_upload(api_client, sandbox_id, "bin/data.bin", payload, mode="0750")
    assert response.status_code == 201, response.content
    assert response.json() == {"path": "/workspace/bin/data.bin", "size": len(payload), "mode": "0750"}
    download = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files/bin/data.bin")
    assert download.status_code == 200 and int(download["Content-Length"]) == len(payload)
    assert content(download) == payload
    # owned by the sandbox user, so the agent can change it
    assert sh(api_client, sandbox_id, "stat -c '%U %a' bin bin/data.bin")["stdout"] == "sandbox 755\nsandbox 750\n"

    upload = SimpleUploadedFile("local.json", b'{"a": 1}')
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/files", {"file": upload, "path": "/repo/config.json"}, format="multipart"
    )
    assert response.status_code == 201 and response.json()["path"] == "/repo/config.json"
    download = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files//repo/config.json")
    assert download["Content-Type"] == "application/json" and content(download) == b'{"a": 1}'


def test_directory_as_tar_round_trip_keeps_modes(api_client, sandbox_id):
    archive = make_tar(
        [("src", None, 0o755), ("src/run.sh", b"#!/bin/sh\necho ran\n", 0o755), ("README", b"hi", 0o600)]
    )
    response = raw_upload(api_client, sandbox_id, "project", archive, content_type="application/gzip")
    assert response.status_code == 201 and response.json() == {"path": "/workspace/project", "entries": 3}
    assert (
        sh(api_client, sandbox_id, "cd project && ./src/run.sh && stat -c '%a %U' README")["stdout"]
        == "ran\n600 sandbox\n"
    )

    download = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files/project?gzip=1")
    assert download["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(content(download)), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["project/src/run.sh"].mode & 0o777 == 0o755
        assert tar.extractfile(members["project/README"]).read() == b"hi"


def test_list_mkdir_move_delete(api_client, sandbox_id):
    base = f"/api/v1/sandboxes/{sandbox_id}/files"
    assert api_client.post(f"{base}/mkdir", {"path": "a/b"}, format="json").status_code == 201
    raw_upload(api_client, sandbox_id, "a/b/f.txt", b"12345")
    listing = api_client.get(f"{base}?path=a").json()
    assert listing["path"] == "/workspace/a"
    assert [(e["name"], e["isDir"]) for e in listing["entries"]] == [("b", True)]
    entries = api_client.get(f"{base}?path=a&recursive=true").json()["entries"]
    file_entry = next(e for e in entries if e["name"] == "f.txt")
    assert file_entry["size"] == 5 and file_entry["path"] == "/workspace/a/b/f.txt" and file_entry["mode"] == "0644"

    assert (
        api_client.post(f"{base}/move", {"source": "a/b/f.txt", "destination": "c/g.txt"}, format="json").status_code
        == 200
    )
    raw_upload(api_client, sandbox_id, "a/other.txt", b"x")
    clash = api_client.post(f"{base}/move", {"source": "a/other.txt", "destination": "c/g.txt"}, format="json")
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "file_conflict"
    assert content(api_client.get(f"{base}/c/g.txt")) == b"12345"

    not_empty = api_client.delete(f"{base}/a")
    assert not_empty.status_code == 409
    assert api_client.delete(f"{base}/a?recursive=true").status_code == 204
    assert api_client.delete(f"{base}/c/g.txt").status_code == 204
    gone = api_client.get(f"{base}/c/g.txt")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "file_not_found"
    assert api_client.delete(f"{base}/c/g.txt").status_code == 404


def test_listing_takes_every_name_date_and_mode_a_sandbox_can_make(api_client, sandbox_id):
    """The listing's fields are checked (what the sandbox prints is hostile), so the check must take
    every real entry: a newline in a name, a date before 1970, a sticky directory."""
    script = "mkdir -p odd && cd odd && touch -d 1960-01-01 old && touch 'two\nlines' && mkdir -m 1777 sticky"
    assert (
        api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": script}, format="json").json()["exitCode"]
        == 0
    )
    entries = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files?path=odd").json()["entries"]
    by_name = {e["name"]: e for e in entries}
    assert set(by_name) == {"old", "two\nlines", "sticky"}
    assert by_name["old"]["modifiedAt"] < 0 and by_name["sticky"]["mode"] == "1777"


GOOD_ENTRY = {"path": "/workspace/a", "name": "a", "type": "file", "size": 1, "mode": 0o644, "mtime": 1.5}


@pytest.mark.parametrize(
    "changed",
    [
        {"size": "NaN"},
        {"size": 10**5000},
        {"size": -1},
        {"mode": "rwx"},
        {"mode": 0o17777},
        {"mtime": float("inf")},
        {"mtime": True},
        {"type": "socket"},
        {"path": None},
    ],
)
def test_a_malformed_listing_from_the_sandbox_is_a_clean_error(changed):
    """sandboxd relays what the sandbox holds: every field of its file entries is checked."""
    assert _file_info(GOOD_ENTRY).size == 1
    with pytest.raises(errors.RuntimeFailure):
        _file_info({**GOOD_ENTRY, **changed})


def test_traversal_stays_inside_the_container(api_client, sandbox_id):
    base = f"/api/v1/sandboxes/{sandbox_id}/files"
    passwd = content(api_client.get(f"{base}/../../etc/passwd"))
    assert b"sandbox:x:1000" in passwd  # the container's own /etc/passwd, not the host's
    sh(api_client, sandbox_id, "ln -s / /workspace/root-link")
    assert b"sandbox:x:1000" in content(api_client.get(f"{base}/root-link/etc/passwd"))
    # writing through the symlink lands in the container too, never on the host, and only where
    # the sandbox user may write (tests/sandboxes/test_files_security.py)
    response = raw_upload(api_client, sandbox_id, "root-link/repo/through-link.txt", b"in the box")
    assert response.status_code == 201
    assert not os.path.exists("/repo/through-link.txt")
    assert sh(api_client, sandbox_id, "cat /repo/through-link.txt")["stdout"] == "in the box"
    response = raw_upload(api_client, sandbox_id, "root-link/opt/through-link.txt", b"in the box")
    assert response.status_code == 403 and response.json()["error"]["code"] == "path_not_writable"
    # the /tmp tmpfs: sandboxd writes it as the sandbox's processes see it (test_tmpfs_paths_work)
    response = raw_upload(api_client, sandbox_id, "/tmp/x.txt", b"kept")
    assert response.status_code == 201 and sh(api_client, sandbox_id, "cat /tmp/x.txt")["stdout"] == "kept"
    assert api_client.get(f"{base}?path=a%00b").json()["error"]["code"] == "nul_character"  # any NUL in a URL
    missing = api_client.get(f"{base}?path=no/such/dir")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"


def test_tmpfs_paths_work(api_client, sandbox_id, docker_client):
    """/tmp is a tmpfs, which the engine's archive API cannot see: sandboxd's file calls can."""
    mounts = docker_client.api.inspect_container(sandbox_id)["HostConfig"].get("Tmpfs") or {}
    assert "/tmp" in mounts, mounts
    base = f"/api/v1/sandboxes/{sandbox_id}/files"
    payload = os.urandom(2 * 1024 * 1024 + 3)
    response = raw_upload(api_client, sandbox_id, "/tmp/up/data.bin", payload, mode="0600")
    assert response.status_code == 201, response.content
    assert response.json() == {"path": "/tmp/up/data.bin", "size": len(payload), "mode": "0600"}
    assert (
        sh(api_client, sandbox_id, "stat -c '%U %a %s' /tmp/up/data.bin")["stdout"] == f"sandbox 600 {len(payload)}\n"
    )
    entries = api_client.get(f"{base}?path=/tmp/up").json()["entries"]
    assert [(e["name"], e["size"], e["mode"]) for e in entries] == [("data.bin", len(payload), "0600")]
    assert content(api_client.get(f"{base}//tmp/up/data.bin")) == payload
    archive = make_tar([("t/a.txt", b"A", 0o644)])
    response = raw_upload(api_client, sandbox_id, "/tmp/x", archive, content_type="application/gzip")
    assert response.status_code == 201 and response.json() == {"path": "/tmp/x", "entries": 1}
    with tarfile.open(fileobj=io.BytesIO(content(api_client.get(f"{base}//tmp/x")))) as tar:
        assert tar.extractfile("x/t/a.txt").read() == b"A"
    assert (
        api_client.post(
            f"{base}/move", {"source": "/tmp/x/t/a.txt", "destination": "moved.txt"}, format="json"
        ).status_code
        == 200
    )
    assert content(api_client.get(f"{base}/moved.txt")) == b"A"  # across file systems: copied, then removed
    assert api_client.delete(f"{base}//tmp/up?recursive=true").status_code == 204
    assert sh(api_client, sandbox_id, "ls -A /tmp/x/t /tmp")["stdout"].split() == ["/tmp:", "x", "/tmp/x/t:"]


def test_unsafe_archives_are_rejected_whole(api_client, sandbox_id):
    for bad in ("../escape.txt", "/abs.txt", "ok/../../up.txt"):
        archive = make_tar([("fine.txt", b"ok", 0o644), (bad, b"x", 0o644)])
        response = raw_upload(api_client, sandbox_id, "dest", archive, content_type="application/gzip")
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_archive", bad
    response = raw_upload(api_client, sandbox_id, "dest", b"not a tar", content_type="application/x-tar")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_archive"
    assert sh(api_client, sandbox_id, "ls /workspace /; ls /workspace/dest 2>&1")["stdout"].count("fine.txt") == 0


def test_pax_long_and_non_ascii_names_land_under_the_target(api_client, sandbox_id):
    long_name = "deep/" + "d" * 120 + "/f.txt"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((long_name, b"long"), ("caf\u00e9.txt", b"accent")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    response = raw_upload(api_client, sandbox_id, "project", buffer.getvalue(), content_type="application/x-tar")
    assert response.status_code == 201, response.content
    assert sh(api_client, sandbox_id, f"cat /workspace/project/{long_name}")["stdout"] == "long"
    assert sh(api_client, sandbox_id, "cat /workspace/project/caf\u00e9.txt")["stdout"] == "accent"
    assert sh(api_client, sandbox_id, "test -e /workspace/deep && echo leaked || echo ok")["stdout"] == "ok\n"


def test_oversize_upload_is_413(api_client, sandbox_id, settings):
    settings.VIBEBOX_UPLOAD_MAX_BYTES = 1000
    response = raw_upload(api_client, sandbox_id, "big.bin", b"x" * 1001)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    archive = make_tar([("big.bin", os.urandom(5000), 0o644)])
    response = raw_upload(api_client, sandbox_id, "d", archive, content_type="application/gzip")
    assert response.status_code == 413
    assert "big.bin" not in sh(api_client, sandbox_id, "ls -R /workspace")["stdout"]


def test_list_needs_a_running_sandbox(api_client, sandbox_id):
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop")
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files")
    assert response.status_code == 409 and response.json()["error"]["code"] == "sandbox_not_running"


def test_download_from_a_stopped_sandbox_uses_the_engine(api_client, sandbox_id):
    """A stopped sandbox has no sandboxd to ask: its files still download (the engine's archive
    API), and /tmp (a tmpfs, gone with the container's stop) is refused rather than missed."""
    base = f"/api/v1/sandboxes/{sandbox_id}/files"
    assert raw_upload(api_client, sandbox_id, "kept.txt", b"still here").status_code == 201
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop").status_code == 200
    assert content(api_client.get(f"{base}/kept.txt")) == b"still here"
    response = api_client.get(f"{base}//tmp/anything")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_path"


@pytest.mark.parametrize("compression", ["bz2", "xz"])
def test_archives_of_other_compressions_extract(api_client, sandbox_id, compression):
    """sandboxd takes a plain or gzipped tar; others are rewritten plain on the way."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        info = tarfile.TarInfo("sub/c.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    response = raw_upload(api_client, sandbox_id, "comp", buffer.getvalue(), content_type="application/x-tar")
    assert response.status_code == 201 and response.json() == {"path": "/workspace/comp", "entries": 1}
    assert content(api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files/comp/sub/c.txt")) == b"abc"
