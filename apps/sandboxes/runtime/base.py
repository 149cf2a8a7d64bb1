"""The runtime seam: what VibeBox needs from a container engine, free of Docker types.

`docker.py` implements it for the Docker Engine; a Kubernetes driver can sit beside it.
Drivers raise `vibebox.exceptions.RuntimeUnavailable` when the engine cannot be reached
and `RuntimeFailure` for other engine errors. A method a driver cannot implement on its engine
at all raises `RuntimeUnsupported` (501 runtime_unsupported, details {"feature", "runtime"}),
before touching anything: never a different error, never a partial effect (the Kubernetes
driver's list: docs/kubernetes.md, "What the driver cannot do").
"""

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Where every sandbox mounts sandboxd's volume (read-only), and its binary there.
DAEMON_MOUNT = "/opt/vibebox"
DAEMON_BINARY = f"{DAEMON_MOUNT}/sandboxd"
# The label of a container whose PID 1 is sandboxd: the user it runs commands as.
DAEMON_USER_LABEL = "vibebox.user"


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: dict[str, str]
    env: dict[str, str]
    volume: str | None  # named volume mounted at /workspace; None: /workspace is in the writable layer
    network: str
    # sandboxd's volume: sandboxd is PID 1 (as root, mounted read-only) and runs commands as `user`.
    # The Kubernetes driver ignores it (sandboxd comes from its own image setting).
    daemon_volume: str
    extra_networks: tuple[str, ...] = ()  # operator-chosen networks (say, an internal git server)
    user: str = ""
    workdir: str = "/workspace"
    cpu: float = 1.0  # cores
    memory: int = 1024**3  # bytes; swap is not allowed beyond it
    disk: int | None = None  # bytes the sandbox may write (its writable layer), where the engine can limit it
    pids_limit: int = 512
    tmpfs_size: int = 512 * 1024**2
    cap_add: tuple[str, ...] = ()
    runtime: str = "runc"
    log_max_size: str = "10m"
    log_max_files: int = 3
    hostname: str = "sandbox"


@dataclass(frozen=True)
class EgressRules:
    """A sandbox's egress policy as the kernel enforces it (docs/operations.md, "Egress policy")."""

    deny: tuple[str, ...] = ()  # networks (CIDR) rejected
    allow: tuple[str, ...] = ()  # networks that stay reachable when direct connections are closed
    closed: bool = False  # direct connections closed, but to `allow` (and DNS with `dns`)
    dns: bool = False  # DNS to the host's resolvers passes (when closed)


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str  # created, running, paused, restarting, exited, dead, removing
    labels: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: str | None = None

    @property
    def has_daemon(self) -> bool:
        """sandboxd is its PID 1. A container without it was made before sandboxd (an upgraded
        install): nothing can run in it, every such operation is 409 sandbox_outdated."""
        return DAEMON_USER_LABEL in self.labels


@dataclass(frozen=True)
class BuildLeftover:
    """A container or image a limited build made, found by its labels (BUILD_OWNER_LABEL names the
    build): `kind` "container" or "image", `id` the engine's id, `tags` an image's tags (none for
    a step's intermediate image), `created` unix time."""

    kind: str
    id: str
    owner: str
    tags: tuple[str, ...] = ()
    created: float = 0.0


BUILD_OWNER_LABEL = "vibebox.submission"  # on every container and image a submission's build makes
# A sandbox's container and a snapshot's image inherit the labels of the image they come from
# (BUILD_OWNER_LABEL included, when that is a submission's): one carrying any of these is a
# sandbox's or a snapshot's (apps/sandboxes/specs.py, services/snapshots.py), never a build's leftover.
NOT_BUILD_LABELS = ("vibebox.managed", "vibebox.sandbox-id", "vibebox.snapshot-id")


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0  # unix time


@dataclass(frozen=True)
class ImageDetails:
    """What an image's configuration says (the marketplace's policy checks read it)."""

    id: str
    user: str  # the user its processes run as ("" when unset: root)
    volumes: tuple[str, ...]
    exposed_ports: tuple[str, ...]  # "8080/tcp"
    labels: dict[str, str]
    size: int  # bytes, its layers included


@dataclass(frozen=True)
class BuildLimits:
    """Limits for building an untrusted Dockerfile (the marketplace's submissions). Each RUN step
    runs with `memory` bytes (no swap beyond it) and `cpus` cores, attached only to `network` (a
    network made for this build: ensure_network gives it the sandbox firewall), never with the
    engine's socket. The build is stopped, its intermediate containers removed, once it has run
    `timeout` seconds or its steps have written more than `max_size` bytes in all (the layers
    committed so far plus the running step's container)."""

    memory: int
    cpus: float
    network: str
    timeout: float
    max_size: int | None = None
    # The FROM references the plan approved (exact images and stage names): a step that starts
    # from anything else stops the build (a backstop for the Dockerfile checks). Empty: unchecked.
    bases: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineInfo:
    version: str
    storage_driver: str
    supports_disk_limit: bool


@dataclass(frozen=True)
class NodeConnection:
    """How to reach a node's engine (docs/nodes.md): its URL and mutual TLS material, in PEM.
    Empty `cert`/`key`: no client certificate is offered (the engine should refuse that)."""

    url: str  # tcp://host:2376
    ca: str
    cert: str = ""
    key: str = field(default="", repr=False)
    # The node's relay (docs/nodes.md, "How the server reaches sandboxd on a remote node"): its
    # port on the URL's host, the CA VibeBox minted for it and VibeBox's client certificate and key.
    # No relay_ca: none yet (node_prepare starts it), and sandboxd there cannot be reached.
    relay_port: int = 0
    relay_ca: str = ""
    relay_cert: str = ""
    relay_key: str = field(default="", repr=False)


@dataclass(frozen=True)
class RelaySpec:
    """A node's relay container (docs/nodes.md): `image` run as `entrypoint` + `command` with the
    host's network, its TLS files (name -> bytes) in volume `volume`, mounted read-only at `mount`,
    with the capabilities `cap_add` only."""

    name: str
    image: str
    entrypoint: tuple[str, ...]
    command: tuple[str, ...]
    volume: str
    mount: str
    files: dict[str, bytes] = field(repr=False, hash=False)
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    cap_add: tuple[str, ...] = ()  # the firewall agent's (NET_ADMIN, NET_RAW): all others dropped
    # (host path, container path): the node's files bound read-only, each left out when the node
    # has no such file (the relay's resolvers: sandboxd/internal/relay/resolvers.go)
    host_files: tuple[tuple[str, str], ...] = ()
    # The image's relay reads its files again when told (SIGHUP): a relay running from it whose
    # files alone changed is reloaded, not replaced (docs/nodes.md, "Rotating the relay's credentials").
    reloads: bool = False


@dataclass(frozen=True)
class NodeEngine:
    """What a node's engine says about itself."""

    version: str
    api_version: str
    memory: int  # bytes
    cpus: int
    os: str
    arch: str
    storage_driver: str


# Why a node's engine could not be used (RuntimeUnavailable's details["reason"] from a node call).
NODE_UNREACHABLE = "unreachable"  # nothing answers at the address (refused, no route, timed out)
NODE_SERVER_UNTRUSTED = "server_certificate_untrusted"  # its certificate is not signed by the given CA
NODE_SERVER_NAME = "server_certificate_name"  # its certificate does not name the address
NODE_CLIENT_REFUSED = "client_certificate_refused"  # it refused the client certificate (or its absence)
NODE_NO_CLIENT_AUTH = "client_certificate_not_required"  # it answers clients without a certificate
NODE_NOT_DOCKER = "not_docker"  # something answers TLS there, but not a Docker engine


@dataclass(frozen=True)
class ContainerStats:
    """A running container's resource use, as the engine measures it."""

    cpu_percent: float | None  # of one core (200.0 = two cores busy); None when it cannot be measured
    online_cpus: int
    memory_usage: int  # bytes, without the reclaimable page cache
    memory_limit: int  # bytes
    pids: int
    pids_limit: int | None


@dataclass(frozen=True)
class MeterReading:
    """A container's cumulative counters for metering (billing), from one read of the engine.
    CPU and network count since the container's current start: a restart begins them again at 0
    (the caller tells boots apart)."""

    cpu_ns: int  # CPU time of all its processes
    memory_bytes: int  # resident now, without the reclaimable page cache (as ContainerStats)
    net_rx_bytes: int  # summed over its interfaces
    net_tx_bytes: int


@dataclass(frozen=True)
class PathStat:
    name: str
    size: int
    is_dir: bool
    is_symlink: bool
    mode: int  # permission bits
    modified_at: str
    link_target: str = ""


@dataclass(frozen=True)
class FileInfo:
    """One path as the sandbox user sees it (through sandboxd): the path itself, not a symlink's
    target, unless asked."""

    path: str
    name: str
    type: str  # file, directory, symlink, other
    size: int
    mode: int  # permission bits with setuid, setgid and sticky (0o7777)
    modified_at: float  # unix time
    link_target: str = ""  # a symlink's

    @property
    def is_dir(self) -> bool:
        return self.type == "directory"


class FileStream(Protocol):
    """A file's or a tar's bytes from the sandbox: iterate once; close to let go early."""

    def __iter__(self) -> Iterator[bytes]: ...
    def close(self) -> None: ...


class LogStream(Protocol):
    def __iter__(self) -> Iterator[tuple[float, str]]: ...
    def close(self) -> None: ...


BuildLog = Callable[[str], None]


class BuildFailed(Exception):
    """A build under BuildLimits that did not produce its image. `reason`: "failed" (a step
    failed, or the Dockerfile is invalid), "timeout", "too_large" (its steps wrote more
    than max_size), "memory" (a step was killed for using more than its memory); `message` says it
    in words, for the submitter."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


OutputCallback = Callable[[str, bytes], None]  # ("stdout" | "stderr", chunk)


STDIN_BUFFER = 1024 * 1024  # stdin held for a command that has not read it yet; writers wait past it
RESIZE_COST = 64  # bytes a queued resize counts against STDIN_BUFFER (as sandboxd counts it)


class ExecControl:
    """Input for a running command, from another thread: more stdin, end of stdin, signals, and
    for a terminal resizes (kept in order with the stdin around them).

    The thread that feeds sandboxd's stream waits on `wake_fd`, so a write wakes it at once.
    Stdin is bounded: it takes at most STDIN_BUFFER bytes ahead of what the command has read,
    and writers wait while `buffered` is above it (a client streaming faster than the command reads
    would otherwise grow the server's memory without end).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._stdin: list[bytes | tuple[int, int]] = []  # chunks and (cols, rows) resizes, in order
        self._buffered = 0
        self._signals: list[str] = []
        self._close = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)

    def _wake(self):
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")

    def write(self, data: bytes) -> None:
        with self._lock:
            self._stdin.append(data)
            self._buffered += len(data)
        self._wake()

    @property
    def buffered(self) -> int:
        """Stdin written but not yet taken by the exec loop."""
        return self._buffered

    def resize(self, cols: int, rows: int) -> None:
        """A terminal's new size, after the stdin written before it (counted like stdin)."""
        with self._lock:
            self._stdin.append((cols, rows))
            self._buffered += RESIZE_COST
        self._wake()

    def take_resize(self) -> tuple[int, int] | None:
        """The resize `take` stopped at, if it is next."""
        with self._lock:
            if self._stdin and isinstance(self._stdin[0], tuple):
                self._buffered -= RESIZE_COST
                return self._stdin.pop(0)
        return None

    def close_stdin(self) -> None:
        with self._lock:
            self._close = True
        self._wake()

    def signal(self, name: str) -> None:
        with self._lock:
            self._signals.append(name)
        self._wake()

    @property
    def wake_fd(self) -> int:
        return self._wake_read

    def take(self, limit: int = STDIN_BUFFER) -> tuple[bytes, bool, list[str]]:
        """What arrived since last time: (at most `limit` stdin bytes, stdin closed and all of it
        taken?, signals). Stdin past the limit, or behind a resize (take_resize), stays for the next
        take."""
        try:
            while os.read(self._wake_read, 4096):
                pass
        except OSError:  # drained (BlockingIOError), or closed
            pass
        with self._lock:
            # Chunks as written, joined once (a client's stdin comes in MiB: each copy counts).
            taken: list[bytes] = []
            size = 0
            while self._stdin and size < limit and not isinstance(self._stdin[0], tuple):
                chunk, room = self._stdin[0], limit - size
                if len(chunk) <= room:
                    taken.append(self._stdin.pop(0))
                else:
                    taken.append(chunk[:room])
                    self._stdin[0] = chunk[room:]
                size += len(taken[-1])
            self._buffered -= size
            signals, self._signals = self._signals, []
            data = taken[0] if len(taken) == 1 else b"".join(taken)
            return data, self._close and not self._stdin, signals

    def close(self) -> None:
        with self._lock:  # a write after this must not reach a reused fd number
            fds, self._wake_read, self._wake_write = (self._wake_read, self._wake_write), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


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
    control: ExecControl | None = None  # interactive stdin and signals (stdin stays open until closed)


@dataclass(frozen=True)
class ProcessInfo:
    """A background process as sandboxd keeps it (fields checked: they come from the sandbox)."""

    exec_id: str
    running: bool
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    stdout_bytes: int
    stderr_bytes: int


@dataclass(frozen=True)
class TerminalInfo:
    """A terminal as sandboxd keeps it (fields checked: they come from the sandbox)."""

    exec_id: str
    argv: tuple[str, ...]
    running: bool
    exit_code: int | None
    idle: bool
    cols: int
    rows: int
    attached: int  # connections attached now (all web processes)
    output_bytes: int  # the offset after its newest output byte
    buffered_from: int  # the oldest offset still kept
    started_at: str


@dataclass(frozen=True)
class TerminalExit:
    """How a terminal ended: its shell's exit code (None when killed by its idle timeout or
    deadline), `idle` when its idle timeout ended it."""

    exit_code: int | None
    idle: bool
    timed_out: bool
    output_bytes: int


WATCH_EVENT_TYPES = frozenset({"create", "write", "remove", "rename", "chmod", "overflow"})
WATCH_OVERFLOW_REASONS = frozenset({"queue", "kernel", "watch_limit", "path_limit"})
WATCH_END_REASONS = frozenset({"root_removed", "root_moved", "unmounted", "error"})


@dataclass(frozen=True)
class WatchRequest:
    """A file watch in a sandbox (sandboxd's POST /watch, docs/sandboxd.md "File watch")."""

    path: str  # absolute, normalised: the watched root (a directory)
    watch_id: str  # ^[A-Za-z0-9_.-]{1,80}$: what sandboxd signs the stream for
    recursive: bool = True
    user: str = ""  # whose permissions the watch has; "": the sandbox user
    excludes: tuple[str, ...] = ()  # glob patterns: without "/" against each name, with "/" against the path
    timeout: float = 3600.0  # seconds the stream may last in all (then it ends, `ended` "timeout")


@dataclass(frozen=True)
class WatchEvent:
    """One change sandboxd's file watch saw (fields checked: they come from the sandbox)."""

    type: str  # one of WATCH_EVENT_TYPES
    path: str  # relative to the watched root ("." is the root itself), at most 4096 bytes
    is_dir: bool
    time: str  # when sandboxd saw it: RFC 3339, UTC, microseconds
    from_path: str | None = None  # rename: the old path (relative)
    reason: str | None = None  # overflow: one of WATCH_OVERFLOW_REASONS (events lost: rescan)


class WatchStream(Protocol):
    """An open file watch: iterating yields its events until it ends (`ended` then says why: one
    of WATCH_END_REASONS, or "timeout", "closed"); close() from any thread ends it and frees its
    watches in the sandbox. A stream that breaks the protocol raises RuntimeFailure."""

    ended: str | None

    def __iter__(self) -> Iterator[WatchEvent]: ...
    def close(self) -> None: ...


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
    def node_engine(self) -> NodeEngine: ...  # the engine's version and capacity (docs/nodes.md)
    def close(self) -> None: ...

    # Containers (addressed by name or id).
    def create(self, spec: ContainerSpec) -> ContainerInfo: ...
    def start(self, name: str) -> ContainerInfo: ...
    def stop(self, name: str, timeout: int) -> ContainerInfo: ...
    def restart(self, name: str, timeout: int) -> ContainerInfo: ...
    def remove(self, name: str, *, volume: str | None = None) -> None: ...
    def rename(self, name: str, new_name: str) -> None: ...
    def inspect(self, name: str) -> ContainerInfo | None: ...
    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]: ...
    def pause(self, name: str) -> None: ...
    # Egress policies (docs/operations.md, "Egress policy"): kernel rules keyed by the address.
    def egress_rules_set(
        self, name: str, network: str, rules: EgressRules | None, *, keep_previous: bool = False
    ) -> list[str]: ...
    def egress_rules_remove(self, name: str, network: str) -> None: ...
    def egress_available(self) -> bool: ...
    def egress_rules_replace_all(self, network: str, wanted: "list[tuple[str, EgressRules]]") -> None: ...
    def unpause(self, name: str) -> None: ...
    def stats(self, name: str) -> ContainerStats: ...
    # One read of the cumulative counters (metering); SandboxNotFound when the container is gone.
    def meter(self, name: str) -> MeterReading: ...

    # Commands, through the container's sandboxd (docs/sandboxd.md), with a deadline that kills
    # every process the command started. The kill contract, which sandboxd keeps:
    #
    # - A command is every process that carries VIBEBOX_EXEC_ID=<exec id> in its environment, is in
    #   the session or process group of the command's first process, holds the command's output,
    #   or descends from one of those; with the sweep, also every process of the sandbox user that
    #   carries no VIBEBOX_EXEC_ID at all and is in no other running command's session (what
    #   `setsid env -i` left behind), never the container's own processes.
    # - KILL ends all of them, however fast they fork, and works when the sandbox is at its pids
    #   limit (nothing new can start there): the killer, sandboxd, is already running in the sandbox.
    #   Other signals go to the command's processes as they are.
    # - A timeout is a KILL with the sweep; so is a kill through the API; destroying the sandbox
    #   removes its container, which ends everything in it.
    #
    # Every call that needs sandboxd raises 409 sandbox_not_running (sandbox_paused) for a container
    # that is not running (frozen), 409 sandbox_outdated for one made before sandboxd, and a
    # RuntimeFailure when sandboxd does not answer. A command sandboxd could not start (nothing
    # ran) answers exit code 127 with the reason on stderr.
    def exec(self, name: str, request: ExecRequest) -> ExecResult: ...

    # Background processes kept by the container's sandboxd (docs/sandboxd.md): output in its
    # ring buffer, any server process may list, attach and signal them.
    def process_start(self, name: str, request: ExecRequest) -> None: ...
    def process_list(self, name: str) -> "list[ProcessInfo]": ...
    def process_attach(
        self,
        name: str,
        exec_id: str,
        *,
        request: ExecRequest,  # its on_output gets the output; its timeout bounds the attach
        start: str | int = "start",
        stop: threading.Event | None = None,  # set: detach (the process runs on)
        on_lost: Callable[[int], None] | None = None,  # bytes no longer kept, from where it started
    ) -> ExecResult | None: ...  # None: detached by `stop`
    def process_kill(self, name: str, exec_id: str, signal: str = "KILL") -> bool: ...  # False: unknown

    # Terminals kept by the container's sandboxd (docs/sandboxd.md, "Terminals"): a command on a
    # PTY that any server process lists, attaches to (several at once) and kills; it outlives its
    # clients. An attach takes input and resizes from request.control.
    def terminal_open(self, name: str, request: ExecRequest, *, cols: int, rows: int, idle_timeout: float) -> None: ...
    def terminal_list(self, name: str) -> "list[TerminalInfo]": ...
    def terminal_attach(
        self,
        name: str,
        exec_id: str,
        *,
        request: ExecRequest,  # on_output gets ("stdout", bytes); control the input; timeout bounds the attach
        start: str | int = "start",
        stop: threading.Event | None = None,  # set: detach (the terminal runs on)
        on_lost: Callable[[int], None] | None = None,  # bytes this attacher missed (it fell behind)
    ) -> TerminalExit | None: ...  # None: detached by `stop`
    def terminal_kill(self, name: str, exec_id: str, signal: str = "KILL") -> bool: ...  # False: unknown

    # File watches kept by the container's sandboxd (docs/sandboxd.md, "File watch"): inotify,
    # recursive, events streamed. The watch is in place when this returns (a change made after it
    # is seen). Refusals: FileNotFound, FilePermissionDenied (the user cannot read the path),
    # InvalidPath (not a directory), TooManyStreams.
    def watch(self, name: str, request: WatchRequest) -> "WatchStream": ...

    # The container's own output (its main process), line by line: (unix time, text).
    def logs(self, name: str, *, stream: str, since: float | None, tail: int | None, follow: bool) -> "LogStream": ...

    # Files, as tar streams into and out of the container's filesystem (volumes included), through
    # the engine: a stopped sandbox's downloads, snapshots' workspaces.
    def path_stat(self, name: str, path: str) -> PathStat | None: ...
    def get_archive(self, name: str, path: str) -> tuple[Iterator[bytes], PathStat]: ...
    def put_archive(self, name: str, path: str, data: Iterable[bytes]) -> None: ...

    # Files through the sandbox's own daemon (sandboxd), as `user` (empty: the sandbox's user),
    # inside the container's filesystem as its processes see it (tmpfs mounts included); no
    # shell needed. Refusals are application errors: FileNotFound, FilePermissionDenied (for
    # writes PathNotWritable), FileConflict, DiskFull, InvalidPath, InvalidArchive,
    # RequestTooLarge. A write is atomic (the old content survives any failure); a tar's entries
    # stay below its directory (no "..", absolute names, or entries through symlinks).
    def file_stat(self, name: str, path: str, *, user: str = "", follow: bool = False) -> FileInfo: ...
    def file_list(
        self, name: str, path: str, *, user: str = "", recursive: bool = False, limit: int = 10000
    ) -> tuple[list[FileInfo], bool]: ...  # (entries, truncated)
    def file_mkdir(self, name: str, path: str, *, user: str = "") -> None: ...
    def file_move(
        self, name: str, source: str, destination: str, *, user: str = "", overwrite: bool = False
    ) -> None: ...
    def file_delete(self, name: str, path: str, *, user: str = "", recursive: bool = False) -> None: ...
    def file_write(
        self, name: str, path: str, fileobj, size: int, *, user: str = "", mode: int | None = None, timeout: float
    ) -> FileInfo: ...
    def file_read(self, name: str, path: str, *, user: str = "", timeout: float) -> tuple[FileInfo, FileStream]: ...
    def tar_out(self, name: str, path: str, *, user: str = "", timeout: float) -> FileStream: ...
    def tar_in(
        self,
        name: str,
        path: str,
        fileobj,
        size: int,
        *,
        user: str = "",
        max_entries: int = 0,
        timeout: float,
        gzip: bool = False,
    ) -> int: ...  # entries extracted

    # Volumes and networks.
    def list_volumes(self, labels: dict[str, str]) -> list[str]: ...
    def volume_from_image(self, volume: str, *, image: str, path: str, labels: dict[str, str]) -> None: ...
    def remove_volume(self, name: str) -> None: ...
    # Backups (docs/operations.md, "Backups"): a volume's files as a tar file at `target`, and a
    # volume (created, or replaced with `replace`) holding a tar file's files; through a helper
    # container that is never started, of a tiny image the driver makes itself (no template needed).
    def volume_export(self, volume: str, target: Path) -> int: ...  # answers the tar's size
    def volume_import(self, volume: str, source: Path, *, labels: dict[str, str], replace: bool = False) -> None: ...
    def volume_exists(self, volume: str) -> bool: ...
    # model_gateway False: not even the model gateway's port on the host is reachable (build networks).
    def ensure_network(
        self, name: str, labels: dict[str, str], *, model_gateway: bool = True, isolate: bool = True
    ) -> str: ...
    def network_gateway(self, name: str) -> str: ...
    def network_subnets(self, name: str) -> list[str]: ...
    # A node's relay (docs/nodes.md): running as the spec says. Answers "running" (left alone),
    # "reloaded" (the same relay, its files changed and read again) or "started" (started or
    # replaced now; always so with replace=True).
    def relay_ensure(self, spec: RelaySpec, *, replace: bool = False) -> str: ...
    def relay_remove(self, name: str, volume: str) -> None: ...
    def remove_network(self, name: str) -> None: ...
    # Limited builds' networks with these labels (name -> its `vibebox.build` label), and the
    # removal of one with whatever step containers are still on it.
    def build_networks(self, labels: dict[str, str]) -> dict[str, str]: ...
    def build_network_remove(self, name: str) -> None: ...
    # The containers and images (tagged or not, a dead build's step images included) carrying
    # BUILD_OWNER_LABEL and `labels` and none of NOT_BUILD_LABELS; and the removal of some of them
    # (answers the ids removed).
    def build_leftovers(self, labels: dict[str, str]) -> list[BuildLeftover]: ...
    def build_leftovers_remove(self, leftovers: list[BuildLeftover]) -> list[str]: ...

    # Images.
    def image_exists(self, tag: str) -> bool: ...
    def image_size(self, tag: str) -> int | None: ...
    def image_build(
        self,
        *,
        context: str,
        tag: str,
        buildargs: dict[str, str],
        labels: dict[str, str],
        log: BuildLog,
        target: str | None = None,  # a stage of a multi-stage Dockerfile
        limits: BuildLimits | None = None,  # an untrusted Dockerfile's (BuildFailed says why it stopped)
    ) -> None: ...
    def image_remove(self, tag: str) -> None: ...
    # An image (its layers, tags and labels) as a `docker save` tar, streamed in chunks (never held
    # whole; iterate it to the end or close it), and such a stream loaded into the engine (answers
    # what the engine says it loaded). Backups write it to a file; nodes get images this way, one
    # engine's stream piped into another's load (docs/nodes.md, "Shipping images").
    def image_save(self, tag: str) -> Iterator[bytes]: ...
    def image_load(self, chunks: Iterable[bytes]) -> list[str]: ...
    def image_details(self, tag: str) -> ImageDetails | None: ...  # None: no such image
    # The image's regular files with the setuid or setgid bit or file capabilities, read from its
    # exported filesystem (nothing of the image runs): path -> "<bits>:<size>:<sha256>[:cap=<hex>]".
    def image_setid_files(self, tag: str) -> dict[str, str]: ...
    # The contents of some of the image's files (absolute paths), read from its exported filesystem:
    # a path that is not there is absent from the answer; one that is not a regular file is None.
    def image_files(self, tag: str, paths: tuple[str, ...]) -> dict[str, bytes | None]: ...
    # The address of a running container on its (first) network, where the server reaches its ports.
    def container_address(self, name: str) -> str: ...
    # How the server dials a port of it: that address (a str) on the local engine; on a node, a
    # sandboxd_client.Relayed (the address, reached through the node's relay).
    def container_reach(self, name: str) -> object: ...
    def commit(self, name: str, *, image: str, labels: dict[str, str]) -> int: ...  # answers the layer's size
    def list_images(self, labels: dict[str, str]) -> list[ImageInfo]: ...
