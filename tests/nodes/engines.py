"""Docker engines in containers, for the nodes tests: each one a "node" reached over TCP with
mutual TLS, as a remote host would be.

The engine image is built from the Debian base image with Debian's docker.io (engine/). It runs
with `--cap-add ALL --cap-drop SYS_RESOURCE --security-opt systempaths=unconfined` (`--privileged`
is refused on this machine), on a network of its own with a fixed address, so a stopped and
started engine keeps the address its server certificate names. The certificates are made here
with `cryptography`: a CA, a server certificate for the engine's address, a client certificate.
"""

import contextlib
import datetime
import io
import ipaddress
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = Path(__file__).parent / "engine"
ENGINE_IMAGE = "vibebox-test/docker-engine:9"
ENGINE_PORT = 2376
API_VERSION = "1.41"  # Docker 20.10 (bookworm's docker.io) and later


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    encoding, private = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, private, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


@dataclass
class CertificateAuthority:
    name: str
    key: object = field(default_factory=_key)

    def __post_init__(self):
        self.cert = (
            _builder(self.name, _name(self.name), self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, server_ip: str | None = None) -> Pem:
        key = _key()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_ip else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(common_name, self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server_ip:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(server_ip))]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        return Pem(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class Engine:
    """One nested engine: its container (on the outer engine), address and TLS material."""

    container: object
    address: str
    ca: CertificateAuthority
    client_pem: Pem
    client_dir: Path  # the client's files (ca.pem, cert.pem, key.pem), as an operator has them
    verify_clients: bool = True
    started_in: float = 0.0  # seconds from `docker run` to the engine answering over TLS

    @property
    def url(self) -> str:
        return f"tcp://{self.address}:{ENGINE_PORT}"

    def write_client_files(self, directory: Path) -> dict[str, Path]:
        """The CA, client certificate and key as files (what an operator hands to addnode)."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
        paths["ca"].write_bytes(self.ca.pem)
        paths["cert"].write_bytes(self.client_pem.cert)
        paths["key"].write_bytes(self.client_pem.key)
        return paths

    def docker(self, *args: str) -> str:
        """`docker <args>` run inside the engine's container, against the nested engine."""
        code, output = self.container.exec_run(["docker", *args])
        assert code == 0, output.decode(errors="replace")
        return output.decode()

    def put_server_certificate(self, server: Pem) -> None:
        """The engine's TLS material (read by dockerd when it starts)."""
        files = {"ca.pem": self.ca.pem, "server-cert.pem": server.cert, "server-key.pem": server.key, "ready": b""}
        self.container.put_archive("/", _tar({f"certs/{k}": v for k, v in files.items()}))

    def stop(self) -> None:
        self.container.stop(timeout=10)

    def start(self) -> None:
        self.container.start()
        wait_until_answering(self)


def build_engine_image(client, base_image: str) -> str:
    client.images.build(
        path=str(HERE), dockerfile="engine.Dockerfile", tag=ENGINE_IMAGE, buildargs={"BASE_IMAGE": base_image}, rm=True
    )
    return ENGINE_IMAGE


def fixed_address_network(client, name: str, labels: dict[str, str]):
    """A bridge network with a configured subnet (the engine picks a free one first), so its
    containers can have fixed addresses."""
    probe = client.networks.create(name, driver="bridge", labels=labels)
    subnet = probe.attrs["IPAM"]["Config"][0]["Subnet"]
    probe.remove()
    pool = docker.types.IPAMPool(subnet=subnet)
    ipam = docker.types.IPAMConfig(pool_configs=[pool])
    return client.networks.create(name, driver="bridge", labels=labels, ipam=ipam)


def start_engine(
    client,
    *,
    name: str,
    network,
    address: str,
    labels: dict[str, str],
    verify_clients: bool = True,
    environment: dict[str, str] | None = None,
) -> Engine:
    """An engine at `address` on `network`; `verify_clients=False`: one that answers clients
    without a certificate (as dockerd --tls without --tlsverify does); `environment`: more for the
    entrypoint (engine/entrypoint.sh: ENGINE_ARGS, ENGINE_SUPERVISE)."""
    began = time.monotonic()
    # seccomp unconfined: the default profile refuses keyctl, and runc in the engine gives every
    # container a session keyring ("unable to join session keyring: operation not permitted").
    host_config = client.api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], security_opt=["seccomp=unconfined"], mem_limit="4g"
    )
    # Its images and containers in memory, off the host engine's filesystem: on btrfs with quotas
    # (the host's disk limits) dropping the layer of an engine full of vfs copies keeps the kernel's
    # cleaner busy for minutes and every container create on the host waits behind it. (A restart
    # empties it: the tests ship what they run each time.)
    # 3 GiB at most (pages are used only as filled, and count in the 4 GiB limit): vfs keeps a whole
    # copy of the filesystem per layer and per container, and a prepared node holds the base image,
    # sandboxd, the relay's image (base + iptables) and its sandboxes.
    host_config["Tmpfs"] = {"/var/lib/docker": "rw,exec,suid,dev,size=3g"}  # Docker mounts noexec unless told
    # `--security-opt systempaths=unconfined` is the CLI's name for these two (the API has no such option).
    host_config.update(MaskedPaths=[], ReadonlyPaths=[])
    host_config["CgroupnsMode"] = "private"  # its cgroups, mounted afresh by the entrypoint, are its own
    container = client.api.create_container(
        ENGINE_IMAGE,
        name=name,
        hostname=name,
        labels=labels,
        environment={"ENGINE_TLS_VERIFY": "1" if verify_clients else "0", **(environment or {})},
        host_config=host_config,
        networking_config=client.api.create_networking_config(
            {network.name: client.api.create_endpoint_config(ipv4_address=address)}
        ),
    )
    container = client.containers.get(container["Id"])
    ca = CertificateAuthority(f"{name} CA")
    server = ca.issue(name, server_ip=address)
    client_pem = ca.issue("vibebox-test-client")
    client_dir = Path(tempfile.mkdtemp(prefix=f"{name}-client-"))
    engine = Engine(container, address, ca, client_pem, client_dir, verify_clients=verify_clients)
    engine.put_server_certificate(server)
    container.start()
    engine.write_client_files(engine.client_dir)
    wait_until_answering(engine)
    engine.started_in = time.monotonic() - began
    return engine


def wait_until_answering(engine: Engine, timeout: float = 60.0) -> None:
    files = engine.client_dir
    # An engine that does not verify clients refuses a certificate it cannot verify: none is offered.
    pair = (str(files / "cert.pem"), str(files / "key.pem")) if engine.verify_clients else None
    tls = docker.tls.TLSConfig(client_cert=pair, ca_cert=str(files / "ca.pem"), verify=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = docker.DockerClient(base_url=engine.url, tls=tls, timeout=5, version=API_VERSION)
            client.api.trust_env = False  # else requests takes REQUESTS_CA_BUNDLE over the engine's CA
            with contextlib.closing(client):
                client.ping()
                return
        except (docker.errors.DockerException, requests.exceptions.RequestException):
            engine.container.reload()
            if engine.container.status != "running" or time.monotonic() > deadline:
                logs = engine.container.logs(tail=40).decode(errors="replace")
                raise AssertionError(f"engine {engine.container.name} did not answer:\n{logs}") from None
            time.sleep(0.2)


def ship(engine: Engine, image: str) -> None:
    """The image onto the node's engine (phase 2 does this in the product: docs/nodes.md)."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    try:
        load = ["docker", "exec", "-i", engine.container.name, "docker", "load", "-q"]
        subprocess.run(load, stdin=save.stdout, check=True, capture_output=True, timeout=300)
    finally:
        save.stdout.close()
        assert save.wait(timeout=60) == 0


def add_node(engine: Engine, name: str):
    """`engine` registered as node `name` through the service `addnode` calls (checked over TLS)."""
    from apps.sandboxes.services.nodes import node_add  # Django's: this module's engines need none

    return node_add(
        name=name,
        docker_url=engine.url,
        ca=engine.ca.pem.decode(),
        cert=engine.client_pem.cert.decode(),
        key=engine.client_pem.key.decode(),
    )


def fill_local_engine(template, *, leave: int = 0, count_used: bool = False):
    """The local engine made to look full: a row of another user ("hog") holding all its memory
    after the reserve but `leave` bytes (less what its rows hold already, with `count_used`), so
    placement picks a node. Django's, imported here (this module's engines need none)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db.models import Sum

    from apps.sandboxes.models import Sandbox
    from apps.sandboxes.runtime import get_driver
    from tests.conftest import sandbox_row

    hog, _ = get_user_model().objects.get_or_create(username="hog")
    memory = get_driver().node_engine().memory
    room = memory - int(memory * settings.VIBEBOX_NODE_MEMORY_RESERVE) - leave
    if count_used:
        room -= Sandbox.objects.filter(node=None).aggregate(total=Sum("memory"))["total"] or 0
    return sandbox_row(hog, template, name="local-hog", memory=max(room, 1))


def unprepare(engine: Engine) -> None:
    """The engine as a bare node again (its own CLI, not VibeBox's driver): every container,
    VibeBox's networks and volumes (sandboxd's, the relay's files) gone, so a test of what
    node_prepare makes does not find it made by an earlier test on the session's engines."""
    script = (
        "docker rm -f $(docker ps -aq) >/dev/null 2>&1; "
        "docker network rm $(docker network ls -q --filter label=vibebox.managed) >/dev/null 2>&1; "
        "docker volume rm $(docker volume ls -q --filter name=vibebox-) >/dev/null 2>&1; true"
    )
    engine.container.exec_run(["sh", "-c", script])


def listening(address: str, port: int = ENGINE_PORT) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=2):
        return True
    return False


def free_port() -> int:
    """A loopback port free now (for a server process a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def lan_listener(client, *, network: str, host: int, name: str, instance: str) -> Iterator[str]:
    """A listener of the test's own at the `host`-th address of the nodes' LAN (`network`), on
    ENGINE_PORT: the engine image's docker-proxy, which accepts and has no backend. Yields its
    address; removed after."""
    from tests.waiting import wait_for

    lan = client.networks.get(network)
    address = str(ipaddress.ip_network(lan.attrs["IPAM"]["Config"][0]["Subnet"])[host])
    api = client.api
    listen = (
        f"exec docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port {ENGINE_PORT}"
        " -container-ip 127.0.0.1 -container-port 9 3>/dev/null"
    )
    endpoint = api.create_endpoint_config(ipv4_address=address)
    created = api.create_container(
        ENGINE_IMAGE, name=name, entrypoint=["sh", "-c", listen],
        labels={"vibebox.test-fixture": "nodes", "vibebox.test-instance": instance},
        host_config=api.create_host_config(network_mode=lan.name),
        networking_config=api.create_networking_config({lan.name: endpoint}),
    )  # fmt: skip
    try:
        api.start(created["Id"])
        wait_for(lambda: listening(address), timeout=30, what="the LAN target")
        yield address
    finally:
        api.remove_container(created["Id"], force=True)
