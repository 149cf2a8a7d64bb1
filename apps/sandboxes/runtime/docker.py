"""The Docker Engine driver: the only module that imports `docker`.

Docker errors are translated here into application errors, so nothing above this
module ever sees a Docker type or exception.
"""

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import LogConfig, Mount

from vibebox import exceptions as errors

from . import bounded, docker_logs, firewall, firewall_remote, hardening, relay, sandboxd_client
from .base import (
    BUILD_OWNER_LABEL,
    DAEMON_BINARY,
    DAEMON_MOUNT,
    NODE_CLIENT_REFUSED,
    NODE_NOT_DOCKER,
    NODE_SERVER_NAME,
    NODE_SERVER_UNTRUSTED,
    NODE_UNREACHABLE,
    NOT_BUILD_LABELS,
    BuildFailed,
    BuildLeftover,
    BuildLimits,
    BuildLog,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EgressRules,
    EngineInfo,
    ImageDetails,
    ImageInfo,
    MeterReading,
    NodeConnection,
    NodeEngine,
    PathStat,
    RelaySpec,
)
from .pem import write_private
from .sandboxd_calls import SandboxdCalls, _file_info, _terminal_info  # noqa: F401 (tests import these from here)

logger = logging.getLogger(__name__)

METER_TIMEOUT = 10  # seconds for one metering read of the engine's stats (DockerDriver.meter)

# Storage drivers that can cap a container's writable layer with --storage-opt size (overlay2
# only on XFS mounted with project quotas: a probe tells). The size counts what the container
# writes (overlay2, btrfs with simple quotas), or its whole filesystem, image included (btrfs with
# full qgroups, zfs, devicemapper): the probe tells that too.
_DISK_LIMIT_DRIVERS = {"btrfs", "zfs", "devicemapper", "windowsfilter"}
_FREEZE_ATTEMPTS = 4
_ENGINE_INFO_TTL = 300.0
NETWORK_CREATE_SECONDS = 10.0  # how long a refused network create is retried (another process creating it)
FILL_SECONDS = 60.0  # how long a volume's fill waits for another process's fill
FILL_STARTED_LABEL = "vibebox.fill-started"
BACKUP_HELPER_IMAGE = "vibebox/backup-helper:1"  # DockerDriver._backup_helper_image
CHUNK_BYTES = 1 << 20
IMAGE_LOAD_TIMEOUT = 600  # seconds an image load may wait for the engine's answer (DockerDriver.image_load)
PROBE_LABELS = {"vibebox.probe": "disk-limit"}
PROBE_LEFT_AFTER = 300.0  # a probe container this old was left by a process killed mid-probe
BUILD_WATCH_SECONDS = 1.0  # how often a limited build's watchdog looks at its step's container
BUILD_STEP_RE = re.compile(r"^ ---> ([0-9a-f]{12,64})$")  # the legacy builder's "this step made image X"
BUILD_FROM_RE = re.compile(r"^Step \d+/\d+ : FROM[\t\v\f\r ]+(\S+)", re.IGNORECASE)  # a stage's start


CAPABILITY_XATTR = "SCHILY.xattr.security.capability"  # file capabilities, as the engine's export carries them


def privileged_file(member: tarfile.TarInfo, archive: tarfile.TarFile, found: dict[str, str]) -> None:
    """Records in `found` a regular file of an exported filesystem that has the setuid or setgid
    bit or file capabilities: path -> "<setid bits>:<size>:<sha256>[:cap=<hex>]" (so a file
    replaced by another one at the same path, or given capabilities, is a different value)."""
    capability = member.pax_headers.get(CAPABILITY_XATTR)
    if not member.isreg() or not (member.mode & 0o6000 or capability is not None):
        return
    digest = hashlib.sha256()
    source = archive.extractfile(member)
    if source is not None:
        with contextlib.closing(source):
            for block in iter(lambda: source.read(1024 * 1024), b""):
                digest.update(block)
    value = f"{member.mode & 0o6000:o}:{member.size}:{digest.hexdigest()}"
    if capability is not None:
        value += ":cap=" + capability.encode("utf-8", "surrogateescape").hex()
    found["/" + member.name.removeprefix("./").lstrip("/")] = value


def build_written(layers: list[int], running: list[int]) -> int:
    """What a limited build has written so far: the layers its finished steps committed, plus what
    the running step's container holds (each step alone may stay under the limit, the sum not)."""
    return sum(layers) + sum(running)


def build_base_refused(line: str, bases: tuple[str, ...]) -> str | None:
    """The image a `Step n/m : FROM <x>` log line names when `bases` does not approve it."""
    match = BUILD_FROM_RE.match(line)
    if not match or not bases:
        return None
    named = match.group(1)
    return None if named in bases or named.lower() in bases else named


OOM_EXIT_CODE = 137  # a step killed by SIGKILL (the memory limit's OOM killer)


def _disk_full(message: str) -> bool:
    """Whether an engine's or a command's error says the disk is full (ENOSPC, EDQUOT)."""
    text = message.lower()
    return "no space left on device" in text or "disk quota exceeded" in text


def _bridge(network: str) -> str:
    return ("vbx-" + network.removeprefix("vibebox-"))[:15]


def _ipv4_gateway(network: dict) -> str | None:
    for config in (network.get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway") and ":" not in config["Gateway"]:
            return config["Gateway"]
    return None


def _labels_filter(labels: dict[str, str]) -> dict:
    return {"label": [f"{key}={value}" for key, value in labels.items()]}


def _info_from_inspect(data: dict) -> ContainerInfo:
    state = data.get("State") or {}
    return ContainerInfo(
        id=data["Id"],
        name=data.get("Name", "").lstrip("/"),
        status=state.get("Status", "unknown"),
        labels=(data.get("Config") or {}).get("Labels") or {},
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        started_at=state.get("StartedAt"),
    )


_MODE_DIR = 1 << 31
_MODE_SYMLINK = 1 << 27


_STAT_HEADER_LIMIT = 16 * 1024  # a name (255 bytes) and a link target (4095) fit many times over


def _stat_field(stat: dict, name: str, kind: type, default):
    value = stat.get(name, default)
    if type(value) is not kind or (kind is str and len(value) > 4096) or (kind is int and not 0 <= value < 1 << 63):
        raise errors.RuntimeFailure(f"the engine's stat of a path has an invalid {name}", details={"reason": "stat"})
    return value


def _path_stat_from_dict(stat: dict) -> PathStat:
    """The engine's stat of a path in the container; names and link targets come from the sandbox,
    so every field is checked for type and range."""
    mode = _stat_field(stat, "mode", int, 0)
    return PathStat(
        name=_stat_field(stat, "name", str, ""),
        size=_stat_field(stat, "size", int, 0),
        is_dir=bool(mode & _MODE_DIR),
        is_symlink=bool(mode & _MODE_SYMLINK),
        mode=mode & 0o7777,
        modified_at=_stat_field(stat, "mtime", str, ""),
        link_target=_stat_field(stat, "linkTarget", str, ""),
    )


def _path_stat(header: str) -> PathStat:
    try:
        stat = bounded.loads(base64.b64decode(header, validate=True), max_bytes=_STAT_HEADER_LIMIT) if header else {}
    except ValueError:  # binascii.Error is one too
        raise errors.RuntimeFailure("the engine's stat of a path is not valid", details={"reason": "stat"}) from None
    if not isinstance(stat, dict):
        raise errors.RuntimeFailure("the engine's stat of a path is not an object", details={"reason": "stat"})
    return _path_stat_from_dict(stat)


def _archive_chunks(response) -> Iterator[bytes]:
    """The archive's bytes; the HTTP response is closed when this generator ends or is closed,
    because an open archive stream blocks other operations on the container."""
    try:
        yield from response.raw.stream(1024 * 1024, decode_content=False)
    except (requests.exceptions.RequestException, DockerException, OSError) as exc:
        raise errors.RuntimeFailure(f"reading from the container failed: {exc}"[:300]) from None
    finally:
        response.close()


def _cpu_times(sample: dict) -> tuple[int, int]:
    cpu = sample.get("cpu_stats") or {}
    return int((cpu.get("cpu_usage") or {}).get("total_usage") or 0), int(cpu.get("system_cpu_usage") or 0)


def _resident(memory: dict) -> int:
    """Memory in use without the page cache the kernel can reclaim (cgroup v1:
    total_inactive_file, v2: inactive_file), as `docker stats` shows it."""
    details = memory.get("stats") or {}
    cache = details.get("total_inactive_file", details.get("inactive_file", 0)) or 0
    return max(0, int(memory.get("usage") or 0) - int(cache))


def _meter_reading(sample: dict) -> MeterReading:
    """The cumulative counters of one sample of the engine's stats API."""
    networks = (sample.get("networks") or {}).values()
    return MeterReading(
        cpu_ns=_cpu_times(sample)[0],
        memory_bytes=_resident(sample.get("memory_stats") or {}),
        net_rx_bytes=sum(int(n.get("rx_bytes") or 0) for n in networks),
        net_tx_bytes=sum(int(n.get("tx_bytes") or 0) for n in networks),
    )


def _stats(first: dict, second: dict) -> ContainerStats:
    """The numbers `docker stats` shows, from two samples of the engine's stats API."""
    cpu = second.get("cpu_stats") or {}
    online = int(cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1)
    (used_before, system_before), (used, system) = _cpu_times(first), _cpu_times(second)
    percent = None
    if system > system_before and used >= used_before:
        percent = round((used - used_before) / (system - system_before) * online * 100.0, 2)
    memory = second.get("memory_stats") or {}
    usage = _resident(memory)
    pids = second.get("pids_stats") or {}
    limit = pids.get("limit")
    return ContainerStats(
        cpu_percent=percent,
        online_cpus=online,
        memory_usage=usage,
        memory_limit=int(memory.get("limit") or 0),
        pids=int(pids.get("current") or 0),
        pids_limit=int(limit) if limit and limit < 2**62 else None,
    )


def _daemon_address(data: dict) -> str:
    """Where a running container's sandboxd listens. A container that is not running answers 409
    sandbox_not_running; one made before sandboxd (no sandboxd label: it has none) 409
    sandbox_outdated, since nothing else can run commands or file operations in it."""
    state = data.get("State") or {}
    if state.get("Paused"):
        raise errors.SandboxPaused(details={"status": "paused"})
    if not state.get("Running"):
        raise errors.SandboxNotRunning(
            "The sandbox's container is not running.", details={"status": state.get("Status", "unknown")}
        )
    if sandboxd_client.USER_LABEL not in ((data.get("Config") or {}).get("Labels") or {}):
        raise errors.SandboxOutdated()
    networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
    address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
    if address is None:
        raise errors.RuntimeFailure(
            "The sandbox has no address on its network.", details={"reason": "sandboxd_unreachable"}
        )
    return address


NODE_API_VERSION = "1.41"  # the API version spoken to a node's engine: Docker 20.10 and later


def node_failure_reason(text: str) -> str:
    """Which NODE_* reason a failed connection to a node's engine is, from the error's text (the
    TLS library says it only there)."""
    lowered = text.lower()
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        if "mismatch" in lowered or "doesn't match" in lowered:
            return NODE_SERVER_NAME
        return NODE_SERVER_UNTRUSTED
    refused_client = ("certificate required", "certificate_required", "bad certificate", "bad_certificate")
    if any(marker in lowered for marker in (*refused_client, "unknown ca", "unknown_ca")):
        return NODE_CLIENT_REFUSED
    if "wrong version number" in lowered or "record layer failure" in lowered:
        return NODE_NOT_DOCKER  # something answers, not with TLS
    return NODE_UNREACHABLE


_NODE_MESSAGES = {
    NODE_UNREACHABLE: "The node's engine cannot be reached at {url}",
    NODE_SERVER_UNTRUSTED: "The node's engine at {url} has a certificate the given CA did not sign (--tlscacert)",
    NODE_SERVER_NAME: "The node's engine certificate does not name the address of {url}",
    NODE_CLIENT_REFUSED: "The node's engine at {url} refused the client certificate (--tlscert, --tlskey)",
    NODE_NOT_DOCKER: "What answers at {url} is not a Docker engine speaking TLS",
}


RELAY_CONFIG_LABEL = "vibebox.relay-config"  # a digest of the relay's image id, arguments and files
RELAY_BASE_LABEL = "vibebox.relay-base"  # the same but the files (which a reload changes: relay_ensure)


def _private_tar(files: dict[str, bytes]) -> bytes:
    """Files owned by root, readable by root only."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o400, 0, 0
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


class DockerDriver(SandboxdCalls):
    def __init__(
        self,
        base_url: str | None = None,
        timeout: int = 120,
        secret: str = "",
        node: NodeConnection | None = None,
        firewall_runner: firewall.Runner | None = None,
    ):
        self._base_url = node.url if node is not None else base_url
        self._node = node  # a registered node's engine (mutual TLS), else the local one
        # Where its bridges' iptables rules run: this host for the local engine; a node's relay
        # (firewall_remote.RelayRunner) for a node, and never this host for a node with no relay.
        # A node's relay: one TLS context for the driver's tunnels and its firewall runner.
        self._relay_context = relay.node_context(node) if node is not None and node.relay_ca else None
        if firewall_runner is None and self._relay_context is not None:
            firewall_runner = firewall_remote.runner_for_node(
                node, name=urlsplit(node.url).netloc, context=self._relay_context
            )
        self._firewall = firewall_runner or (firewall.LOCAL if node is None else firewall.NONE)
        self._timeout = timeout
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._networks: dict[str, dict[str, str]] = {}  # networks ensured -> their labels
        self._network_lock = threading.Lock()  # one create at a time in this process
        self._fill_lock = threading.Lock()  # one volume fill at a time in this process
        self._secret = secret  # each container's sandboxd token derives from it
        self._daemons: dict[str, str | sandboxd_client.Relayed] = {}  # container name -> its sandboxd's address
        self._engine_info: tuple[float, EngineInfo] | None = None
        self._engine_info_refreshing = threading.Lock()  # held while a background look runs
        # A process's first look, one at a time: concurrent first creates wait for one probe rather
        # than each probing (a burst of distinct engine URLs overflowed docker-py's per-URL pool
        # cache, whose eviction closed a pool a request was still reading: a 500 under load).
        self._engine_info_first = threading.Lock()
        self._disk_counts_image = False  # the engine's size limit counts the image too

    # ---- connection and error translation ----

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            with self._lock, self._engine():
                if self._client is None:
                    if self._node is not None:
                        self._client = self._node_client(self._node)
                    elif self._base_url:
                        self._client = docker.DockerClient(base_url=self._base_url, timeout=self._timeout)
                    else:
                        self._client = docker.from_env(timeout=self._timeout)
        return self._client

    def _node_client(self, node: NodeConnection) -> docker.DockerClient:
        """A client of a node's engine over TCP with mutual TLS. docker-py's TLSConfig takes files:
        the PEMs go to a private directory (0700, files 0600) removed with the driver."""
        directory = tempfile.mkdtemp(prefix="vibebox-node-")
        weakref.finalize(self, shutil.rmtree, directory, True)
        ca = os.path.join(directory, "ca.pem")
        write_private(ca, node.ca)
        pair = None
        if node.cert and node.key:
            pair = (os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
            write_private(pair[0], node.cert)
            write_private(pair[1], node.key)
        tls = docker.tls.TLSConfig(client_cert=pair, ca_cert=ca, verify=True)
        client = docker.DockerClient(base_url=node.url, tls=tls, timeout=self._timeout, version=NODE_API_VERSION)
        # requests would take REQUESTS_CA_BUNDLE (or a proxy) from the environment over the node's CA.
        client.api.trust_env = False
        return client

    def close(self) -> None:
        """Closes the engine connection (a node's driver that is replaced or no longer used)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @contextlib.contextmanager
    def _engine(self):
        if self._node is not None:
            with self._node_engine_errors():
                yield
            return
        try:
            yield
        except errors.ApplicationError:
            raise
        except (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError) as exc:
            raise errors.RuntimeUnavailable(details={"reason": str(exc)[:300]}) from None
        except APIError as exc:
            raise errors.RuntimeFailure(str(exc.explanation or exc)[:500]) from None
        except DockerException as exc:
            if "Error while fetching server API version" in str(exc):
                raise errors.RuntimeUnavailable(details={"reason": str(exc)[:300]}) from None
            raise errors.RuntimeFailure(str(exc)[:500]) from None
        except requests.exceptions.RequestException as exc:
            raise errors.RuntimeUnavailable(details={"reason": str(exc)[:300]}) from None

    @contextlib.contextmanager
    def _node_engine_errors(self):
        """A node's engine errors: a connection that fails says why (NODE_* reasons), so an
        operator can tell a wrong CA from a refused client certificate from a host that is away."""
        try:
            yield
        except errors.ApplicationError:
            raise
        except APIError as exc:  # the engine answered (an HTTPError: before RequestException)
            raise errors.RuntimeFailure(str(exc.explanation or exc)[:500]) from None
        except (requests.exceptions.RequestException, ConnectionError, OSError, DockerException) as exc:
            reason = node_failure_reason(str(exc))
            url = self._node.url if self._node else ""
            raise errors.RuntimeUnavailable(
                _NODE_MESSAGES[reason].format(url=url) + ".",
                details={"reason": reason, "node": url, "error": str(exc)[:300]},
            ) from None

    def ping(self) -> None:
        with self._engine():
            self.client.ping()

    def node_engine(self) -> NodeEngine:
        with self._engine():
            try:
                info, version = self.client.info(), self.client.version()
                return NodeEngine(
                    version=str(info["ServerVersion"]),
                    api_version=str(version["ApiVersion"]),
                    memory=int(info["MemTotal"]),
                    cpus=int(info["NCPU"]),
                    os=str(info.get("OperatingSystem", "")),
                    arch=str(info.get("Architecture", "")),
                    storage_driver=str(info.get("Driver", "")),
                )
            except (KeyError, TypeError, ValueError, requests.exceptions.JSONDecodeError) as exc:
                url = self._base_url or ""
                raise errors.RuntimeUnavailable(
                    _NODE_MESSAGES[NODE_NOT_DOCKER].format(url=url) + ".",
                    details={"reason": NODE_NOT_DOCKER, "node": url, "error": str(exc)[:300]},
                ) from None

    def engine_info(self) -> EngineInfo:
        """The engine's version and storage driver, and whether it enforces disk limits (found
        out once by creating, not starting, a container with one). Kept for a few minutes, then
        looked at again in the background: only a process's first look waits (a create pays a
        probe's create and remove once per process, not every few minutes)."""
        cached = self._engine_info
        if cached is None:
            with self._engine_info_first:
                cached = self._engine_info
                if cached is None:
                    return self._look_at_engine(first=True)
        if time.monotonic() - cached[0] >= _ENGINE_INFO_TTL:
            self._look_at_engine_soon()
        return cached[1]

    def _look_at_engine_soon(self) -> None:
        if not self._engine_info_refreshing.acquire(blocking=False):
            return  # one look at a time

        def look() -> None:
            try:
                self._look_at_engine(first=False)
            except Exception as exc:  # the engine away: the next call after the TTL looks again
                logger.warning("could not look at the engine again: %s", exc)
            finally:
                self._engine_info_refreshing.release()

        threading.Thread(target=look, daemon=True, name="engine-info").start()

    def _look_at_engine(self, *, first: bool) -> EngineInfo:
        with self._engine():
            info = self.client.info()
            storage = info.get("Driver", "")
            backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem", "")
            candidate = storage in _DISK_LIMIT_DRIVERS or (storage == "overlay2" and backing == "xfs")
            supports = candidate and self._probe_disk_limit()
        result = EngineInfo(version=info.get("ServerVersion", ""), storage_driver=storage, supports_disk_limit=supports)
        if supports is not None:
            self._engine_info = (time.monotonic(), result)
        if first and not supports:
            logger.warning(
                "disk limits are off: the engine's storage (%s on %s) cannot limit a container's size "
                "(docs/operations.md, Disk limits); sandboxes get no disk size unless one is asked for, "
                "which is refused (disk_limit_unsupported)",
                storage,
                backing or "?",
            )
        return EngineInfo(result.version, result.storage_driver, bool(supports))

    def _probe_disk_limit(self) -> bool | None:
        """Creates (never starts) containers with a size limit; None: no image to try with. A
        limit of half the largest image works where only the container's writes count."""
        images = sorted(
            (image for image in self.client.api.images() if image.get("RepoTags")),
            key=lambda image: int(image.get("Size") or 0),
        )
        if not images:
            return None
        self._remove_left_probes()
        image, size = images[-1]["Id"], int(images[-1].get("Size") or 0)
        if self._create_sized(image, max(1024**2, size // 2)):
            self._disk_counts_image = False
            return True
        if self._create_sized(image, size + 1024**3):
            self._disk_counts_image = True
            return True
        return False

    def _create_sized(self, image: str, size: int) -> bool:
        try:
            created = self.client.api.create_container(
                image,
                command=["true"],
                network_disabled=True,
                labels=PROBE_LABELS,
                host_config=self.client.api.create_host_config(storage_opt={"size": str(size)}),
            )
        except APIError as exc:
            logger.info("disk limit probe (%d bytes): %s", size, exc.explanation or exc)
            return False
        # The answer is in: the probe goes in the background (an engine's remove takes a good part
        # of a second; a process killed before it is done leaves one for _remove_left_probes).
        threading.Thread(target=self._remove_probe, args=(created["Id"],), daemon=True, name="probe-remove").start()
        return True

    def _remove_probe(self, container_id: str) -> None:
        try:
            with contextlib.suppress(NotFound):  # (another process's sweep took it)
                self.client.api.remove_container(container_id, force=True)
        except Exception as exc:  # the next probe removes it once PROBE_LEFT_AFTER old
            logger.warning("could not remove the disk-limit probe container %s: %s", container_id[:12], exc)

    def _remove_left_probes(self) -> None:
        """Probe containers carry no sandbox or instance label, so neither reconcile nor a test
        sweep sees them: a process killed between a probe's create and its remove leaves one in
        `Created` for good. Each probe removes those older than PROBE_LEFT_AFTER."""
        left_before = time.time() - PROBE_LEFT_AFTER
        for row in self.client.api.containers(all=True, filters=_labels_filter(PROBE_LABELS)):
            if int(row.get("Created") or 0) < left_before:
                with contextlib.suppress(NotFound):
                    self.client.api.remove_container(row["Id"], force=True)
                logger.info("removed a disk-limit probe container left by a killed process: %s", row["Id"][:12])

    def _layer_size(self, spec: ContainerSpec) -> int:
        """--storage-opt size for `spec.disk` bytes of the sandbox's own writes."""
        self.engine_info()  # (probed)
        if not self._disk_counts_image:
            return spec.disk
        return spec.disk + int(self.client.api.inspect_image(spec.image).get("Size") or 0)

    # ---- containers ----

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        with self._engine():
            if spec.volume:
                self.client.volumes.create(name=spec.volume, labels=spec.labels)
            mounts = [Mount(target="/workspace", source=spec.volume, type="volume")] if spec.volume else []
            # sandboxd is PID 1, as root, from a read-only volume (never part of the image or a
            # snapshot); it runs every command as the template's user, else the image's.
            run_as = spec.user or self._image_user(spec.image)
            mounts.append(
                Mount(target=DAEMON_MOUNT, source=spec.daemon_volume, type="volume", read_only=True, no_copy=True)
            )
            kwargs = dict(
                image=spec.image,
                command=[DAEMON_BINARY, "serve", *(("--user", run_as) if run_as else ())],
                name=spec.name,
                hostname=spec.hostname,
                user=f"{hardening.RUN_AS_UID}:{hardening.RUN_AS_GID}",
                working_dir=spec.workdir,
                environment=spec.env,
                labels={**spec.labels, sandboxd_client.USER_LABEL: run_as},
                detach=True,
                init=False,  # sandboxd reaps zombies itself
                cap_drop=list(hardening.DROP_CAPABILITIES),
                cap_add=hardening.capabilities(spec),
                security_opt=[f"no-new-privileges:{str(hardening.NO_NEW_PRIVILEGES).lower()}"],
                read_only=hardening.READ_ONLY_ROOT,
                privileged=hardening.PRIVILEGED,
                pids_limit=spec.pids_limit,
                mem_limit=spec.memory,
                memswap_limit=spec.memory,
                nano_cpus=int(spec.cpu * 1e9),
                tmpfs={hardening.TMPFS_PATH: f"{hardening.TMPFS_OPTIONS},size={spec.tmpfs_size}"},
                log_config=LogConfig(
                    type="local", config={"max-size": spec.log_max_size, "max-file": str(spec.log_max_files)}
                ),
                mounts=mounts,
                network=spec.network,
                runtime=spec.runtime,
                ipc_mode="private" if hardening.PRIVATE_IPC else None,
            )
            try:
                if spec.disk:
                    kwargs["storage_opt"] = {"size": str(self._layer_size(spec))}
                container = self._again_if_network_gone(
                    lambda: self.client.containers.create(**kwargs), lambda: [spec.network]
                )
            except ImageNotFound:
                raise errors.TemplateUnavailable(details={"image": spec.image}) from None
            except APIError as exc:
                if "storage-opt" in str(exc.explanation or "") or "storage opt" in str(exc.explanation or ""):
                    raise errors.DiskLimitUnsupported() from None
                raise
            for network in spec.extra_networks:
                self.client.api.connect_container_to_network(container.id, network)
            # Its token and name, before it starts (a one-off of the archive API, not an exec).
            self.client.api.put_archive(container.id, "/", sandboxd_client.bundle(self._secret, spec.name))
            return _info_from_inspect(container.attrs)

    def _image_user(self, image: str) -> str:
        try:
            return (self.client.api.inspect_image(image).get("Config") or {}).get("User") or ""
        except (ImageNotFound, NotFound):
            raise errors.TemplateUnavailable(details={"image": image}) from None

    def _again_if_network_gone(self, call, networks):
        """`call()`; if the engine answers that a network is not found and it is one this driver
        ensured (`networks()`: the ones the call uses), the network was removed behind our back
        (`docker network prune` while no sandbox was attached): it is ensured again and the call
        made once more, instead of every create failing until the process restarts."""
        try:
            return call()
        except NotFound as exc:
            if "network" not in str(exc.explanation or "").lower():
                raise
            gone = [(name, self._networks.pop(name)) for name in networks() if name in self._networks]
            if not gone:
                raise
        for name, labels in gone:
            logger.warning("network %s was removed behind our back; creating it again", name)
            self.ensure_network(name, labels)
        return call()

    def _networks_of(self, container: str) -> list[str]:
        data = self.client.api.inspect_container(container)
        attached = (data.get("NetworkSettings") or {}).get("Networks") or {}
        return [(data.get("HostConfig") or {}).get("NetworkMode") or "", *attached]

    def _inspect_remembering(self, name: str) -> ContainerInfo:
        """Inspects a container and remembers where its sandboxd listens, if it runs: the next call
        to it (a warm create's first command) needs no inspect of its own. A stale address costs
        nothing: the greeting fails and it is looked up again."""
        data = self.client.api.inspect_container(name)
        self._daemons.pop(name, None)
        with contextlib.suppress(errors.ApplicationError):  # none: looked up (and refused) when used
            self._daemons[name] = self._reach(_daemon_address(data))
        return _info_from_inspect(data)

    def start(self, name: str) -> ContainerInfo:
        with self._engine():
            self._again_if_network_gone(lambda: self.client.api.start(name), lambda: self._networks_of(name))
            return self._inspect_remembering(name)

    def stop(self, name: str, timeout: int) -> ContainerInfo:
        with self._engine():
            self._daemons.pop(name, None)
            self.client.api.stop(name, timeout=timeout)
            return _info_from_inspect(self.client.api.inspect_container(name))

    def restart(self, name: str, timeout: int) -> ContainerInfo:
        with self._engine():
            self._again_if_network_gone(
                lambda: self.client.api.restart(name, timeout=timeout), lambda: self._networks_of(name)
            )
            return self._inspect_remembering(name)

    def remove(self, name: str, *, volume: str | None = None) -> None:
        self._daemons.pop(name, None)
        with self._engine(), contextlib.suppress(NotFound):
            self.client.api.remove_container(name, force=True, v=False)
        if volume:
            self.remove_volume(volume)

    def rename(self, name: str, new_name: str) -> None:
        # sandboxd's address is looked up again under either name.
        self._daemons.pop(name, None)
        self._daemons.pop(new_name, None)
        with self._engine():
            self.client.api.rename(name, new_name)

    def inspect(self, name: str) -> ContainerInfo | None:
        with self._engine():
            try:
                return self._inspect_remembering(name)
            except NotFound:
                self._daemons.pop(name, None)
                return None

    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        with self._engine():
            rows = self.client.api.containers(all=True, filters=_labels_filter(labels))
        return [
            ContainerInfo(
                id=row["Id"],
                name=(row.get("Names") or ["/"])[0].lstrip("/"),
                status=row.get("State", "unknown"),
                labels=row.get("Labels") or {},
            )
            for row in rows
        ]

    def pause(self, name: str) -> None:
        # The cgroup freezer gives up ("unable to freeze") when a process is busy in the kernel at
        # that moment, and thaws everything again: a later try usually succeeds.
        for attempt in range(_FREEZE_ATTEMPTS):
            try:
                with self._engine():
                    self.client.api.pause(name)
                return
            except errors.RuntimeFailure as exc:
                if "unable to freeze" not in exc.message or attempt == _FREEZE_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def unpause(self, name: str) -> None:
        with self._engine():
            self.client.api.unpause(name)

    def stats(self, name: str, *, interval: float = 0.25) -> ContainerStats:
        """Two one-shot samples `interval` apart (the engine's own two-sample read takes ~2 s):
        CPU use is their difference, memory and processes the second sample."""
        with self._engine():
            try:
                first = self.client.api.stats(name, stream=False, one_shot=True)
                time.sleep(interval)
                second = self.client.api.stats(name, stream=False, one_shot=True)
            except NotFound:
                raise errors.SandboxNotFound("The sandbox's container is gone.") from None
        return _stats(first, second)

    def meter(self, name: str) -> MeterReading:
        """One one-shot read of the engine's stats (no second sample, no wait): the cumulative
        counters metering differences itself. It answers in milliseconds; an engine that does
        not answer within METER_TIMEOUT (or the driver's timeout, if shorter) fails the read
        rather than hold up the lifecycle call it precedes for the whole driver timeout."""
        api = self.client.api
        with self._engine():
            try:
                url = api._url("/containers/{0}/stats", name)
                params = {"stream": False, "one-shot": True}
                timeout = min(METER_TIMEOUT, self._timeout or METER_TIMEOUT)
                sample = api._result(api._get(url, params=params, timeout=timeout), json=True)
            except NotFound:
                raise errors.SandboxNotFound("The sandbox's container is gone.") from None
        return _meter_reading(sample)

    def _daemon(self, name: str) -> str:
        """Where the container's sandboxd listens, cached per process (errors: _daemon_address)."""
        address = self._daemons.get(name)
        if address is None:
            try:
                data = self.client.api.inspect_container(name)
            except NotFound:
                raise errors.SandboxNotRunning(
                    "The sandbox's container is gone.", details={"status": "missing"}
                ) from None
            address = self._daemons[name] = self._reach(_daemon_address(data))
        return address

    def _reach(self, address: str) -> "str | sandboxd_client.Relayed":
        """How this driver reaches a sandboxd at `address` (on the engine's bridge): the address
        itself on the local engine; on a node, through the node's relay (docs/nodes.md), with the
        driver's one TLS context."""
        node = self._node
        if node is None:
            return address
        if not node.relay_ca:
            raise errors.RuntimeFailure(
                "The node has no relay yet: prepare it (manage.py shipimage NODE --sandboxd).",
                details={"reason": "node_no_relay"},  # no node address: callers are tenants
            )
        host = urlsplit(node.url).hostname or ""
        return sandboxd_client.Relayed(address, (host, node.relay_port), node.url, self._relay_context)

    def logs(self, name: str, *, stream: str, since: float | None, tail: int | None, follow: bool):
        with self._engine():
            api = self.client.api
            params = {
                "stdout": stream == "stdout",
                "stderr": stream == "stderr",
                "timestamps": True,
                "follow": follow,
                "tail": "all" if tail is None else str(tail),
            }
            if since:
                params["since"] = f"{since:.3f}"
            response = api._get(
                api._url("/containers/{0}/logs", name),
                params=params,
                stream=True,
                timeout=None if follow else self._timeout,  # a followed log may be quiet for hours
            )
            if response.status_code == 404:
                response.close()
                raise errors.SandboxNotFound("The sandbox's container is gone.")
            api._raise_for_status(response)
        return docker_logs.LogStream(response)

    # ---- files of a stopped sandbox (the engine's archive API), workspace archives of snapshots ----

    def path_stat(self, name: str, path: str) -> PathStat | None:
        with self._engine():
            api = self.client.api
            response = api.head(api._url("/containers/{0}/archive", name), params={"path": path})
            if response.status_code == 404:
                return None
            api._raise_for_status(response)
            return _path_stat(response.headers.get("X-Docker-Container-Path-Stat", ""))

    def get_archive(self, name: str, path: str) -> tuple[Iterator[bytes], PathStat]:
        """A tar stream of `path`; close the iterator (or read it to the end) to release the engine."""
        with self._engine():
            api = self.client.api
            response = api._get(
                api._url("/containers/{0}/archive", name),
                params={"path": path},
                headers={"Accept-Encoding": "identity"},  # else the engine gzips it
                stream=True,
            )
            if response.status_code == 404:
                response.close()
                raise errors.FileNotFound(details={"path": path})
            api._raise_for_status(response)
        stat = _path_stat(response.headers.get("X-Docker-Container-Path-Stat", ""))
        return _archive_chunks(response), stat

    def put_archive(self, name: str, path: str, data: Iterable[bytes]) -> None:
        with self._engine():
            try:
                self.client.api.put_archive(name, path, data)
            except NotFound:
                raise errors.FileNotFound(details={"path": path}) from None
            except APIError as exc:
                if _disk_full(str(exc.explanation or exc)):  # the container's disk limit, or its volume's disk
                    raise errors.DiskFull(details={"path": path}) from None
                raise

    # ---- volumes and networks ----

    def list_volumes(self, labels: dict[str, str]) -> list[str]:
        with self._engine():
            data = self.client.api.volumes(filters=_labels_filter(labels))
        return [volume["Name"] for volume in (data.get("Volumes") or [])]

    def volume_from_image(self, volume: str, *, image: str, path: str, labels: dict[str, str]) -> None:
        """Volume `volume` holding what `image` has at `path`. The engine fills an empty volume
        from the image when a container of that image mounts it there, so this creates such a
        container and removes it: idempotent, and it completes a volume left empty by a process
        killed between the two steps (a filled volume is left as it is)."""
        name = f"{volume}-fill"
        deadline = time.monotonic() + FILL_SECONDS
        with self._fill_lock, self._engine():
            self.client.volumes.create(name=volume, labels=labels)
            while True:
                try:
                    self.client.api.create_container(
                        image,
                        command=["fill"],  # never started: the image may have no command
                        name=name,
                        labels={**labels, FILL_STARTED_LABEL: str(time.time())},
                        host_config=self.client.api.create_host_config(
                            mounts=[Mount(target=path, source=volume, type="volume")], network_mode="none"
                        ),
                    )
                    break
                except APIError as exc:
                    if exc.status_code != 409 or time.monotonic() > deadline:
                        raise
                self._fill_taken(name)
            with contextlib.suppress(NotFound):
                self.client.api.remove_container(name, force=True)

    def _fill_taken(self, name: str) -> None:
        """The fill container's name is taken: by another process filling the volume now (it
        removes its container in a moment: wait for it), or left by one killed before it could
        (older than FILL_SECONDS: remove it)."""
        try:
            data = self.client.api.inspect_container(name)
        except NotFound:
            return
        started = float(((data.get("Config") or {}).get("Labels") or {}).get(FILL_STARTED_LABEL) or 0)
        if time.time() - started > FILL_SECONDS:
            with contextlib.suppress(NotFound):
                self.client.api.remove_container(name, force=True)
        else:
            time.sleep(0.2)

    def remove_volume(self, name: str) -> None:
        with self._engine(), contextlib.suppress(NotFound):
            self.client.api.remove_volume(name, force=True)

    # ---- backups: volumes as tar files, through a helper container never started ----

    def _backup_helper_image(self) -> str:
        """A tiny image of its own (one empty /workspace directory, made with `docker import`) for
        the helper containers: a volume is read and written without any template image."""
        if not self.image_exists(BACKUP_HELPER_IMAGE):
            layer = io.BytesIO()
            with tarfile.open(fileobj=layer, mode="w") as archive:
                entry = tarfile.TarInfo("workspace")
                entry.type, entry.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(entry)
            repository, _, tag = BACKUP_HELPER_IMAGE.rpartition(":")
            with self._engine():
                self.client.api.import_image_from_data(layer.getvalue(), repository=repository, tag=tag)
        return BACKUP_HELPER_IMAGE

    @contextlib.contextmanager
    def _volume_helper(self, volume: str, labels: dict[str, str]) -> Iterator[str]:
        """A created (never started) container with `volume` at /workspace; removed afterwards."""
        image = self._backup_helper_image()
        name = f"{volume}-backup"
        with self._engine():
            with contextlib.suppress(NotFound):
                self.client.api.remove_container(name, force=True)  # left by a process killed mid-way
            self.client.api.create_container(
                image,
                command=["backup"],  # never started
                name=name,
                labels=labels,
                host_config=self.client.api.create_host_config(
                    mounts=[Mount(target="/workspace", source=volume, type="volume", no_copy=True)],
                    network_mode="none",
                ),
            )
        try:
            yield name
        finally:
            with self._engine(), contextlib.suppress(NotFound):
                self.client.api.remove_container(name, force=True)

    def volume_exists(self, volume: str) -> bool:
        with self._engine():
            try:
                self.client.api.inspect_volume(volume)
                return True
            except NotFound:
                return False

    def volume_export(self, volume: str, target) -> int:
        if not self.volume_exists(volume):
            raise errors.RuntimeFailure(f"No volume {volume} in the engine.")
        with self._engine():
            labels = self.client.api.inspect_volume(volume).get("Labels") or {}
        with self._volume_helper(volume, labels) as helper:
            chunks, _ = self.get_archive(helper, "/workspace")
            size = 0
            with open(target, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    size += len(chunk)
        return size

    def volume_import(self, volume: str, source, *, labels: dict[str, str], replace: bool = False) -> None:
        with self._engine():
            if replace:
                with contextlib.suppress(NotFound):
                    self.client.api.remove_volume(volume, force=True)
            self.client.volumes.create(name=volume, labels=labels)
        with self._volume_helper(volume, labels) as helper, open(source, "rb") as data:
            self.put_archive(helper, "/", iter(lambda: data.read(CHUNK_BYTES), b""))

    def image_save(self, tag: str) -> Iterator[bytes]:
        """The image as a `docker save` tar (GET /images/{name}/get), in chunks of at most
        CHUNK_BYTES read as they arrive: never held whole. The request is made here (a missing
        image fails now); iterate to the end, or close the iterator, to let the connection go."""
        api = self.client.api
        with self._engine():
            response = api._get(api._url("/images/{0}/get", tag), stream=True)
            if response.status_code == 404:
                response.close()
                raise errors.RuntimeFailure(f"No image {tag} in the engine.")
            try:
                api._raise_for_status(response)
            except BaseException:
                response.close()
                raise
        return self._image_chunks(response)

    def _image_chunks(self, response) -> Iterator[bytes]:
        try:
            with self._engine():
                yield from response.iter_content(CHUNK_BYTES)
        finally:
            response.close()

    def image_load(self, chunks: Iterable[bytes]) -> list[str]:
        """Loads a `docker save` tar (POST /images/load), sent as it is read from `chunks`
        (chunked transfer encoding: never held whole). Answers what the engine says it loaded
        ("name:tag", or an image id for an untagged one). An error the engine reports in its
        progress stream (a broken tar) is a RuntimeFailure; an error raised by `chunks` (its source
        engine failing) passes through, and cuts the engine's tar short."""
        api = self.client.api
        loaded: list[str] = []
        with self._engine():
            # The engine answers once it has read the whole tar and registered its layers, which
            # can take longer than the driver's timeout on a big image.
            response = api._post(
                api._url("/images/load"), data=iter(chunks), params={"quiet": False}, stream=True,
                timeout=IMAGE_LOAD_TIMEOUT,
            )  # fmt: skip
            try:
                api._raise_for_status(response)
                for item in api._stream_helper(response, decode=True):
                    if not isinstance(item, dict):
                        continue
                    if item.get("error") or item.get("errorDetail"):
                        message = item.get("error") or (item.get("errorDetail") or {}).get("message")
                        raise errors.RuntimeFailure(f"The engine did not load the image: {message}"[:500])
                    text = str(item.get("stream") or "").strip()
                    for prefix in ("Loaded image: ", "Loaded image ID: "):
                        if text.startswith(prefix):
                            loaded.append(text.removeprefix(prefix))
            finally:
                response.close()
        return loaded

    def remove_network(self, name: str) -> None:
        """Removes the network and its firewall rules (its containers must be gone)."""
        with self._engine(), contextlib.suppress(NotFound):
            self.client.api.remove_network(name)
        firewall.remove_bridge_rules(_bridge(name), runner=self._firewall)
        self._networks.pop(name, None)

    def ensure_network(
        self, name: str, labels: dict[str, str], *, model_gateway: bool = True, isolate: bool = True
    ) -> str:
        """A bridge network with inter-container traffic off and no way into the host (but the
        model gateway's port, unless `model_gateway` is False); `isolate=False`: made, not yet
        isolated (a node before its relay runs)."""
        bridge = _bridge(name)
        if isolate and name in self._networks:
            return bridge
        with self._network_lock, self._engine():
            gateway = _ipv4_gateway(self._network_created(name, bridge, labels))
        # The model gateway's port is open on that one address only (a node has no such exception:
        # its runner says so). On a node the rules go through its relay: `isolate=False` is
        # node_prepare's first call, before the relay runs (it needs the network's subnets first);
        # it also forgets that the network was isolated, so node_prepare's next call writes the
        # rules again (a node rebooted or flushed loses them, and this process would not know).
        if not isolate:
            self._networks.pop(name, None)
            return bridge
        isolated = firewall.isolate_bridge(bridge, gateway, model_gateway=model_gateway, runner=self._firewall)
        if not isolated and self._node is not None and firewall.enabled():
            # Locally a host without iptables is a development set-up (logged); a node whose bridge
            # could not be isolated must take no sandbox (node_prepare fails, placement skips it).
            raise errors.RuntimeFailure(
                f"The sandbox network {name} on the node could not be isolated (its relay's firewall).",
                details={"reason": "node_isolation"},
            )
        self._networks[name] = dict(labels)
        return bridge

    def _network_created(self, name: str, bridge: str, labels: dict[str, str]) -> dict:
        """The network, created if missing. Another process (the web server and the model gateway
        start together) may be creating it at the same moment: the engine then refuses our create
        (same name or bridge) before it lists theirs, so a refusal is followed by looking again
        for a while, not taken as final."""
        deadline = time.monotonic() + NETWORK_CREATE_SECONDS
        while True:
            with contextlib.suppress(NotFound):
                return self.client.api.inspect_network(name)
            try:
                self.client.api.create_network(
                    name,
                    driver="bridge",
                    labels=labels,
                    check_duplicate=True,
                    options={
                        "com.docker.network.bridge.enable_icc": "false",
                        "com.docker.network.bridge.name": bridge,
                    },
                )
            except APIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def network_subnets(self, name: str) -> list[str]:
        """The network's subnets (CIDRs), as its IPAM configuration has them."""
        with self._engine():
            data = self.client.api.inspect_network(name)
        return [c["Subnet"] for c in ((data.get("IPAM") or {}).get("Config") or []) if c.get("Subnet")]

    def relay_ensure(self, spec: RelaySpec, *, replace: bool = False) -> str:
        """A node's relay running as `spec` says (docs/nodes.md): "running" when a container of that
        name runs with the same image id, arguments and files, and is left alone. When only its files
        differ and `spec.reloads` (its image reads them again on SIGHUP; the label
        `vibebox.relay-base` names what it was started with but the files), they are written into
        its volume and it is sent SIGHUP: "reloaded", the same container, its tunnels not cut.
        Otherwise (or `replace`) it is replaced, "started": its files are written into its volume
        through a container that is never started (put_archive, over this engine's mutual TLS), then
        it is created with the host's network, a read-only root, only the spec's capabilities,
        no-new-privileges, restarted unless stopped."""
        with self._engine():
            image_id = self.client.api.inspect_image(spec.image)["Id"]
            files = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(spec.files.items())}
            started_with = [image_id, list(spec.entrypoint), list(spec.command), spec.mount, list(spec.cap_add)]
            if spec.host_files:
                started_with.append([list(pair) for pair in spec.host_files])
            digest = hashlib.sha256(json.dumps([*started_with[:4], files, *started_with[4:]]).encode()).hexdigest()
            base = hashlib.sha256(json.dumps(started_with).encode()).hexdigest()
            try:
                data = self.client.api.inspect_container(spec.name)
            except NotFound:
                data = None
            if data is not None:
                labels = (data.get("Config") or {}).get("Labels") or {}
                running = bool((data.get("State") or {}).get("Running"))
                if running and not replace and labels.get(RELAY_CONFIG_LABEL) == digest:
                    return "running"
                if running and not replace and spec.reloads and labels.get(RELAY_BASE_LABEL) == base:
                    # Its volume may hold these files already (an earlier reload, or one cut short
                    # between the write and the signal): signalled again all the same, since a reload
                    # of unchanged files changes nothing, and the caller checks that it answers with
                    # them ("reloaded"), replacing it if it does not.
                    if self._relay_files(spec) != files:
                        self._relay_files_write(spec)
                    self.client.api.kill(spec.name, signal="SIGHUP")
                    return "reloaded"
                self.client.api.remove_container(spec.name, force=True)
            self.client.volumes.create(name=spec.volume, labels=spec.labels)
            self._relay_files_write(spec)
            binds = list(spec.host_files)
            while True:
                host_config = self.client.api.create_host_config(
                    network_mode="host",
                    restart_policy={"Name": "unless-stopped"},
                    read_only=True,
                    tmpfs={"/run": "size=1m"},  # iptables' lock (xtables.lock) under a read-only root
                    cap_drop=["ALL"],
                    cap_add=list(spec.cap_add) or None,
                    security_opt=["no-new-privileges"],
                    mounts=[
                        Mount(target=spec.mount, source=spec.volume, type="volume", read_only=True),
                        *(Mount(target=inside, source=path, type="bind", read_only=True) for path, inside in binds),
                    ],
                    log_config=LogConfig(type="local", config={"max-size": "10m", "max-file": "3"}),
                )
                try:
                    self.client.api.create_container(
                        spec.image,
                        entrypoint=list(spec.entrypoint),
                        command=list(spec.command),
                        name=spec.name,
                        labels={**spec.labels, RELAY_CONFIG_LABEL: digest, RELAY_BASE_LABEL: base},
                        host_config=host_config,
                    )
                    break
                except APIError as exc:  # a node without one of the files: bound without it
                    said = str(exc.explanation or exc)
                    missing = [pair for pair in binds if "does not exist" in said and pair[0] in said]
                    if not missing:
                        raise
                    binds.remove(missing[0])
            self.client.api.start(spec.name)
        return "started"

    def _relay_files_write(self, spec: RelaySpec) -> None:
        """The spec's files in the relay's volume, through a container that is never started (the
        relay mounts it read-only)."""
        writer = f"{spec.name}-files"
        with contextlib.suppress(NotFound):
            self.client.api.remove_container(writer, force=True)
        self.client.api.create_container(
            spec.image,
            command=["fill"],  # never started
            name=writer,
            labels=spec.labels,
            host_config=self.client.api.create_host_config(
                mounts=[Mount(target=spec.mount, source=spec.volume, type="volume")], network_mode="none"
            ),
        )
        try:
            self.client.api.put_archive(writer, spec.mount, _private_tar(spec.files))
        finally:
            with contextlib.suppress(NotFound):
                self.client.api.remove_container(writer, force=True)

    def _relay_files(self, spec: RelaySpec) -> dict[str, str]:
        """The SHA-256 of each of the spec's files as the running relay's volume has them (an empty
        digest for one missing)."""
        stream, _ = self.client.api.get_archive(spec.name, spec.mount)
        found: dict[str, str] = {}
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream)), mode="r") as archive:
            for member in archive.getmembers():
                name = member.name.split("/", 1)[1] if "/" in member.name else ""
                if name in spec.files and member.isfile():
                    found[name] = hashlib.sha256(archive.extractfile(member).read()).hexdigest()
        return {name: found.get(name, "") for name in sorted(spec.files)}

    def relay_remove(self, name: str, volume: str) -> None:
        """A node's relay and its files gone (nothing when they are not there)."""
        with self._engine():
            with contextlib.suppress(NotFound):
                self.client.api.remove_container(name, force=True)
            with contextlib.suppress(NotFound):
                self.client.api.remove_volume(volume, force=True)

    def network_gateway(self, name: str) -> str:
        """The host's address on the network (where sandboxes reach the model gateway)."""
        with self._engine():
            gateway = _ipv4_gateway(self.client.api.inspect_network(name))
        if gateway is None:
            raise errors.RuntimeFailure(f"network {name} has no IPv4 gateway")
        return gateway

    # ---- images ----

    def image_exists(self, tag: str) -> bool:
        with self._engine():
            try:
                self.client.api.inspect_image(tag)
                return True
            except (ImageNotFound, NotFound):
                return False

    def image_size(self, tag: str) -> int | None:
        """The image's size in bytes (its layers, shared ones included), or None when absent."""
        with self._engine():
            try:
                return int(self.client.api.inspect_image(tag).get("Size") or 0)
            except (ImageNotFound, NotFound):
                return None

    def image_build(
        self,
        *,
        context: str,
        tag: str,
        buildargs: dict[str, str],
        labels: dict[str, str],
        log: BuildLog,
        target: str | None = None,
        limits: BuildLimits | None = None,
    ) -> None:
        if limits is not None:
            self._build_limited(context=context, tag=tag, labels=labels, log=log, target=target, limits=limits)
            return
        with self._engine():
            stream = self.client.api.build(
                path=context,
                tag=tag,
                buildargs=buildargs,
                labels=labels,
                target=target,
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    raise errors.RuntimeFailure(f"building {tag} failed: {chunk['error'].strip()}")
                text = chunk.get("stream")
                if text and text.strip():
                    log(text.rstrip("\n"))

    def _build_limited(
        self, *, context: str, tag: str, labels: dict[str, str], log: BuildLog, target: str | None, limits: BuildLimits
    ) -> None:
        """An untrusted Dockerfile's build (BuildLimits): the engine's classic builder, whose RUN
        steps are containers on `limits.network` with the memory and CPU limits, the engine's
        socket never mounted, and no pull (every FROM must name a local image: the caller checks).
        A watchdog stops the build (closes its request: the engine cancels it and removes the
        step's container) once the time is up or the build has written more than
        `limits.max_size` (the layers its steps committed plus the running step's container); a
        build that did not finish leaves no intermediate image of its own."""
        exclude = None
        ignore = os.path.join(context, ".dockerignore")
        if os.path.exists(ignore):
            with open(ignore) as handle:
                exclude = [line.strip() for line in handle.read().splitlines() if line.strip() and line[0] != "#"]
        period = 100_000
        params = {
            "t": tag,
            "q": False,
            "nocache": True,  # no step of another tenant's build is reused, and every step runs under the limits
            "rm": True,
            "forcerm": True,
            "pull": False,
            "memory": limits.memory,
            "memswap": limits.memory,  # no swap beyond the memory
            "cpuperiod": period,
            "cpuquota": max(1000, int(limits.cpus * period)),
            "networkmode": limits.network,
            "labels": json.dumps(labels),
        }
        if target:
            params["target"] = target
        archive = docker.utils.tar(context, exclude=exclude)
        made: list[str] = []  # the images the steps made (a failed build's are removed)
        layers: list[str] = []  # those of them that are a step's own layer (not a FROM's base)
        after_from = False
        stopped: list[str] = []  # why the watchdog stopped it
        done = threading.Event()
        response = None
        error = None
        try:
            with self._engine():
                response = self.client.api._post(
                    self.client.api._url("/build"),
                    params=params,
                    data=archive,
                    headers={"Content-Type": "application/tar"},
                    stream=True,
                    timeout=None,
                )
                try:
                    self.client.api._raise_for_status(response)
                except APIError as exc:  # the engine refused the Dockerfile (a parse error)
                    if exc.status_code and 400 <= exc.status_code < 500:
                        raise BuildFailed("failed", str(exc.explanation or exc)[:1000]) from None
                    raise
            watchdog = threading.Thread(
                target=self._build_watch,
                args=(limits, response, stopped, done, layers),
                daemon=True,
                name=f"build-{tag}",
            )
            watchdog.start()
            try:
                for chunk in self.client.api._stream_helper(response, decode=True):
                    if "error" in chunk:
                        error = str(chunk["error"]).strip()
                        break
                    text = chunk.get("stream")
                    if text and text.strip():
                        for line in text.rstrip("\n").splitlines():
                            refused = build_base_refused(line, limits.bases)
                            if refused:
                                log(line)
                                error = (
                                    f"The build started a stage from {refused[:200]}, which was not approved: stopped."
                                )
                                break
                            if line.startswith("Step "):
                                after_from = bool(BUILD_FROM_RE.match(line))
                            match = BUILD_STEP_RE.match(line)
                            if match:
                                made.append(match.group(1))
                                if not after_from:
                                    layers.append(match.group(1))
                                after_from = False
                            log(line)
                        if error:
                            break
            except Exception as exc:  # the watchdog closed the request under us
                if not stopped:
                    error = f"the build's stream broke: {exc}"[:500]
        finally:
            done.set()
            archive.close()
            if response is not None:
                response.close()
            self._build_containers_remove(limits.network, wait=10 if (stopped or error) else 0)
        if stopped or error:
            self._build_images_remove(made, keep=tag if not (stopped or error) else None)
            with self._engine(), contextlib.suppress(ImageNotFound, NotFound):
                self.client.api.remove_image(tag, noprune=False)
        if stopped and stopped[0] == "timeout":
            seconds = limits.timeout
            limit = f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
            raise BuildFailed("timeout", f"The build did not finish within its time limit ({limit}): stopped.")
        if stopped:
            raise BuildFailed(
                "too_large", f"The build wrote more than the size limit ({_size_words(limits.max_size)}): stopped."
            )
        if error:
            if f"non-zero code: {OOM_EXIT_CODE}" in error:
                error += f" (killed: the step used more than the build's memory limit, {_size_words(limits.memory)}?)"
            raise BuildFailed("failed", error[:1000])
        if not self.image_exists(tag):
            raise BuildFailed("failed", "The build ended without producing its image.")

    def _build_watch(
        self, limits: BuildLimits, response, stopped: list[str], done: threading.Event, layers: list[str]
    ) -> None:
        deadline = time.monotonic() + limits.timeout
        sizes: dict[str, int] = {}  # a committed layer's own size, by image id
        while not done.wait(BUILD_WATCH_SECONDS):
            if limits.max_size:
                for image in list(layers):
                    if image not in sizes:
                        sizes[image] = self._image_own_size(image)
            try:
                rows = self.client.api.containers(
                    all=True, filters={"network": limits.network}, size=bool(limits.max_size)
                )
            except (APIError, requests.exceptions.RequestException) as exc:
                logger.warning("build watchdog on %s: %s", limits.network, exc)
                rows = []
            running = [int(row.get("SizeRw") or 0) for row in rows]
            too_large = limits.max_size and build_written(list(sizes.values()), running) > limits.max_size
            if time.monotonic() > deadline or too_large:
                stopped.append("too_large" if too_large else "timeout")
                self._build_containers_remove(limits.network)  # the step fails at once
                _hang_up(response)  # and the engine cancels the build: the client is gone
                return

    def _image_own_size(self, image: str) -> int:
        """What an image adds to its parent (the classic builder's images have one), in bytes."""
        try:
            data = self.client.api.inspect_image(image)
            parent = data.get("Parent") or ""
            base = int(self.client.api.inspect_image(parent).get("Size") or 0) if parent else 0
        except (APIError, requests.exceptions.RequestException):
            return 0
        return max(0, int(data.get("Size") or 0) - base)

    def build_networks(self, labels: dict[str, str]) -> dict[str, str]:
        """The limited builds' networks carrying `labels`: name -> the build it is for (its
        `vibebox.build` label)."""
        with self._engine():
            rows = self.client.api.networks(filters={"label": ["vibebox.build", *_labels_filter(labels)["label"]]})
        return {row["Name"]: str((row.get("Labels") or {}).get("vibebox.build") or "") for row in rows}

    def build_network_remove(self, name: str) -> None:
        """A limited build's network with its step containers and firewall rules (a build whose
        worker died left them)."""
        with self._engine():
            self._build_containers_remove(name, wait=10)
        self.remove_network(name)

    def build_leftovers(self, labels: dict[str, str]) -> list[BuildLeftover]:
        """The step containers and the leaf images (no child image: a tagged build result, or the last
        untagged step image of a build that never finished) labelled with the build that made them
        (BUILD_OWNER_LABEL) and `labels`. Removing a leaf prunes its untagged parents, the same
        build's earlier step images. A sandbox's container or a snapshot's image inherits the label
        from the image it comes from: one carrying any of NOT_BUILD_LABELS is never listed."""
        filters = {"label": [BUILD_OWNER_LABEL, *_labels_filter(labels)["label"]]}
        with self._engine():
            containers = self.client.api.containers(all=True, filters=filters)
            images = self.client.api.images(all=False, filters=filters)  # all=False: leaves only

        def build_made(row: dict) -> bool:
            return not set(NOT_BUILD_LABELS).intersection(row.get("Labels") or {})

        found = [
            BuildLeftover(
                kind="container",
                id=row["Id"],
                owner=str((row.get("Labels") or {}).get(BUILD_OWNER_LABEL) or ""),
                created=float(row.get("Created") or 0),
            )
            for row in containers
            if build_made(row)
        ]
        found += [
            BuildLeftover(
                kind="image",
                id=row["Id"],
                owner=str((row.get("Labels") or {}).get(BUILD_OWNER_LABEL) or ""),
                tags=tuple(tag for tag in row.get("RepoTags") or () if tag != "<none>:<none>"),
                created=float(row.get("Created") or 0),
            )
            for row in images
            if build_made(row)
        ]
        return found

    def build_leftovers_remove(self, leftovers: list[BuildLeftover]) -> list[str]:
        """Removes them, containers first (a step container holds its image); an image's tags go,
        then the image and its untagged parents (pruned). Answers the ids removed."""
        removed: list[str] = []
        for item in sorted(leftovers, key=lambda item: item.kind != "container"):
            try:
                if item.kind == "container":
                    self.client.api.remove_container(item.id, force=True)
                else:
                    for tag in item.tags[1:]:
                        self.client.api.remove_image(tag, noprune=True)
                    self.client.api.remove_image(item.tags[0] if item.tags else item.id, noprune=False)
                removed.append(item.id)
            except (ImageNotFound, NotFound):
                removed.append(item.id)
            except (APIError, requests.exceptions.RequestException) as exc:
                logger.warning("could not remove build leftover %s %s: %s", item.kind, item.id[:19], exc)
        return removed

    def _build_containers_remove(self, network: str, wait: float = 0.0) -> None:
        """Removes the containers of a build's steps (on its own network): a cancelled build's;
        with `wait`, until none is left (the engine may be removing one already) or that long."""
        deadline = time.monotonic() + wait
        while True:
            try:
                rows = self.client.api.containers(all=True, filters={"network": network})
            except (APIError, requests.exceptions.RequestException):
                rows = []
            for row in rows:
                with contextlib.suppress(NotFound, APIError, requests.exceptions.RequestException):
                    self.client.api.remove_container(row["Id"], force=True)
            if not rows or time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def _build_images_remove(self, made: list[str], keep: str | None) -> None:
        """The images a failed build's steps made, newest first, when no tag names them (a tagged
        one, a base, is left alone; the engine refuses to remove an image with children). An
        image a step's container still uses (being removed) is tried again for a few seconds."""
        for image in reversed(made):
            deadline = time.monotonic() + 10
            while True:
                try:
                    if self.client.api.inspect_image(image).get("RepoTags"):
                        break
                    self.client.api.remove_image(image, noprune=False)
                    break
                except (ImageNotFound, NotFound, requests.exceptions.RequestException):
                    break
                except APIError as exc:
                    if exc.status_code != 409 or "child" in str(exc.explanation) or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)

    def image_details(self, tag: str) -> ImageDetails | None:
        with self._engine():
            try:
                data = self.client.api.inspect_image(tag)
            except (ImageNotFound, NotFound):
                return None
        config = data.get("Config") or {}
        return ImageDetails(
            id=data.get("Id", ""),
            user=str(config.get("User") or ""),
            volumes=tuple(sorted(config.get("Volumes") or {})),
            exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
            labels=dict(config.get("Labels") or {}),
            size=int(data.get("Size") or 0),
        )

    def image_files(self, tag: str, paths: tuple[str, ...]) -> dict[str, bytes | None]:
        """Read from the image's exported filesystem, as image_setid_files; each file at most 4 MiB."""
        wanted, found = set(paths), {}

        def visit(member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
            path = "/" + member.name.removeprefix("./").lstrip("/")
            if path not in wanted:
                return
            if not member.isreg() or member.size > 4 * 1024**2:
                found[path] = None
                return
            source = archive.extractfile(member)
            found[path] = source.read() if source is not None else None

        self._image_export_walk(tag, visit)
        return found

    def image_setid_files(self, tag: str) -> dict[str, str]:
        """Read from the image's exported filesystem (a created, never started container), so
        nothing the image holds runs and no binary of it can hide a file: privileged_files."""
        found: dict[str, str] = {}

        def visit(member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
            privileged_file(member, archive, found)

        self._image_export_walk(tag, visit)
        return found

    def _image_export_walk(self, tag: str, visit) -> None:
        """Calls visit(member, archive) for each entry of the image's exported filesystem."""
        with self._engine():
            created = self.client.api.create_container(
                tag, command=["none"], entrypoint=[], network_disabled=True, labels=PROBE_LABELS
            )
            try:
                url = self.client.api._url("/containers/{0}/export", created["Id"])
                response = self.client.api._get(url, stream=True, timeout=None)
                self.client.api._raise_for_status(response)
                with contextlib.closing(response), tarfile.open(fileobj=response.raw, mode="r|") as archive:
                    for member in archive:
                        visit(member, archive)
            finally:
                with contextlib.suppress(NotFound):
                    self.client.api.remove_container(created["Id"], force=True)

    def container_network_addresses(self, name: str, network: str) -> list[str]:
        """The container's addresses (IPv4, then IPv6 when it has one) on one network; [] when it
        is not running there."""
        with self._engine():
            try:
                data = self.client.api.inspect_container(name)
            except NotFound:
                return []
        attached = ((data.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
        return [address for address in (attached.get("IPAddress"), attached.get("GlobalIPv6Address")) if address]

    def egress_rules_set(
        self, name: str, network: str, rules: EgressRules | None, *, keep_previous: bool = False
    ) -> list[str]:
        """Puts a sandbox's egress rules in force for its current addresses on the network (None:
        it has none, and whatever was there for it or its addresses goes; `keep_previous`: its
        rules at other addresses stay); answers the addresses.
        RuntimeFailure (reason egress_rules) when the kernel refused them."""
        bridge = _bridge(network)
        addresses = self.container_network_addresses(name, network)
        try:
            firewall.sandbox_rules_set(
                bridge, name, addresses, rules, keep_previous=keep_previous, runner=self._firewall
            )
        except (OSError, subprocess.SubprocessError) as exc:
            stderr = (getattr(exc, "stderr", "") or "").strip()
            raise errors.RuntimeFailure(
                f"Could not set the sandbox's egress rules: {exc} {stderr}"[:500], details={"reason": "egress_rules"}
            ) from None
        return addresses

    def egress_available(self) -> bool:
        """Whether this engine's sandboxes can have egress rules of their own: the firewall on and
        iptables where its bridge is (this host's, or a prepared node's through its relay's agent)."""
        try:
            return firewall.available(self._firewall)
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("firewall of %s cannot say what it has: %s", self._firewall.name, exc)
            return False

    def egress_rules_remove(self, name: str, network: str) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            firewall.sandbox_rules_remove(_bridge(network), name, runner=self._firewall)

    def egress_rules_replace_all(self, network: str, wanted: list[tuple[str, EgressRules]]) -> None:
        """Exactly these sandboxes' rules (container name, rules) on the network, at their current
        addresses (the reconcile pass)."""
        bridge = _bridge(network)
        found = [(name, self.container_network_addresses(name, network), rules) for name, rules in wanted]
        try:
            firewall.sandbox_rules_replace_all(bridge, [entry for entry in found if entry[1]], runner=self._firewall)
        except (OSError, subprocess.SubprocessError) as exc:
            raise errors.RuntimeFailure(f"Could not set egress rules: {exc}"[:500]) from None

    def container_address(self, name: str) -> str:
        with self._engine():
            try:
                data = self.client.api.inspect_container(name)
            except NotFound:
                gone = errors.SandboxNotRunning("The sandbox's container is gone.", details={"status": "missing"})
                raise gone from None
        networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
        address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), None)
        if address is None:
            raise errors.RuntimeFailure("The sandbox has no address on its network.")
        return address

    def container_reach(self, name: str) -> "str | sandboxd_client.Relayed":
        """How this server dials a port of the running container (a preview's): its address on the
        local engine; on a node, that address through the node's relay (docs/nodes.md)."""
        return self._reach(self.container_address(name))

    def image_remove(self, tag: str) -> None:
        with self._engine(), contextlib.suppress(ImageNotFound, NotFound):
            self.client.api.remove_image(tag, force=True)  # containers made from it keep running

    def commit(self, name: str, *, image: str, labels: dict[str, str]) -> int:
        """The container's filesystem (not its volumes, not tmpfs) as a new image; answers the
        size of what it adds to its parent image, in bytes."""
        repository, _, tag = image.rpartition(":")
        with self._engine():
            self.client.api.commit(name, repository=repository, tag=tag, conf={"Labels": labels}, pause=True)
            data = self.client.api.inspect_image(image)
            parent = data.get("Parent") or ""
            base = self.client.api.inspect_image(parent).get("Size", 0) if parent else 0
        return max(0, int(data.get("Size", 0)) - int(base))

    def list_images(self, labels: dict[str, str]) -> list[ImageInfo]:
        with self._engine():
            images = self.client.api.images(filters=_labels_filter(labels))
        return [
            ImageInfo(tag=tag, labels=image.get("Labels") or {}, created=float(image.get("Created") or 0))
            for image in images
            for tag in (image.get("RepoTags") or [])
            if tag != "<none>:<none>"
        ]


def _hang_up(response) -> None:
    """Ends a streamed engine response from another thread: the socket is shut down (closing the
    response alone does not wake a read blocked on it)."""
    with contextlib.suppress(Exception):
        sock = response.raw._fp.fp.raw._sock
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


def _size_words(size: int | None) -> str:
    return f"{(size or 0) / 1024**2:g} MiB"
