"""Host firewall rules that keep sandboxes away from the host's own ports.

Docker's bridge networks let containers open connections to the host's addresses on the
bridge (its gateway), and so to any service listening on all interfaces, VibeBox's own
server included. For each sandbox bridge we add, in a chain of our own jumped to from
INPUT, a rule that drops new connections arriving from that bridge (replies to connections
the host opened stay allowed), except to the model gateway's port when there is one (the one
service of VibeBox's that sandboxes use: docs/claude.md). Traffic to the internet goes through FORWARD and is not
touched here.
"""

import contextlib
import fcntl
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)
LOCK_PATH = Path(tempfile.gettempdir()) / "vibebox-firewall.lock"


def chain_name(bridge: str) -> str:
    return f"VIBEBOX-{bridge}"[:28]


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True, check=check, timeout=30)


def isolate_bridge(bridge: str) -> bool:
    """Installs (idempotently) the rules for one bridge. False when they could not be set."""
    if not settings.VIBEBOX_FIREWALL:
        return False
    if shutil.which("iptables") is None:
        logger.warning("iptables not found: sandboxes on %s can reach the host's ports", bridge)
        return False
    chain = chain_name(bridge)
    try:
        with _rules_lock():
            _rebuild(bridge, chain)
        return True
    except (subprocess.SubprocessError, OSError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        logger.warning("could not set firewall rules for %s: %s %s", bridge, exc, stderr.strip())
        return False


@contextlib.contextmanager
def _rules_lock():
    """Serialises rebuilds across processes (the web server and the gateway both set the rules
    at startup: interleaved flushes and appends once left the DROP rule first in the chain)."""
    with open(LOCK_PATH, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _rebuild(bridge: str, chain: str) -> None:
    if _iptables("-n", "-L", chain, check=False).returncode != 0:
        _iptables("-N", chain)
    _iptables("-F", chain)
    _iptables("-A", chain, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN")
    if settings.VIBEBOX_GATEWAY_PORT:
        _iptables("-A", chain, "-p", "tcp", "--dport", str(settings.VIBEBOX_GATEWAY_PORT), "-j", "RETURN")
    _iptables("-A", chain, "-j", "DROP")
    if _iptables("-C", "INPUT", "-i", bridge, "-j", chain, check=False).returncode != 0:
        _iptables("-I", "INPUT", "1", "-i", bridge, "-j", chain)


def rules(bridge: str) -> list[str]:
    """The rules in force for a bridge (`iptables -S` lines), for checks and diagnostics."""
    chain = chain_name(bridge)
    result = _iptables("-S", chain, check=False)
    jump = [line for line in _iptables("-S", "INPUT", check=False).stdout.splitlines() if f"-j {chain}" in line]
    return jump + result.stdout.splitlines()


def remove_bridge_rules(bridge: str) -> None:
    """Removes the rules of a bridge that is gone (a throwaway instance's)."""
    if not settings.VIBEBOX_FIREWALL or shutil.which("iptables") is None:
        return
    chain = chain_name(bridge)
    with _rules_lock():
        while _iptables("-D", "INPUT", "-i", bridge, "-j", chain, check=False).returncode == 0:
            pass
        _iptables("-F", chain, check=False)
        _iptables("-X", chain, check=False)
