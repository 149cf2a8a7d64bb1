"""Git servers for the git tests: smart HTTP with basic auth, and SSH with key auth.

Both run as containers on a Docker network of their own; sandboxes join it through the
VIBEBOX_EXTRA_NETWORKS setting, as an operator's internal git server would be reached.
Nothing leaves the machine.

The fixtures are defined once, here, and made visible to every test by tests/conftest.py. A test
module must not import them: pytest would hold a second session-wide copy for that module, whose
set-up replaces the first copy's containers (same names, new credentials) under its tests.
"""

import contextlib
import io
import logging
import secrets
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings as django_settings

from apps.marketplace.catalog import base_image, built_in_templates

HERE = Path(__file__).parent / "gitserver"
INSTANCE = django_settings.VIBEBOX_INSTANCE
GIT_NETWORK = f"vibebox-{INSTANCE}-git"
FIXTURE_LABELS = {"vibebox.test-fixture": "git", "vibebox.test-instance": INSTANCE}
SSH_IMAGE = "vibebox-test/git-ssh:1"


def _keypair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, public


def _put(container, path: str, name: str, data: bytes, mode: int = 0o644) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))
    container.put_archive(path, buffer.getvalue())


def run_in(container, script: str, user: str = "root", env: dict | None = None) -> str:
    result = container.exec_run(["sh", "-c", script], user=user, environment=env or {})
    assert result.exit_code == 0, result.output.decode()
    return result.output.decode()


def read_in(container, script: str, user: str = "root") -> str:
    """What `script` prints (stripped), which is never empty: asked again when the engine hands back
    no output for a command that succeeded (Docker 20.10 now and then loses a quick exec's stream)."""
    for _ in range(5):
        if out := run_in(container, script, user=user).strip():
            return out
        time.sleep(0.2)
    raise AssertionError(f"{script!r} printed nothing, five times")


def start_http_git_server(
    client, image: str, *, name: str, network: str, labels: dict, user: str, token: str, hostname: str = "git-http",
    record: str | None = None,
):  # fmt: skip
    """A smart-HTTP git server (basic auth as user:token) holding seed.sh's project.git, on `network`
    as host `hostname` (port 8080); with `record`, it logs each request and its Authorization header
    to that file. Also used by the TypeScript SDK's tests."""
    http = client.containers.run(
        image,
        ["sh", "-c", "while [ ! -f /srv/ready ]; do sleep 0.1; done; exec python3 /srv/http_server.py"],
        name=name,
        hostname=hostname,
        user="root",
        detach=True,
        labels=labels,
        environment={"GIT_USER": user, "GIT_TOKEN": token, **({"RECORD_REQUESTS": record} if record else {})},
        network=network,
        working_dir="/srv",
    )
    _put(http, "/srv", "http_server.py", (HERE / "http_server.py").read_bytes())
    _put(http, "/srv", "seed.sh", (HERE / "seed.sh").read_bytes())
    run_in(http, "sh /srv/seed.sh /srv/git && touch /srv/ready")  # the server starts now
    return http


@dataclass
class GitServers:
    http: object
    ssh: object
    user: str
    token: str
    private_key: str
    other_private_key: str
    known_hosts: str

    http_url = "http://git-http:8080/project.git"
    ssh_url = "ssh://git@git-ssh/home/git/project.git"

    def token_auth(self, **extra) -> dict:
        return {"type": "token", "username": self.user, "token": self.token, **extra}

    def ssh_auth(self, **extra) -> dict:
        return {"type": "ssh", "privateKey": self.private_key, "knownHosts": self.known_hosts, **extra}

    def http_ref(self, ref: str) -> str:
        return read_in(self.http, f"git --git-dir=/srv/git/project.git rev-parse {ref}")

    def ssh_ref(self, ref: str) -> str:
        return read_in(self.ssh, f"git --git-dir=/home/git/project.git rev-parse {ref}", user="git")

    def commit_on_http_server(self, filename: str, text: str) -> str:
        script = (
            "set -e; w=$(mktemp -d); git clone -q /srv/git/project.git $w; cd $w; "
            "git config user.email server@example.test; git config user.name Server; "
            f"printf '%s' '{text}' > {filename}; git add -A; git commit -qm 'server change'; git push -q origin main"
        )
        run_in(self.http, script)
        return self.http_ref("main")


@pytest.fixture(scope="session")
def git_servers(docker_client):
    for stale in docker_client.containers.list(
        all=True, filters={"label": ["vibebox.test-fixture=git", f"vibebox.test-instance={INSTANCE}"]}
    ):
        stale.remove(force=True)
    try:
        network = docker_client.networks.get(GIT_NETWORK)
    except docker.errors.NotFound:
        network = docker_client.networks.create(GIT_NETWORK, driver="bridge", labels=FIXTURE_LABELS)
    python_image = next(s.image for s in built_in_templates() if s.name == "python-3.13")
    seed = (HERE / "seed.sh").read_bytes()

    user, token = "agent", secrets.token_urlsafe(16)
    http = start_http_git_server(
        docker_client,
        python_image,
        name=f"vibebox-{INSTANCE}-git-http",
        network=GIT_NETWORK,
        labels=FIXTURE_LABELS,
        user=user,
        token=token,
    )
    network.reload()

    docker_client.images.build(
        path=str(HERE), dockerfile="ssh.Dockerfile", tag=SSH_IMAGE, buildargs={"BASE_IMAGE": base_image()}, rm=True
    )
    private_key, public_key = _keypair()
    other_private_key, _ = _keypair()
    ssh = docker_client.containers.run(
        SSH_IMAGE,
        name=f"vibebox-{INSTANCE}-git-ssh",
        hostname="git-ssh",
        detach=True,
        labels=FIXTURE_LABELS,
        network=GIT_NETWORK,
    )
    _put(ssh, "/home/git/.ssh", "authorized_keys", (public_key + "\n").encode(), 0o600)
    _put(ssh, "/tmp", "seed.sh", seed)
    run_in(ssh, "chown git:git /home/git/.ssh/authorized_keys")
    run_in(ssh, "sh /tmp/seed.sh /home/git", user="git")
    host_key = run_in(ssh, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    known_hosts = f"git-ssh {host_key[0]} {host_key[1]}"
    servers = GitServers(http, ssh, user, token, private_key, other_private_key, known_hosts)
    yield servers
    for container in (http, ssh):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:  # seen once in a parallel run, cause not found: say so, go on
            logging.getLogger(__name__).warning("git fixture %s was already gone at teardown", container.name)
    with contextlib.suppress(docker.errors.APIError):  # a sandbox still attached: the next run reuses it
        network.remove()


@pytest.fixture
def git(git_servers, settings):
    """The git servers, with sandboxes created in this test joining their network."""
    settings.VIBEBOX_EXTRA_NETWORKS = [GIT_NETWORK]
    return git_servers


@dataclass
class RecordingServer:
    """A second HTTP git server on the git network (host `git-rec`) that takes no credential of
    the tests' and logs every request with the Authorization header it carried."""

    container: object
    url = "http://git-rec:8080/project.git"
    LOG = "/srv/requests.log"

    def requests(self) -> str:
        return run_in(self.container, f"cat {self.LOG} 2>/dev/null || true")

    def clear(self) -> None:
        run_in(self.container, f": > {self.LOG}")


@pytest.fixture(scope="session")
def recording_git_server(git_servers, docker_client):
    python_image = next(s.image for s in built_in_templates() if s.name == "python-3.13")
    container = start_http_git_server(
        docker_client,
        python_image,
        name=f"vibebox-{INSTANCE}-git-rec",
        network=GIT_NETWORK,
        labels=FIXTURE_LABELS,
        user="someone-else",
        token=secrets.token_urlsafe(16),
        hostname="git-rec",
        record=RecordingServer.LOG,
    )
    yield RecordingServer(container)
    container.remove(force=True)
