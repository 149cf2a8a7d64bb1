"""sandboxd as PID 1 of a real container, driven by the server's own client (sandboxd_client.py).

The driver makes a sandboxd container when a spec names sandboxd's volume (issue 19): sandboxd
runs as root from the read-only volume and runs commands as the template's user. These tests
hold it to that against the real engine; sandboxd's own `go test` suite (run by `make test`)
covers the daemon's internals."""

import io
import os
import secrets
import tarfile
import time

import pytest
from django.conf import settings as django_settings

from apps.marketplace.catalog import base_image, built_in_templates
from apps.sandboxes import sandboxd
from apps.sandboxes.runtime import DAEMON_BINARY, DAEMON_MOUNT, ContainerSpec, ExecRequest, get_driver, sandboxd_client
from apps.sandboxes.runtime.base import ExecControl
from apps.sandboxes.specs import base_labels, network_name
from vibebox import exceptions as errors

PYTHON = "python-3.13"


@pytest.fixture(scope="module")
def daemon_volume(built_images):
    return sandboxd.build(log=lambda line: None)


@pytest.fixture
def start_daemon(daemon_volume):
    """start(image=python-3's, user="sandbox", **spec) -> container name, removed at the end."""
    driver = get_driver()
    driver.ensure_network(network_name(), base_labels())
    names = []

    def start(image: str | None = None, user: str = "sandbox", **fields) -> str:
        name = f"vibebox-{django_settings.VIBEBOX_INSTANCE}-sbxd-{secrets.token_hex(4)}"
        names.append(name)
        spec = ContainerSpec(
            name=name,
            image=image or next(s.image for s in built_in_templates() if s.name == PYTHON),
            labels=base_labels(),
            env={"TEMPLATE_VAR": "from-the-template"},
            volume=None,
            network=network_name(),
            user=user,
            daemon_volume=daemon_volume,
            **fields,
        )
        driver.create(spec)
        assert driver.start(name).status == "running"
        return name

    yield start
    for name in names:
        driver.remove(name)


def agent(name: str) -> tuple[str, str]:
    """(address, user) of the container's daemon, as the driver sees it."""
    data = get_driver().client.api.inspect_container(name)
    address = next(n["IPAddress"] for n in data["NetworkSettings"]["Networks"].values() if n.get("IPAddress"))
    return address, data["Config"]["Labels"][sandboxd_client.USER_LABEL]


def by_daemon(name: str, argv: list[str], *, timeout: float = 30, **fields):
    """The command run by sandboxd itself, through its client: fails if the daemon cannot take it."""
    address, _ = agent(name)
    request = ExecRequest(argv=tuple(argv), exec_id=f"t{secrets.token_hex(6)}", timeout=timeout, **fields)
    deadline = time.monotonic() + 10
    while True:  # the daemon listens a moment after the container starts
        try:
            return sandboxd_client.run(address, django_settings.SECRET_KEY, name, request)
        except sandboxd_client.Unavailable:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def as_root(name: str, script: str):
    """A command as root through the driver (what a template running as root could do)."""
    request = ExecRequest(argv=("/bin/sh", "-c", script), exec_id=f"r{secrets.token_hex(6)}", user="0", timeout=30)
    return get_driver().exec(name, request)


def test_sandboxd_is_pid_1_as_root_and_runs_commands_as_the_sandbox_user(start_daemon):
    name = start_daemon()
    result = by_daemon(name, ["/bin/sh", "-c", "id -u; id -g; id -G; echo $HOME $TEMPLATE_VAR; pwd"])
    assert result.exit_code == 0, result.stderr
    uid, gid, groups, env, cwd = result.stdout.decode().splitlines()
    assert (uid, gid, groups) == ("1000", "1000", "1000")
    assert env == "/home/sandbox from-the-template"
    assert cwd == "/workspace"
    status = as_root(name, "grep -E '^(Name|Uid):' /proc/1/status; tr '\\0' ' ' < /proc/1/cmdline")
    lines = status.stdout.decode().splitlines()
    assert lines[0].split() == ["Name:", "sandboxd"]
    assert lines[1].split()[1:] == ["0", "0", "0", "0"]  # real, effective, saved, file-system uid
    assert lines[2].split() == [DAEMON_BINARY, "serve", "--user", "sandbox"]


def test_the_sandbox_user_can_neither_read_the_token_nor_replace_or_kill_sandboxd(start_daemon):
    name = start_daemon()
    script = (
        "cat /run/vibebox/token; echo read=$?; env | grep -ci token; "
        f"cp /bin/true {DAEMON_BINARY}; echo replace=$?; kill -KILL 1; echo kill=$?"
    )
    result = by_daemon(name, ["/bin/sh", "-c", script])
    out = result.stdout.decode().split()
    assert out == ["read=1", "0", "replace=1", "kill=1"], (result.stdout, result.stderr)
    # Root in the sandbox cannot either: the volume is read-only, and PID 1 takes no deadly
    # signal from inside its namespace.
    root = as_root(
        name, f"touch {DAEMON_BINARY}.new 2>&1; kill -KILL 1; kill -INT 1; kill -HUP 1; sleep 0.5; echo alive"
    )
    assert b"Read-only file system" in root.stdout and root.stdout.endswith(b"alive\n")
    assert by_daemon(name, ["true"]).exit_code == 0
    assert get_driver().inspect(name).status == "running"


def test_commands_reuse_one_greeted_connection_and_a_restart_drops_it(start_daemon):
    name = start_daemon()
    address, _ = agent(name)
    assert by_daemon(name, ["echo", "one"]).stdout == b"one\n"
    pooled = sandboxd_client._idle._idle[(address, name)][-1][0]
    for word in ("two", "three"):
        assert by_daemon(name, ["echo", word]).stdout == f"{word}\n".encode()
        assert [session for session, _ in sandboxd_client._idle._idle[(address, name)]] == [pooled]
    # A refused command (nothing ran) leaves the connection without a next nonce: not kept.
    with pytest.raises(sandboxd_client.Refused):
        by_daemon(name, ["/no/such/program"])
    assert (address, name) not in sandboxd_client._idle._idle
    assert by_daemon(name, ["true"]).exit_code == 0
    pooled = sandboxd_client._idle._idle[(address, name)][-1][0]
    # sandboxd restarts with its container: the kept connection was closed, is seen so, and dropped.
    driver = get_driver()
    driver.stop(name, timeout=5)
    assert driver.start(name).status == "running"
    assert by_daemon(name, ["echo", "after"]).stdout == b"after\n"
    address, _ = agent(name)
    assert sandboxd_client._idle._idle[(address, name)][-1][0] is not pooled


def test_an_inspect_remembers_where_sandboxd_listens(start_daemon, monkeypatch):
    """A warm create inspects its container: its first command then needs no inspect of its own."""
    name = start_daemon()
    driver = get_driver()
    # sandboxd listens a moment after its container starts: a greeting before that is looked up
    # again (an inspect), which is not what this checks. So it answers once first.
    first = ExecRequest(argv=("true",), exec_id=f"t{secrets.token_hex(6)}", timeout=30)
    assert driver.exec(name, first).exit_code == 0
    driver._daemons.pop(name, None)
    assert driver.inspect(name).status == "running"
    inspected = []
    real = driver.client.api.inspect_container
    monkeypatch.setattr(driver.client.api, "inspect_container", lambda *a, **k: inspected.append(a) or real(*a, **k))
    request = ExecRequest(argv=("echo", "hi"), exec_id=f"t{secrets.token_hex(6)}", timeout=30)
    assert driver.exec(name, request).stdout == b"hi\n"
    assert inspected == []


def test_orphans_are_reaped(start_daemon):
    name = start_daemon()
    # Each command leaves a background child that outlives it: re-parented to PID 1, which must reap it.
    for _ in range(5):
        assert by_daemon(name, ["/bin/sh", "-c", "(sleep 0.2 >/dev/null 2>&1 &) ; true"]).exit_code == 0
    time.sleep(1)
    states = by_daemon(name, ["/bin/sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null | awk '{print $3}'"])
    assert "Z" not in states.stdout.decode().split()


def test_a_timeout_ends_the_whole_process_tree(start_daemon):
    name = start_daemon()
    result = by_daemon(name, ["/bin/sh", "-c", "setsid sleep 300 & sleep 300 & sleep 300"], timeout=1)
    assert result.timed_out and result.exit_code is None
    left = by_daemon(name, ["/bin/sh", "-c", "ps -eo comm= | grep -c '^sleep$' || true"])
    assert left.stdout.decode().strip() == "0"


def test_stop_is_quick_because_sandboxd_takes_sigterm(start_daemon):
    name = start_daemon()
    by_daemon(name, ["/bin/sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
    info = get_driver().stop(name, timeout=30)
    assert info.status == "exited" and info.exit_code == 0  # not killed at the end of the 30 s


def _image_with_only(tag: str, files: dict[str, tuple[bytes, int]]) -> None:
    """A FROM-scratch image holding just `files` (path -> (data, mode))."""
    client = get_driver().client
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = "FROM scratch\n" + "".join(f"COPY {path.lstrip('/')} {path}\n" for path in files)
        for path, (data, mode) in {"Dockerfile": (dockerfile.encode(), 0o644), **files}.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, labels=base_labels())


def test_it_works_in_an_image_with_no_shell_and_no_python(start_daemon):
    """A distroless-style image: one /etc/passwd, nothing to run but what the volume brings."""
    tag = f"vibebox-test/scratch:{django_settings.VIBEBOX_INSTANCE}"
    _image_with_only(
        tag, {"/etc/passwd": (b"root:x:0:0::/root:/nologin\napp:x:4242:4242::/home/app:/nologin\n", 0o644)}
    )
    try:
        name = start_daemon(image=tag, user="app")
        result = by_daemon(name, [DAEMON_BINARY, "version"], workdir="/")
        assert result.exit_code == 0 and result.stdout.strip(), (result.stdout, result.stderr)
        # Nothing to start: the daemon refuses before running anything (422), and the driver answers
        # as a shell would.
        address, _ = agent(name)
        request = ExecRequest(argv=("/bin/sh", "-c", "true"), exec_id="t-missing", workdir="/", timeout=10)
        with pytest.raises(sandboxd_client.Refused) as refused:
            sandboxd_client.run(address, django_settings.SECRET_KEY, name, request)
        assert refused.value.status == 422 and "no such file" in refused.value.message
        result = get_driver().exec(name, request)
        assert result.exit_code == 127 and b"/bin/sh" in result.stderr and not result.timed_out
    finally:
        get_driver().image_remove(tag)


def test_file_calls_work_in_an_image_with_no_shell(start_daemon):
    """Files through sandboxd need nothing of the image: write, stat, list, read, move, tar out and
    in, delete as the image's user, in the /tmp tmpfs (the engine's archive API cannot see it);
    the user's permissions hold, and a tar that escapes is refused."""
    tag = f"vibebox-test/scratch-files:{django_settings.VIBEBOX_INSTANCE}"
    _image_with_only(tag, {"/etc/passwd": (b"root:x:0:0::/root:/nologin\napp:x:4242:4242::/tmp:/nologin\n", 0o644)})
    driver = get_driver()
    try:
        name = start_daemon(image=tag, user="app")
        by_daemon(name, [DAEMON_BINARY, "version"], workdir="/")  # it listens
        data = os.urandom(3 * 1024 * 1024 + 1)
        info = driver.file_write(name, "/tmp/d/f.bin", io.BytesIO(data), len(data), mode=0o640, timeout=30)
        assert (info.size, info.mode, info.type) == (len(data), 0o640, "file")
        entries, truncated = driver.file_list(name, "/tmp", recursive=True)
        assert [(e.path, e.type) for e in entries] == [("/tmp/d", "directory"), ("/tmp/d/f.bin", "file")]
        assert not truncated
        header, stream = driver.file_read(name, "/tmp/d/f.bin", timeout=30)
        assert header.size == len(data) and b"".join(stream) == data
        driver.file_move(name, "/tmp/d/f.bin", "/tmp/e/g.bin")
        with tarfile.open(fileobj=io.BytesIO(b"".join(driver.tar_out(name, "/tmp/e", timeout=30)))) as tar:
            assert tar.extractfile("e/g.bin").read() == data
            assert tar.getmember("e/g.bin").uid == 4242
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for entry, payload in (("x/a.txt", b"A"), ("../escape.txt", b"E")):
                member = tarfile.TarInfo(entry)
                member.size = len(payload)
                tar.addfile(member, io.BytesIO(payload))
        with pytest.raises(errors.InvalidArchive):
            driver.tar_in(name, "/tmp/in", io.BytesIO(archive.getvalue()), len(archive.getvalue()), timeout=30)
        with pytest.raises(errors.FileNotFound):
            driver.file_stat(name, "/tmp/escape.txt")
        with pytest.raises(errors.PathNotWritable):  # / is root's
            driver.file_write(name, "/evil", io.BytesIO(b"x"), 1, timeout=30)
        with pytest.raises(errors.FilePermissionDenied):
            driver.file_read(name, "/proc/1/environ", timeout=30)
        driver.file_delete(name, "/tmp/e", recursive=True)
        with pytest.raises(errors.FileNotFound):
            driver.file_stat(name, "/tmp/e")
    finally:
        driver.image_remove(tag)


def test_a_streamed_command_through_the_driver_takes_stdin_and_a_signal_sent_at_once(start_daemon):
    """Through sandboxd's /stream: output as it comes, stdin from the control, and a signal sent
    right after the start reaches the command (Docker's exec lost it: the command had not started)."""
    name = start_daemon()
    driver = get_driver()
    chunks = []
    control = ExecControl()
    try:
        control.write(b"hello stdin\n")
        control.close_stdin()
        request = ExecRequest(
            argv=("/bin/sh", "-c", "cat; echo to-err >&2"),
            exec_id=f"s{secrets.token_hex(6)}",
            timeout=30,
            on_output=lambda stream, data: chunks.append((stream, data)),
            control=control,
        )
        result = driver.exec(name, request)
    finally:
        control.close()
    assert result.exit_code == 0 and result.stdout == b"hello stdin\n" and result.stderr == b"to-err\n"
    assert b"".join(d for s, d in chunks if s == "stdout") == b"hello stdin\n"

    control = ExecControl()
    try:
        control.signal("TERM")  # before the command could have printed anything
        request = ExecRequest(
            argv=("/bin/sh", "-c", "sleep 60"), exec_id=f"s{secrets.token_hex(6)}", timeout=60, control=control
        )
        started = time.monotonic()
        result = driver.exec(name, request)
    finally:
        control.close()
    assert result.exit_code == 143 and not result.timed_out  # 128 + SIGTERM
    assert time.monotonic() - started < 30  # not run to its timeout


def test_a_background_process_lives_in_sandboxd_and_any_caller_can_attach(start_daemon):
    """Started, listed, attached from the start twice (the output kept in sandboxd, not in this
    process), signalled through an attach, and its end seen by the attacher."""
    name = start_daemon()
    by_daemon(name, ["true"])  # it listens a moment after the container starts
    address, _ = agent(name)
    secret = django_settings.SECRET_KEY
    exec_id = f"p{secret_free_id()}"
    script = "echo started; echo to-err >&2; trap 'echo got-term; exit 7' TERM; while :; do sleep 0.1; done"
    request = ExecRequest(argv=("/bin/sh", "-c", script), exec_id=exec_id, timeout=120)
    started = sandboxd_client.process_start(address, secret, name, request)
    assert started["exec_id"] == exec_id and started["pid"] > 1
    listed = {p["exec_id"]: p for p in sandboxd_client.process_list(address, secret, name)}
    assert listed[exec_id]["running"] is True and listed[exec_id]["exit_code"] is None
    with pytest.raises(sandboxd_client.Refused) as taken:
        sandboxd_client.process_start(address, secret, name, request)
    assert taken.value.status == 409

    class Detach(Exception):
        pass

    def until(text: bytes):
        seen = bytearray()

        def on_output(stream, data):
            seen.extend(data)
            if text in seen:
                raise Detach

        return on_output

    for _ in range(2):  # detaching leaves it running; the next attach replays from the start
        with pytest.raises(Detach):
            sandboxd_client.process_attach(
                address, secret, name, exec_id, start="start",
                request=ExecRequest(argv=(), exec_id=exec_id, timeout=60, on_output=until(b"to-err")),
            )  # fmt: skip
    control = ExecControl()
    try:
        control.signal("TERM")
        result, offset = sandboxd_client.process_attach(
            address, secret, name, exec_id, start="start",
            request=ExecRequest(argv=(), exec_id=exec_id, timeout=60, control=control),
        )  # fmt: skip
    finally:
        control.close()
    assert offset == 0 and result.exit_code == 7
    # TERM goes to every process of it: the shell's `sleep` too, which the shell reports.
    assert result.stdout == b"started\ngot-term\n" and result.stderr.startswith(b"to-err\n")
    listed = {p["exec_id"]: p for p in sandboxd_client.process_list(address, secret, name)}
    assert listed[exec_id]["running"] is False and listed[exec_id]["exit_code"] == 7


def secret_free_id() -> str:
    return secrets.token_hex(6)


def test_fills_of_one_volume_at_once_all_succeed(daemon_volume, docker_client):
    """A fresh server's first creates arrive together, and a web server and a worker start
    together: threads and processes may fill sandboxd's volume at the same moment. None of them
    is refused, no fill container is left, and the volume holds the daemon."""
    import subprocess
    import sys
    import threading

    from apps.sandboxes.images import base_image_build

    tag = sandboxd.image(base_image_build(log=lambda line: None))
    name = f"vibebox-{django_settings.VIBEBOX_INSTANCE}-fill-{secrets.token_hex(4)}"
    driver = get_driver()
    barrier, failures = threading.Barrier(4), []
    other = (
        "import django; django.setup(); from apps.sandboxes.runtime import get_driver;"
        f"get_driver().volume_from_image({name!r}, image={tag!r}, path={DAEMON_MOUNT!r}, labels={{}})"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vibebox.settings"}

    def fill():
        barrier.wait()
        try:
            driver.volume_from_image(name, image=tag, path=DAEMON_MOUNT, labels=base_labels())
        except Exception as exc:  # collected, asserted below
            failures.append(exc)

    try:
        processes = [subprocess.Popen([sys.executable, "-c", other], env=env, stderr=subprocess.PIPE) for _ in range(2)]
        threads = [threading.Thread(target=fill) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for process in processes:
            _, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr.decode()[-2000:]
        assert failures == []
        # The engine runs on this machine: the volume's files are under its mount point.
        mountpoint = docker_client.volumes.get(name).attrs["Mountpoint"]
        assert os.access(os.path.join(mountpoint, os.path.basename(DAEMON_BINARY)), os.X_OK)
        assert not docker_client.containers.list(all=True, filters={"name": f"{name}-fill"})
    finally:
        driver.remove_volume(name)


def test_the_current_relay_tag_follows_the_extra_ca_setting(settings, tmp_path):
    """relay_current is kept per process by the settings its digest is made from: the extra CA
    bundle's setting among them (another bundle, another relay image: a node running the other one
    is stale)."""
    settings.VIBEBOX_EXTRA_CA_CERTS = ""
    plain = sandboxd.relay_current()
    bundle = tmp_path / "extra-ca.pem"
    bundle.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot checked here\n-----END CERTIFICATE-----\n")
    settings.VIBEBOX_EXTRA_CA_CERTS = str(bundle)
    assert sandboxd.relay_current() == sandboxd.relay_image(base_image()) != plain
