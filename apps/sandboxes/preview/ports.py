"""Which ports of a sandbox a preview can reach: those it listens on, read from its
/proc/net/tcp and /proc/net/tcp6 (a command run through sandboxd as the sandbox user: sandboxd's
file reads refuse /proc), the template's declared ports, and the public flags kept on the Sandbox
(`ports`: {"3000": {"public": true}}). Reserved ports (sandboxd's) are never listed or proxied.
For a sandbox on a node the command goes through the node's relay like every sandboxd call, and
the answer carries the relay the proxy dials its ports through (`Listening.relay`).

What the sandbox prints is hostile: lines are parsed strictly, malformed ones skipped, and at
most MAX_LINES lines of each table are read (the kernel lists listening sockets first).
The answer is cached per process for CACHE_SECONDS, keyed by the sandbox's state and its last
state change, so proxying asks the sandbox at most that often and a restart is never answered
from before it.
"""

import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field

from vibebox import exceptions as errors

from ..models import Sandbox, Status
from ..runtime import ExecRequest, driver_for
from ..runtime.sandboxd_client import PORT as DAEMON_PORT
from ..runtime.sandboxd_client import Relayed

RESERVED_PORTS = frozenset({DAEMON_PORT})
CACHE_SECONDS = 2.0
MAX_LINES = 4096  # of each table: a listening socket is among the first lines
READ_TIMEOUT = 10.0
OUTPUT_LIMIT = 2 * 1024 * 1024
LISTEN = "0A"
LOOPBACK_ONLY = ("127.", "::1")
# Both tables in one command; a table that is missing (no IPv6) is skipped.
READ_COMMAND = f"for t in /proc/net/tcp /proc/net/tcp6; do [ -r $t ] && head -n {MAX_LINES} $t; done; true"


def parse_port(value) -> int:
    """A port from a URL or a body: 1..65535 and not reserved, else 400 invalid_port."""
    text = str(value)
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise errors.InvalidPort(details={"port": text[:20]})
    port = int(text)
    if port in RESERVED_PORTS:
        raise errors.InvalidPort("The server reserves this port in every sandbox.", details={"port": port})
    return port


def _address(hex_address: str) -> str | None:
    """/proc/net/tcp's address: 8 hex digits (IPv4) or 32 (IPv6), each 32-bit word in host (little-endian) order."""
    if len(hex_address) not in (8, 32):
        return None
    try:
        raw = bytes.fromhex(hex_address)
    except ValueError:
        return None
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def parse_tables(text: str) -> dict[int, str]:
    """LISTEN sockets of /proc/net/tcp{,6} lines: port -> the address it listens on, a wildcard one
    ("0.0.0.0", "::") preferred over a specific one, a non-loopback one over loopback."""
    found: dict[int, str] = {}
    for line in text.splitlines()[: 2 * MAX_LINES + 2]:
        fields = line.split()
        if len(fields) < 4 or not fields[0].endswith(":") or fields[3] != LISTEN:
            continue
        host, sep, port_hex = fields[1].partition(":")
        if not sep or len(port_hex) != 4:
            continue
        try:
            port = int(port_hex, 16)
        except ValueError:
            continue
        address = _address(host)
        if address is None or not 1 <= port <= 65535:
            continue
        if port not in found or _rank(address) > _rank(found[port]):
            found[port] = address
    return found


def _rank(address: str) -> int:
    if address in ("0.0.0.0", "::"):  # noqa: S104 (a listening address, not a bind)
        return 2
    return 0 if address.startswith(LOOPBACK_ONLY) else 1


def reachable(address: str) -> bool:
    """Whether a socket listening on `address` accepts connections from outside the sandbox."""
    return _rank(address) > 0


@dataclass(frozen=True)
class Listening:
    address: str  # the sandbox's address on the sandbox network ("" when it is not running)
    ports: dict[int, str] = field(default_factory=dict)  # port -> the address it listens on
    # A sandbox on a node: its node's relay, through which its ports are dialled (the address is
    # on the node's bridge); None on the local engine.
    relay: Relayed | None = None


_cache: dict[str, tuple[tuple, float, Listening]] = {}
_cache_lock = threading.Lock()


def _stamp(sandbox: Sandbox) -> tuple:
    return (sandbox.status, sandbox.updated_at, sandbox.container_id)


def listening(sandbox: Sandbox, *, max_age: float = CACHE_SECONDS) -> Listening:
    """The sandbox's listening ports (reserved ones left out) and its address; a sandbox that is
    not running listens on nothing. Errors of the engine or sandboxd are raised (runtime_error...)."""
    if sandbox.status != Status.RUNNING:
        return Listening(address="")
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(sandbox.pk)
    if cached is not None and cached[0] == _stamp(sandbox) and now - cached[1] <= max_age:
        return cached[2]
    driver = driver_for(sandbox)
    request = ExecRequest(
        argv=("sh", "-c", READ_COMMAND),
        exec_id=f"preview_ports_{secrets.token_hex(8)}",
        timeout=READ_TIMEOUT,
        output_limit=OUTPUT_LIMIT,
        workdir="/",
    )
    result = driver.exec(sandbox.container_name, request)
    ports = {port: address for port, address in parse_tables(result.stdout.decode("ascii", "replace")).items()}
    for port in RESERVED_PORTS:
        ports.pop(port, None)
    reach = driver.container_reach(sandbox.container_name)
    if isinstance(reach, Relayed):
        found = Listening(address=reach.host, ports=ports, relay=reach)
    else:
        found = Listening(address=reach, ports=ports)
    with _cache_lock:
        if len(_cache) > 10000:  # a process that served many sandboxes: start over
            _cache.clear()
        _cache[sandbox.pk] = (_stamp(sandbox), now, found)
    return found


def forget(sandbox_id: str) -> None:
    with _cache_lock:
        _cache.pop(sandbox_id, None)


def declared(sandbox: Sandbox) -> dict[int, str]:
    """The template's declared ports (template.yaml `ports`): port -> description."""
    found: dict[int, str] = {}
    for entry in sandbox.template.ports or []:
        if isinstance(entry, dict):
            port, description = entry.get("container"), entry.get("description") or ""
        else:
            port, description = entry, ""
        if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535 and port not in RESERVED_PORTS:
            found.setdefault(port, str(description)[:200])
    return found


def is_public(sandbox: Sandbox, port: int) -> bool:
    flags = sandbox.ports.get(str(port)) if isinstance(sandbox.ports, dict) else None
    return bool(isinstance(flags, dict) and flags.get("public") is True)


@dataclass(frozen=True)
class PortInfo:
    port: int
    listening: bool
    declared: bool
    public: bool
    address: str  # where it listens in the sandbox ("" when it does not)
    description: str


def port_info(sandbox: Sandbox, port: int, found: Listening | None = None) -> PortInfo:
    found = found if found is not None else listening(sandbox)
    declared_ports = declared(sandbox)
    return PortInfo(
        port=port,
        listening=port in found.ports,
        declared=port in declared_ports,
        public=is_public(sandbox, port),
        address=found.ports.get(port, ""),
        description=declared_ports.get(port, ""),
    )


def port_list(sandbox: Sandbox) -> list[PortInfo]:
    """Listening ports, declared ports and ports marked public, by number."""
    found = listening(sandbox)
    numbers = set(found.ports) | set(declared(sandbox))
    numbers |= {
        int(p) for p in (sandbox.ports or {}) if str(p).isascii() and str(p).isdigit() and is_public(sandbox, int(p))
    }
    return [port_info(sandbox, port, found) for port in sorted(numbers - RESERVED_PORTS)]
