"""Uploads write only where the sandbox user may write (issue 17, item 9).

The engine writes archives as root: an upload must never let `sandboxes:write` replace VibeBox's
files in the sandbox (/opt/vibebox), the image's programs or anything else the sandbox user could
not change itself (which would give code execution without `execute`, or reach the next user of
those programs: git runs the image's binaries with the owner's credentials).
"""

import io
import subprocess
import tarfile

import pytest

from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE


@pytest.fixture
def sandbox_id(create_sandbox):
    return create_sandbox(template="python-3")["id"]


@pytest.fixture
def writer(owner, client_for):
    """A key that may upload but not run commands."""
    return client_for(owner, [SANDBOXES_READ, SANDBOXES_WRITE])


def sh(client, sandbox_id, command, user=None):
    body = {"command": command, **({"user": user} if user else {})}
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["stdout"]


def upload(client, sandbox_id, path, data, content_type="application/octet-stream"):
    return client.post(f"/api/v1/sandboxes/{sandbox_id}/files?path={path}", data, content_type=content_type)


def tar_of(*members) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_member(name, data=b"pwned"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_member(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def assert_not_writable(response):
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "path_not_writable"


PROTECTED = "sha256sum /opt/vibebox/sandboxd /usr/bin/git; ls -la /opt/vibebox /usr/local/bin /etc/profile.d; ls /"


def test_uploads_outside_the_sandbox_users_paths_are_refused(api_client, writer, sandbox_id):
    before = sh(api_client, sandbox_id, PROTECTED)
    for path in ("/opt/vibebox/sandboxd", "/usr/bin/git", "/usr/local/bin/evil", "/etc/profile.d/evil.sh", "/x"):
        assert_not_writable(upload(writer, sandbox_id, path, b"#!/bin/sh\ntouch /tmp/pwned\n"))
    # through a symlink the sandbox made
    sh(api_client, sandbox_id, "ln -s /opt/vibebox /workspace/agent-dir && ln -s /usr/bin/git /workspace/git-bin")
    assert_not_writable(upload(writer, sandbox_id, "agent-dir/sandboxd", b"pwned"))
    assert_not_writable(upload(writer, sandbox_id, "agent-dir/new", b"pwned"))
    assert_not_writable(upload(writer, sandbox_id, "git-bin", b"pwned"))
    # an existing file the sandbox user may not write, in a directory it may
    sh(api_client, sandbox_id, "mkdir -m 777 /workspace/open")
    sh(api_client, sandbox_id, "echo root > /workspace/open/root-owned && chmod 644 /workspace/open/root-owned", "root")
    assert_not_writable(upload(writer, sandbox_id, "open/root-owned", b"pwned"))
    # archives: at a protected place, and into a protected directory through a symlink
    archive = tar_of(file_member("sandboxd"))
    assert_not_writable(upload(writer, sandbox_id, "/opt/vibebox", archive, "application/x-tar"))
    assert_not_writable(upload(writer, sandbox_id, "agent-dir", archive, "application/x-tar"))
    assert_not_writable(
        upload(writer, sandbox_id, "/", tar_of(file_member("opt/vibebox/sandboxd")), "application/x-tar")
    )
    assert sh(api_client, sandbox_id, PROTECTED) == before
    assert sh(api_client, sandbox_id, "cat /workspace/open/root-owned; ls /tmp/pwned 2>&1 || true").startswith("root\n")


def test_archive_entries_cannot_reach_out_through_links(api_client, writer, sandbox_id):
    before = sh(api_client, sandbox_id, PROTECTED)
    evil = [
        # a symlink in the archive, then a file through it
        tar_of(link_member("l", "/opt/vibebox"), file_member("l/sandboxd")),
        tar_of(link_member("d", "/usr/bin"), file_member("d/git")),
        # a hard link to a file of the image (the engine would also chown it to the sandbox user)
        tar_of(link_member("h", "opt/vibebox/sandboxd", tarfile.LNKTYPE)),
        tar_of(link_member("s", "/"), link_member("h", "s/usr/bin/git", tarfile.LNKTYPE)),
    ]
    for archive in evil:
        for target in ("/workspace/x", "/"):
            response = upload(writer, sandbox_id, target, archive, "application/x-tar")
            assert response.status_code in (400, 403), response.content
            assert response.json()["error"]["code"] in ("invalid_archive", "path_not_writable")
    assert sh(api_client, sandbox_id, PROTECTED) == before
    # links inside the archive itself are fine
    fine = tar_of(file_member("a.txt", b"A"), link_member("b.txt", "a.txt", tarfile.LNKTYPE), link_member("c", "a.txt"))
    assert upload(writer, sandbox_id, "fine", fine, "application/x-tar").status_code == 201
    out = sh(api_client, sandbox_id, "cd /workspace/fine && cat a.txt b.txt c && stat -c '%U %h' a.txt")
    assert out == "AAA" + "sandbox 2\n"


def test_uploads_are_the_sandbox_users_and_work_where_it_may_write(api_client, writer, sandbox_id):
    assert upload(writer, sandbox_id, "new/deeper/f.txt", b"one").status_code == 201
    assert upload(writer, sandbox_id, "/repo/r.txt", b"two").status_code == 201  # the image gave /repo to the user
    assert upload(writer, sandbox_id, "new/deeper/f.txt", b"three").status_code == 201  # replace its own file
    archive = tar_of(file_member("sub/t.txt", b"four"))
    assert upload(writer, sandbox_id, "/workspace/new", archive, "application/x-tar").status_code == 201
    out = sh(api_client, sandbox_id, "cd /workspace/new && cat deeper/f.txt /repo/r.txt sub/t.txt && "
             "stat -c '%U %a' deeper deeper/f.txt sub sub/t.txt /repo/r.txt")  # fmt: skip
    assert out == "threetwofour" + "sandbox 755\nsandbox 644\nsandbox 755\nsandbox 644\nsandbox 644\n"
    # sandboxd writes as the sandbox user beside the target and renames: no staging directory, no
    # temporary file left
    assert (
        sh(api_client, sandbox_id, "ls -A / /workspace/new/deeper /workspace/new/sub | grep -c vibebox || true")
        == "0\n"
    )
    # a directory is not replaced by a file
    response = upload(writer, sandbox_id, "new", b"x")
    assert response.status_code == 409 and response.json()["error"]["code"] == "file_conflict"


def test_other_file_writes_run_as_the_sandbox_user(api_client, writer, sandbox_id):
    base = f"/api/v1/sandboxes/{sandbox_id}/files"
    refused = [
        writer.post(f"{base}/mkdir", {"path": "/opt/vibebox/x"}, format="json"),
        writer.post(f"{base}/move", {"source": "/opt/vibebox/sandboxd", "destination": "a.py"}, format="json"),
        writer.post(
            f"{base}/move",
            {"source": "/etc/hostname", "destination": "/opt/vibebox/sandboxd", "overwrite": True},
            format="json",
        ),
        writer.delete(f"{base}//opt/vibebox/sandboxd"),
    ]
    for response in refused:
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] in ("file_permission_denied", "path_not_writable")


def test_uploads_need_a_running_sandbox(api_client, sandbox_id):
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/stop")
    response = upload(api_client, sandbox_id, "a.txt", b"x")
    assert response.status_code == 409 and response.json()["error"]["code"] == "sandbox_not_running"


def preload_library(tmp_path) -> bytes:
    """A shared library whose constructor leaves /tmp/pwned (built with the host's gcc: glibc is
    backwards compatible, so it loads in the Debian 13 images)."""
    source = tmp_path / "hook.c"
    source.write_text(
        '#include <fcntl.h>\n__attribute__((constructor)) static void hook(void) { creat("/tmp/pwned", 0644); }\n'
    )
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(tmp_path / "hook.so"), str(source)], check=True)
    return (tmp_path / "hook.so").read_bytes()


@pytest.mark.parametrize(
    "variables",
    [
        {"PATH": "/workspace/bin:/usr/local/bin:/usr/bin:/bin"},  # a `find`, `du`, `mv` of the key's own
        {"LD_PRELOAD": "/workspace/bin/hook.so"},  # loaded into every program the server starts
        {"BASH_ENV": "/workspace/bin/find", "ENV": "/workspace/bin/find"},  # sourced by non-interactive shells
    ],
    ids=["PATH", "LD_PRELOAD", "BASH_ENV"],
)
def test_the_sandboxs_variables_never_reach_vibebox_own_commands(
    api_client, writer, sandbox_id, variables, docker_client, tmp_path
):
    """A write key sets variables and uploads files: VibeBox's own commands in the sandbox (file
    listings, moves, disk usage, git) run with the template's environment only, so the key cannot
    make them run its programs (code execution without `sandboxes:exec`)."""
    program = b'#!/bin/sh\ntouch /tmp/pwned\nexec /usr/bin/find "$@"\n'
    assert upload(writer, sandbox_id, "/workspace/bin/find", program).status_code == 201
    assert upload(writer, sandbox_id, "/workspace/bin/hook.so", preload_library(tmp_path)).status_code == 201
    sh(api_client, sandbox_id, "chmod +x /workspace/bin/find")
    response = writer.patch(f"/api/v1/sandboxes/{sandbox_id}/env", variables, format="json")
    assert response.status_code == 200, response.content

    listing = writer.get(f"/api/v1/sandboxes/{sandbox_id}/files?path=/workspace&recursive=true")
    assert listing.status_code == 200, listing.content
    moved = writer.post(
        f"/api/v1/sandboxes/{sandbox_id}/files/move",
        {"source": "/workspace/bin/hook.so", "destination": "/workspace/h.so"},
        format="json",
    )
    assert moved.status_code in (200, 204), moved.content
    container = docker_client.containers.get(sandbox_id)
    assert container.exec_run(["test", "-e", "/tmp/pwned"]).exit_code != 0, "the key's program ran"
    # The key's own commands (with exec, as an argv: BASH_ENV would run the fake find first) still see them.
    name = next(iter(variables))
    assert sh(api_client, sandbox_id, ["printenv", name]).strip() == variables[name]


@pytest.mark.parametrize("program", ["sh", "find", "mv", "du"])
def test_programs_first_on_the_images_path_never_run_for_vibebox(
    api_client, writer, sandbox_id, program, docker_client
):
    """python-3 puts /opt/venv/bin (the sandbox user's) first on PATH: a `sh`, `find`, `mv` or `du`
    uploaded there by a write key is not what file listings, moves and metrics run."""
    fake = f'#!/bin/sh\ntouch /tmp/pwned\nexec /usr/bin/{program} "$@"\n'.encode()
    assert upload(writer, sandbox_id, f"/opt/venv/bin/{program}", fake).status_code == 201
    sh(api_client, sandbox_id, ["/bin/chmod", "+x", f"/opt/venv/bin/{program}"])
    assert writer.get(f"/api/v1/sandboxes/{sandbox_id}/files?path=/workspace").status_code == 200
    assert writer.post(f"/api/v1/sandboxes/{sandbox_id}/files/mkdir", {"path": "d"}, format="json").status_code == 201
    moved = writer.post(
        f"/api/v1/sandboxes/{sandbox_id}/files/move", {"source": "d", "destination": "e"}, format="json"
    )
    assert moved.status_code == 200, moved.content
    assert writer.get(f"/api/v1/sandboxes/{sandbox_id}/metrics").status_code == 200
    container = docker_client.containers.get(sandbox_id)
    assert container.exec_run(["test", "-e", "/tmp/pwned"]).exit_code != 0, f"the key's {program} ran"


def test_archive_entries_cannot_go_through_a_symlink_the_sandbox_planted(api_client, writer, sandbox_id):
    """The archive itself is clean (the server's check passes it), but the sandbox put a symlink
    where an entry's directory goes, to a place the sandbox user may write: sandboxd, which
    resolves each entry below the target without following symlinks, refuses it (a clean 400)
    and nothing lands outside the target."""
    sh(api_client, sandbox_id, "mkdir -p /workspace/dest /tmp/outside && ln -s /tmp/outside /workspace/dest/link")
    archive = tar_of(file_member("fine.txt", b"ok"), file_member("link/escape.txt"))
    response = upload(writer, sandbox_id, "dest", archive, "application/x-tar")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_archive"
    assert sh(api_client, sandbox_id, "ls -A /tmp/outside; readlink /workspace/dest/link") == "/tmp/outside\n"
    # .. never gets that far: the server refuses it before anything is sent
    response = upload(writer, sandbox_id, "dest", tar_of(file_member("../up.txt")), "application/x-tar")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_archive"
    assert sh(api_client, sandbox_id, "ls /workspace") == "dest\n"
