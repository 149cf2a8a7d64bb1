"""Host firewall rules for sandbox bridges: no way into the host, no way to private networks.

Docker's bridge networks let containers
- open connections to every address of the host (the bridge's gateway first), so to any service
  listening on all interfaces, VibeBox's own server included: that traffic goes through INPUT;
- reach anything the host routes to, private networks and link-local addresses included (the
  cloud metadata service at 169.254.169.254, the host's LAN, a VPN): that goes through FORWARD.

For each sandbox bridge, two chains of ours, for IPv4 (iptables) and IPv6 (ip6tables, when
present):
- `VIBEBOX-<bridge>`, jumped to from INPUT for traffic arriving from the bridge: replies to
  connections the host opened pass, new connections are dropped, except to the model gateway's
  port on the gateway's own address (the one service of VibeBox's that sandboxes use:
  docs/claude.md);
- `VIBEBOX-OUT-<bridge>`, jumped to for forwarded traffic entering from the bridge, from
  DOCKER-USER (the chain Docker jumps to first from FORWARD and never rewrites, so the rules
  survive a dockerd restart and the network being re-created; FORWARD itself when Docker has no
  DOCKER-USER, as for IPv6 without Docker's ip6tables support): replies pass, then the operator's
  allow-list (VIBEBOX_EGRESS_ALLOW_PRIVATE) and DNS to the host's resolvers return to Docker's
  rules, and new connections to private, link-local, loopback, CGNAT, multicast and reserved
  destinations are rejected. Public addresses stay reachable. Traffic leaving through another
  bridge (VIBEBOX_EXTRA_NETWORKS) enters from that bridge, not the sandbox bridge: not touched.

Each chain is replaced in one iptables-restore transaction, so a rebuild never leaves it open.

Where the commands run is a `Runner`: `LOCAL` (the default) runs them on this host, as always; a
remote node's driver has a `firewall_remote.RelayRunner` that sends each command to the node's
relay (`sandboxd relay --firewall`, docs/nodes.md "Egress firewall rules on a remote node"). The
binaries present, the resolvers and the lock are the runner's too. On a node the model gateway's
and the egress proxy's INPUT exceptions are not made (`Runner.model_gateway` False): those
services are the server's, not the node's, so the node's bridge chain drops every new connection
into the node's host.
"""

import contextlib
import fcntl
import ipaddress
import json
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from django.conf import settings

from .base import EgressRules

logger = logging.getLogger(__name__)
LOCK_PATH = Path(tempfile.gettempdir()) / "vibebox-firewall.lock"

# Destinations sandboxes may not open connections to (unless allow-listed). Documentation ranges
# (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are not listed: no private
# service lives there, and test networks use them for public stand-ins.
PRIVATE_V4 = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # RFC 1918
    "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local: cloud metadata (169.254.169.254)
    "172.16.0.0/12",  # RFC 1918
    "192.0.0.0/24",  # IETF protocol assignments
    "192.168.0.0/16",  # RFC 1918
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, broadcast
)
PRIVATE_V6 = (
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::ffff:0:0/96",  # IPv4-mapped
    "64:ff9b:1::/48",  # local-use NAT64 (may translate to private IPv4)
    "100::/64",  # discard
    "fc00::/7",  # unique local (fd00:ec2::254: cloud metadata over IPv6)
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)
# Where Docker's embedded DNS gets its upstream servers (it forwards a container's queries from
# the container's namespace, so through FORWARD: a private resolver must stay reachable on 53).
# Docker's choice (docker_resolvers): daemon.json's `dns`, else resolv.conf's nameservers, or
# systemd-resolved's upstream list when resolv.conf names only resolved's stub. A node's relay
# makes the same choice from the node's files (sandboxd/internal/relay/resolvers.go).
RESOLV_CONF = "/etc/resolv.conf"
RESOLVED_CONF = "/run/systemd/resolve/resolv.conf"
RESOLVED_STUB = "127.0.0.53"
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"


@dataclass(frozen=True)
class Family:
    version: int
    binary: str
    reject: str  # the ICMP answer for rejected connections: "administratively prohibited"
    private: tuple[str, ...]

    @property
    def restore(self) -> str:
        return self.binary + "-restore"


IPV4 = Family(4, "iptables", "icmp-admin-prohibited", PRIVATE_V4)
IPV6 = Family(6, "ip6tables", "icmp6-adm-prohibited", PRIVATE_V6)


def chain_name(bridge: str) -> str:
    return f"VIBEBOX-{bridge}"[:28]


def egress_chain_name(bridge: str) -> str:
    return f"VIBEBOX-OUT-{bridge}"[:28]


class Runner(Protocol):
    """Where the iptables commands run (this host, or a node through its relay)."""

    name: str  # for logs: "local", "node NAME"
    model_gateway: bool  # whether the server's own services (model gateway, egress proxy) are reachable

    def run(self, binary: str, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        """Runs one of iptables, ip6tables, iptables-restore, ip6tables-restore; answers (exit code,
        stdout, stderr). Raises OSError or subprocess.SubprocessError when it could not be run."""

    def has(self, binary: str) -> bool: ...

    def resolvers(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]: ...

    def lock(self) -> contextlib.AbstractContextManager: ...


class LocalRunner:
    """This host's iptables, as the firewall always ran them."""

    name = "local"
    model_gateway = True

    def run(self, binary: str, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        done = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout, done.stderr

    def has(self, binary: str) -> bool:
        return shutil.which(binary) is not None

    def resolvers(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return host_resolvers()

    def lock(self) -> contextlib.AbstractContextManager:
        return _rules_lock()


class NoRunner:
    """A node's driver given no relay: nothing is run, and never on this host (its bridges are not
    here). isolate_bridge answers False; a sandbox's egress rules cannot be put in force (OSError:
    a restricted policy is never left unenforced in silence)."""

    name = "none"
    model_gateway = False

    def run(self, binary: str, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        raise OSError("no firewall agent for this engine")

    def has(self, binary: str) -> bool:
        return False

    def resolvers(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return []

    def lock(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


LOCAL = LocalRunner()
NONE = NoRunner()


def _run(family: Family, *args: str, check: bool = True, runner: Runner = LOCAL) -> subprocess.CompletedProcess:
    return _call(runner, family.binary, ["-w", *args], check=check)


def _call(runner: Runner, binary: str, args: list[str], *, stdin: str | None = None, check: bool = True):
    code, stdout, stderr = runner.run(binary, args, stdin)
    if check and code != 0:
        raise subprocess.CalledProcessError(code, [binary, *args], stdout, stderr)
    return subprocess.CompletedProcess([binary, *args], code, stdout, stderr)


def _restore(family: Family, payload: str, runner: Runner) -> None:
    _call(runner, family.restore, ["-w", "--noflush"], stdin=payload)


def _iptables(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return _run(IPV4, *args, check=check)


def _families(runner: Runner = LOCAL) -> list[Family]:
    found = [family for family in (IPV4, IPV6) if runner.has(family.binary) and runner.has(family.restore)]
    return found


def isolate_bridge(
    bridge: str, gateway: str | None = None, *, model_gateway: bool = True, runner: Runner = LOCAL
) -> bool:
    """Installs (idempotently) the rules for one bridge; `gateway`: the host's address on it,
    where sandboxes reach the model gateway (`model_gateway` False: not even that port, as for
    the marketplace's build networks; never on a node's runner). False when they could not be set."""
    if not enabled():
        return False
    try:
        if not runner.has("iptables"):
            reason = "iptables not found (%s): sandboxes on %s can reach the host and private networks"
            logger.warning(reason, runner.name, bridge)
            return False
        families = _families(runner)
        if IPV6 not in families:
            logger.warning("ip6tables not found (%s): IPv6 traffic from %s is not filtered", runner.name, bridge)
        allowed = allowed_private()
        resolvers = runner.resolvers()
        with runner.lock():
            for family in families:
                gateways = gateway_addresses(gateway, family) if model_gateway and runner.model_gateway else []
                _rebuild(family, bridge, gateways, allowed, resolvers, runner)
        return True
    except (subprocess.SubprocessError, OSError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        logger.warning("could not set firewall rules for %s (%s): %s %s", bridge, runner.name, exc, stderr.strip())
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


def allowed_private() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """VIBEBOX_EGRESS_ALLOW_PRIVATE as networks (settings has validated them)."""
    return [ipaddress.ip_network(cidr, strict=False) for cidr in settings.VIBEBOX_EGRESS_ALLOW_PRIVATE]


def gateway_addresses(gateway: str | None, family: Family) -> list[str]:
    """Where sandboxes may reach the gateway's port: the bridge's gateway, and the address the
    gateway is told to listen on when that is one address (not 0.0.0.0 or ::)."""
    found = []
    for candidate in (gateway, settings.VIBEBOX_GATEWAY_HOST):
        try:
            address = ipaddress.ip_address(candidate or "")
        except ValueError:
            continue
        if address.version == family.version and not address.is_unspecified and str(address) not in found:
            found.append(str(address))
    return found


def host_resolvers() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The DNS servers Docker's embedded DNS forwards to from this host's files."""
    texts = []
    for path in (RESOLV_CONF, RESOLVED_CONF, DOCKER_DAEMON_JSON):
        try:
            texts.append(Path(path).read_text(errors="replace"))
        except OSError:
            texts.append("")
    return usable_resolvers(docker_resolvers(*texts))


def _nameservers(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found


def docker_resolvers(resolv_conf: str, resolved_conf: str, daemon_json: str) -> list[str]:
    """Docker's choice of its containers' upstream DNS servers from the three files' texts (""
    for a missing one): daemon.json's `dns` when it lists any, else resolv.conf's nameservers, or
    systemd-resolved's upstream list when resolv.conf names nothing but resolved's stub."""
    try:
        listed = json.loads(daemon_json).get("dns") if daemon_json.strip() else None
    except (ValueError, AttributeError):
        listed = None
    if isinstance(listed, list) and (chosen := [str(name).strip() for name in listed if str(name).strip()]):
        return chosen
    chosen = _nameservers(resolv_conf)
    if chosen and all(name == RESOLVED_STUB for name in chosen):
        chosen = _nameservers(resolved_conf) or chosen
    return chosen


def usable_resolvers(names) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses among `names` the bridge rules open port 53 to, once each: loopback ones are
    left out (Docker's embedded DNS reaches them from the host's own namespace: nothing to open;
    Docker's fallback to public servers needs nothing either, public addresses staying reachable),
    and so is what is not an address. The local host's and a node's relay's lists alike."""
    found = []
    for name in names if isinstance(names, list) else []:
        try:
            address = ipaddress.ip_address(str(name).split("%", 1)[0])
        except ValueError:
            continue
        if not address.is_loopback and address not in found:
            found.append(address)
    return found


def _forward_parent(family: Family, runner: Runner = LOCAL) -> str:
    """DOCKER-USER when Docker made it (its documented place for rules of ours), else FORWARD."""
    listed = _run(family, "-n", "-L", "DOCKER-USER", check=False, runner=runner)
    return "DOCKER-USER" if listed.returncode == 0 else "FORWARD"


def _rebuild(
    family: Family, bridge: str, gateways: list[str], allowed: list, resolvers: list, runner: Runner = LOCAL
) -> None:
    inbound, outbound = chain_name(bridge), egress_chain_name(bridge)
    established = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]
    # A declared chain is made, or emptied when it exists (--noflush leaves every other chain alone).
    rules = [[f":{inbound}", "-", "[0:0]"], [f":{outbound}", "-", "[0:0]"]]
    rules += [["-F", inbound], ["-A", inbound, *established]]
    if family is IPV6:  # neighbour discovery: IPv6 on the bridge needs it
        rules.append(["-A", inbound, "-p", "ipv6-icmp", "-j", "RETURN"])
    if settings.VIBEBOX_GATEWAY_PORT:
        port = str(settings.VIBEBOX_GATEWAY_PORT)
        rules += [["-A", inbound, "-d", address, "-p", "tcp", "--dport", port, "-j", "RETURN"] for address in gateways]
    if settings.VIBEBOX_EGRESS_PROXY_PORT:  # the egress proxy, on the same addresses (docs/operations.md)
        port = str(settings.VIBEBOX_EGRESS_PROXY_PORT)
        rules += [["-A", inbound, "-d", address, "-p", "tcp", "--dport", port, "-j", "RETURN"] for address in gateways]
    rules.append(["-A", inbound, "-j", "DROP"])

    rules += [["-F", outbound], ["-A", outbound, *established]]
    rules += [["-A", outbound, "-d", str(net), "-j", "RETURN"] for net in allowed if net.version == family.version]
    for resolver in resolvers:
        if resolver.version == family.version:
            rules += [
                ["-A", outbound, "-d", str(resolver), "-p", proto, "--dport", "53", "-j", "RETURN"]
                for proto in ("udp", "tcp")
            ]
    reject = ["-j", "REJECT", "--reject-with", family.reject]
    rules += [["-A", outbound, "-d", cidr, *reject] for cidr in family.private]

    jumps = [("INPUT", inbound), (_forward_parent(family, runner), outbound)]
    for parent, chain in jumps:
        if _run(family, "-C", parent, "-i", bridge, "-j", chain, check=False, runner=runner).returncode != 0:
            rules.append(["-I", parent, "1", "-i", bridge, "-j", chain])
    payload = "*filter\n" + "".join(" ".join(rule) + "\n" for rule in rules) + "COMMIT\n"
    _restore(family, payload, runner)


def rules(bridge: str, *, ipv6: bool = False, runner: Runner = LOCAL) -> list[str]:
    """The rules in force for a bridge (`iptables -S` lines: the jumps to our chains, then the
    chains), for checks and diagnostics."""
    family = IPV6 if ipv6 else IPV4
    chains = (chain_name(bridge), egress_chain_name(bridge))
    lines = []
    for parent in ("INPUT", "DOCKER-USER", "FORWARD"):
        listed = _run(family, "-S", parent, check=False, runner=runner).stdout.splitlines()
        lines += [line for line in listed if any(line.endswith(f"-j {chain}") for chain in chains)]
    for chain in chains:
        lines += _run(family, "-S", chain, check=False, runner=runner).stdout.splitlines()
    return lines


def remove_bridge_rules(bridge: str, *, runner: Runner = LOCAL) -> None:
    """Removes the rules of a bridge that is gone (a throwaway instance's)."""
    if not settings.VIBEBOX_FIREWALL or not runner.has("iptables"):
        return
    with runner.lock():
        for family in _families(runner):
            for parent, chain in (
                ("INPUT", chain_name(bridge)),
                ("DOCKER-USER", egress_chain_name(bridge)),
                ("FORWARD", egress_chain_name(bridge)),
            ):
                while _run(family, "-D", parent, "-i", bridge, "-j", chain, check=False, runner=runner).returncode == 0:
                    pass
            for chain in (chain_name(bridge), egress_chain_name(bridge)):
                _run(family, "-F", chain, check=False, runner=runner)
                _run(family, "-X", chain, check=False, runner=runner)
        remove_policy_rules(bridge, runner=runner)


# ---- per-sandbox egress policies (docs/operations.md, "Egress policy") ----
#
# Beside the bridge's chains, for each family, `VIBEBOX-NET-<bridge>` (jumped to from DOCKER-USER,
# or FORWARD, for traffic entering from the bridge) sends each restricted sandbox's new connections,
# by its source address on the bridge, to a chain of its own, `VBX-<sandbox id>`: rejected
# destinations of its `deny`, then (when its direct connections are closed) its allowed networks
# and DNS pass and the rest is rejected. A sandbox with the platform's policy has no entry. The
# dispatch chain is rewritten whole, with the sandbox chains that change, in one iptables-restore
# transaction: an address taken over by another sandbox never keeps the old one's chain.


def _policy_body(rules: EgressRules, family: Family, resolvers: list) -> list[list[str]]:
    reject = ["-j", "REJECT", "--reject-with", family.reject]
    body = []
    for cidr in rules.deny:
        if ipaddress.ip_network(cidr, strict=False).version == family.version:
            body.append(["-d", cidr, *reject])
    if rules.closed:
        for cidr in rules.allow:
            if ipaddress.ip_network(cidr, strict=False).version == family.version:
                body.append(["-d", cidr, "-j", "RETURN"])
        if rules.dns:
            for resolver in resolvers:
                if resolver.version == family.version:
                    body += [["-d", str(resolver), "-p", p, "--dport", "53", "-j", "RETURN"] for p in ("udp", "tcp")]
        body.append(reject)
    return body


def policy_chain_name(bridge: str) -> str:
    return f"VIBEBOX-NET-{bridge}"[:28]


def sandbox_chain_name(sandbox_id: str) -> str:
    return f"VBX-{sandbox_id.removeprefix('sbx_')}"[:28]


def enabled() -> bool:
    """Whether the operator left the firewall on (VIBEBOX_FIREWALL)."""
    return bool(settings.VIBEBOX_FIREWALL)


def available(runner: Runner = LOCAL) -> bool:
    """Whether per-sandbox rules can be set there (the firewall is on and iptables is installed)."""
    return enabled() and runner.has("iptables")


def _dispatch(family: Family, bridge: str, runner: Runner = LOCAL) -> dict[str, str]:
    """The dispatch chain's entries: source network ("172.18.0.5/32") -> sandbox chain."""
    chain = policy_chain_name(bridge)
    found = {}
    for line in _run(family, "-S", chain, check=False, runner=runner).stdout.splitlines():
        fields = line.split()
        if fields[:2] == ["-A", chain] and "-s" in fields and "-j" in fields:
            found[fields[fields.index("-s") + 1]] = fields[fields.index("-j") + 1]
    return found


def _write_policies(
    family: Family, bridge: str, entries: dict[str, str], chains: dict[str, list], old: dict, runner: Runner = LOCAL
) -> None:
    dispatch = policy_chain_name(bridge)
    if _run(family, "-n", "-L", dispatch, check=False, runner=runner).returncode != 0:
        _run(family, "-N", dispatch, runner=runner)
    rules = [[f":{chain}", "-", "[0:0]"] for chain in chains]
    rules += [["-F", chain] for chain in chains]
    rules += [["-F", dispatch], ["-A", dispatch, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"]]
    rules += [["-A", dispatch, "-s", source, "-j", chain] for source, chain in sorted(entries.items())]
    for chain, body in chains.items():
        rules += [["-A", chain, *rule] for rule in body]
    for chain in sorted(set(old.values()) - set(entries.values()) - set(chains)):
        rules += [["-F", chain], ["-X", chain]]  # no longer jumped to
    parent = _forward_parent(family, runner)
    if _run(family, "-C", parent, "-i", bridge, "-j", dispatch, check=False, runner=runner).returncode != 0:
        rules.append(["-I", parent, "1", "-i", bridge, "-j", dispatch])
    payload = "*filter\n" + "".join(" ".join(rule) + "\n" for rule in rules) + "COMMIT\n"
    _restore(family, payload, runner)


def _sources(addresses, family: Family) -> list[str]:
    found = []
    for address in addresses:
        network = ipaddress.ip_network(address)
        if network.version == family.version:
            found.append(str(network))
    return found


def sandbox_rules_set(
    bridge: str,
    sandbox_id: str,
    addresses: list[str],
    rules: EgressRules | None,
    *,
    keep_previous: bool = False,
    runner: Runner = LOCAL,
) -> None:
    """Puts one sandbox's rules in force for its `addresses` on the bridge (`rules` None: it has
    none, and any entry for it or for those addresses goes; `keep_previous`: its entries for
    other addresses stay, as for the container a restore set aside, still running). Raises OSError or
    subprocess.SubprocessError when the rules could not be set. Nothing without the firewall."""
    if rules is not None and addresses and isinstance(runner, NoRunner) and settings.VIBEBOX_FIREWALL:
        raise OSError("no firewall agent for this node: the sandbox's egress rules cannot be set")
    if not available(runner):
        return
    chain = sandbox_chain_name(sandbox_id)
    resolvers = runner.resolvers()
    with runner.lock():
        for family in _families(runner):
            old = _dispatch(family, bridge, runner)
            sources = _sources(addresses, family)
            entries = {
                source: name
                for source, name in old.items()
                if (name != chain or keep_previous) and source not in sources
            }
            chains = {}
            if rules is not None and sources:
                entries.update(dict.fromkeys(sources, chain))
                chains[chain] = _policy_body(rules, family, resolvers)
            if entries != old or chains:
                _write_policies(family, bridge, entries, chains, old, runner)


def sandbox_rules_remove(bridge: str, sandbox_id: str, *, runner: Runner = LOCAL) -> None:
    sandbox_rules_set(bridge, sandbox_id, [], None, runner=runner)


def sandbox_rules_replace_all(
    bridge: str, wanted: list[tuple[str, list[str], EgressRules]], *, runner: Runner = LOCAL
) -> None:
    """Rewrites the bridge's per-sandbox rules to exactly `wanted` ((sandbox id, addresses,
    rules) of each restricted sandbox): the reconcile pass, after a firewall reload or a crash."""
    if wanted and isinstance(runner, NoRunner) and settings.VIBEBOX_FIREWALL:
        raise OSError("no firewall agent for this node: the sandboxes' egress rules cannot be set")
    if not available(runner):
        return
    resolvers = runner.resolvers()
    with runner.lock():
        for family in _families(runner):
            old = _dispatch(family, bridge, runner)
            entries, chains = {}, {}
            for sandbox_id, addresses, rules in wanted:
                sources = _sources(addresses, family)
                if sources:
                    chain = sandbox_chain_name(sandbox_id)
                    entries.update(dict.fromkeys(sources, chain))
                    chains[chain] = _policy_body(rules, family, resolvers)
            _write_policies(family, bridge, entries, chains, old, runner)


def sandbox_rules(bridge: str, sandbox_id: str, *, ipv6: bool = False, runner: Runner = LOCAL) -> list[str]:
    """The dispatch entries and the chain of one sandbox (`iptables -S` lines), for checks."""
    family = IPV6 if ipv6 else IPV4
    chain = sandbox_chain_name(sandbox_id)
    listed = _run(family, "-S", policy_chain_name(bridge), check=False, runner=runner).stdout.splitlines()
    lines = [line for line in listed if line.endswith(f"-j {chain}")]
    return lines + _run(family, "-S", chain, check=False, runner=runner).stdout.splitlines()


def remove_policy_rules(bridge: str, *, runner: Runner = LOCAL) -> None:
    """Removes the bridge's per-sandbox rules (remove_bridge_rules' part for them)."""
    if not available(runner):
        return
    dispatch = policy_chain_name(bridge)
    for family in _families(runner):
        chains = set(_dispatch(family, bridge, runner).values())
        for parent in ("DOCKER-USER", "FORWARD"):
            while _run(family, "-D", parent, "-i", bridge, "-j", dispatch, check=False, runner=runner).returncode == 0:
                pass
        for chain in [dispatch, *sorted(chains)]:
            _run(family, "-F", chain, check=False, runner=runner)
        for chain in [dispatch, *sorted(chains)]:
            _run(family, "-X", chain, check=False, runner=runner)
