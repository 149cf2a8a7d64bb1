"""Raw uploads through the real server go on to the sandbox while they arrive (vibebox/streambody.py):
the sandbox's temporary file grows before the client has sent the end; a client that leaves or
stalls half-way writes nothing (neither the target nor a temporary file stays); errors found before
the body is read are answered at once; archives and multipart forms still work."""

import hashlib
import io
import json
import os
import socket
import tarfile
import urllib.request

import pytest

from tests.conftest import live_server
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024


def _open(url: str, secret: str, path: str, length: int, content_type: str = "application/octet-stream"):
    """A connection that has sent an upload's headers and no body yet."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
        ).encode()
    )
    return sock


def _answer(sock) -> tuple[int, dict]:
    reader = sock.makefile("rb")
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(reader.read(length))


def _workspace(docker_client, sandbox_id: str) -> dict[str, int]:
    """Name -> size of the files in /workspace, read by the engine (not through VibeBox)."""
    command = ["find", "/workspace", "-maxdepth", "1", "-type", "f", "-printf", "%f %s\n"]
    output = docker_client.containers.get(sandbox_id).exec_run(command).output.decode()
    return {name: int(size) for name, size in (line.rsplit(" ", 1) for line in output.splitlines())}


@pytest.fixture
def server():
    with live_server(VIBEBOX_UPLOAD_IDLE_TIMEOUT="3s") as (url, _pid):
        yield url


def test_the_sandbox_writes_the_upload_before_the_client_has_sent_it_all(
    server, api_key, create_sandbox, docker_client
):
    sandbox_id = create_sandbox()["id"]
    data = os.urandom(24 * MIB)
    sock = _open(server, api_key[1], f"/api/v1/sandboxes/{sandbox_id}/files?path=big.bin", len(data))
    with sock:
        sock.sendall(data[: 16 * MIB])

        def growing() -> bool:  # sandboxd's temporary file beside the target, part-written
            return any(
                name.startswith(".vibebox-upload-") and size > 0
                for name, size in _workspace(docker_client, sandbox_id).items()
            )

        wait_for(growing, timeout=60, what="the temporary file to grow while the body is still coming")
        assert "big.bin" not in _workspace(docker_client, sandbox_id)
        sock.sendall(data[16 * MIB :])
        status, body = _answer(sock)
    assert status == 201, body
    assert body == {"path": "/workspace/big.bin", "size": len(data), "mode": "0644"}
    read = docker_client.containers.get(sandbox_id).exec_run(["sha256sum", "/workspace/big.bin"]).output.decode()
    assert read.split()[0] == hashlib.sha256(data).hexdigest()
    assert set(_workspace(docker_client, sandbox_id)) == {"big.bin"}


def _upload_again_works(url: str, secret: str, sandbox_id: str, docker_client) -> None:
    """The server is still well, and the same path takes a whole upload."""
    request = urllib.request.Request(
        f"{url}/api/v1/sandboxes/{sandbox_id}/files?path=cut.bin",
        data=b"whole",
        method="POST",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/octet-stream"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201
    assert _workspace(docker_client, sandbox_id) == {"cut.bin": 5}


def test_a_client_that_leaves_half_way_writes_nothing_and_frees_the_upload_at_once(
    api_key, create_sandbox, docker_client
):
    sandbox_id = create_sandbox()["id"]
    # An idle timeout far above the wait below: only the client's leaving can end the upload in time.
    with live_server(VIBEBOX_UPLOAD_IDLE_TIMEOUT="600s") as (url, _pid):
        sock = _open(url, api_key[1], f"/api/v1/sandboxes/{sandbox_id}/files?path=cut.bin", 8 * MIB)
        with sock:
            sock.sendall(os.urandom(2 * MIB))
            wait_for(lambda: _workspace(docker_client, sandbox_id), timeout=60, what="the upload to start")
            sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: not _workspace(docker_client, sandbox_id), timeout=60, what="the temporary file to go")
        _upload_again_works(url, api_key[1], sandbox_id, docker_client)


def test_a_client_that_stalls_half_way_is_refused_and_writes_nothing(server, api_key, create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    sock = _open(server, api_key[1], f"/api/v1/sandboxes/{sandbox_id}/files?path=cut.bin", 8 * MIB)
    with sock:
        sock.sendall(os.urandom(2 * MIB))
        # Then nothing more, for longer than VIBEBOX_UPLOAD_IDLE_TIMEOUT (3 s here).
        status, body = _answer(sock)
    assert status == 400, body
    assert body["error"]["code"] == "validation_error" and body["error"]["message"] == "The upload ended early."
    wait_for(lambda: not _workspace(docker_client, sandbox_id), timeout=60, what="the temporary file to go")
    _upload_again_works(server, api_key[1], sandbox_id, docker_client)


def test_a_trickle_below_the_minimum_rate_is_refused(api_key, create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    env = {"VIBEBOX_UPLOAD_IDLE_TIMEOUT": "2s", "VIBEBOX_UPLOAD_MIN_RATE": "1m"}
    with live_server(**env) as (url, _pid):
        sock = _open(url, api_key[1], f"/api/v1/sandboxes/{sandbox_id}/files?path=cut.bin", 8 * MIB)
        with sock:
            sock.sendall(os.urandom(64 * 1024))
            sock.settimeout(0.2)
            for _ in range(300):  # a byte every 0.2 s: never idle for 2 s, far below 1 MiB/s
                try:
                    status, body = _answer(sock)
                    break
                except TimeoutError:
                    sock.sendall(b"x")
            else:
                raise AssertionError("a trickling upload was never refused")
        assert status == 400 and body["error"]["message"] == "The upload ended early.", body
        wait_for(lambda: not _workspace(docker_client, sandbox_id), timeout=60, what="the temporary file to go")


def test_a_refusal_before_the_body_is_read_is_answered_at_once(server, api_key):
    # Not a sandbox of this owner: 404 without waiting for (or keeping) the 1 GiB it announces.
    sock = _open(server, api_key[1], "/api/v1/sandboxes/sbx_missing/files?path=x.bin", 1024 * MIB)
    with sock:
        sock.sendall(os.urandom(MIB))
        status, body = _answer(sock)
    assert status == 404 and body["error"]["code"] == "sandbox_not_found", body


def test_archives_and_multipart_forms_still_upload(server, api_key, create_sandbox, docker_client):
    sandbox_id = create_sandbox()["id"]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, content in (("app/a.txt", b"alpha"), ("app/b.txt", b"beta")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    request = urllib.request.Request(
        f"{server}/api/v1/sandboxes/{sandbox_id}/files?path=.",
        data=archive.getvalue(),
        method="POST",
        headers={"Authorization": f"Bearer {api_key[1]}", "Content-Type": "application/gzip"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.load(response) == {"path": "/workspace", "entries": 2}
    boundary = "vibeboxboundary"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="form.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nfrom a form\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        f"{server}/api/v1/sandboxes/{sandbox_id}/files",
        data=form,
        method="POST",
        headers={"Authorization": f"Bearer {api_key[1]}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert json.load(response)["path"] == "/workspace/form.txt"
    container = docker_client.containers.get(sandbox_id)
    assert container.exec_run(
        ["cat", "/workspace/app/a.txt", "/workspace/app/b.txt", "/workspace/form.txt"]
    ).output == (b"alphabetafrom a form")
