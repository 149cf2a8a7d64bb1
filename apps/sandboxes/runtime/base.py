"""The runtime seam: what VibeBox needs from a container engine, free of Docker types.

`docker.py` implements it for the Docker Engine; a Kubernetes driver can sit beside it.
Drivers raise `vibebox.exceptions.RuntimeUnavailable` when the engine cannot be reached
and `RuntimeFailure` for other engine errors.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: dict[str, str]
    env: dict[str, str]
    volume: str  # named volume mounted at /workspace
    network: str
    extra_networks: tuple[str, ...] = ()  # operator-chosen networks (say, an internal git server)
    user: str = ""
    workdir: str = "/workspace"
    command: tuple[str, ...] = ("sleep", "infinity")
    cpu: float = 1.0  # cores
    memory: int = 1024**3  # bytes; swap is not allowed beyond it
    disk: int | None = None  # bytes of writable layer, where the storage driver can limit it
    pids_limit: int = 512
    tmpfs_size: int = 512 * 1024**2
    cap_add: tuple[str, ...] = ()
    runtime: str = "runc"
    log_max_size: str = "10m"
    log_max_files: int = 3
    hostname: str = "sandbox"


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str  # created, running, paused, restarting, exited, dead, removing
    labels: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    version: str
    storage_driver: str
    supports_disk_limit: bool


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    is_dir: bool
    is_symlink: bool
    mode: int  # permission bits
    modified_at: str
    link_target: str = ""


BuildLog = Callable[[str], None]
OutputCallback = Callable[[str, bytes], None]  # ("stdout" | "stderr", chunk)


@dataclass(frozen=True)
class ExecRequest:
    argv: tuple[str, ...]
    exec_id: str  # marks every process of this command, so a timeout can kill them all
    env: dict[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = "/workspace"
    stdin: bytes | None = None
    timeout: float = 60.0
    output_limit: int = 10 * 1024**2  # bytes kept per stream; the rest is counted and dropped
    on_output: OutputCallback | None = None


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_bytes: int  # total produced, including what was dropped
    stderr_bytes: int
    truncated: bool
    timed_out: bool
    oom_killed: bool
    duration_ms: int


class RuntimeDriver(Protocol):
    def ping(self) -> None: ...
    def engine_info(self) -> EngineInfo: ...

    # Containers (addressed by name or id).
    def create(self, spec: ContainerSpec) -> ContainerInfo: ...
    def start(self, name: str) -> ContainerInfo: ...
    def stop(self, name: str, timeout: int) -> ContainerInfo: ...
    def restart(self, name: str, timeout: int) -> ContainerInfo: ...
    def remove(self, name: str, *, volume: str | None = None) -> None: ...
    def inspect(self, name: str) -> ContainerInfo | None: ...
    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]: ...
    def pause(self, name: str) -> None: ...
    def unpause(self, name: str) -> None: ...

    # Commands: run with a deadline that kills every process the command started.
    def exec(self, name: str, request: ExecRequest) -> ExecResult: ...

    # Files, as tar streams into and out of the container's filesystem (volumes included).
    def path_stat(self, name: str, path: str) -> PathStat | None: ...
    def get_archive(self, name: str, path: str) -> tuple[Iterator[bytes], PathStat]: ...
    def put_archive(self, name: str, path: str, data: Iterable[bytes]) -> None: ...

    # Volumes and networks.
    def list_volumes(self, labels: dict[str, str]) -> list[str]: ...
    def remove_volume(self, name: str) -> None: ...
    def ensure_network(self, name: str, labels: dict[str, str]) -> str: ...

    # Images.
    def image_exists(self, tag: str) -> bool: ...
    def image_build(
        self, *, context: str, tag: str, buildargs: dict[str, str], labels: dict[str, str], log: BuildLog
    ) -> None: ...
    def image_remove(self, tag: str) -> None: ...
