"""Egress policies of sandboxes (`network`; docs/api.md, "Network policy"; docs/operations.md,
"Egress policy"): resolved once at create (create > template > organization > platform, key by
key), changed with `PATCH …/network`, and in force in two places:

- the kernel (runtime/firewall.py, through the driver): a chain per restricted sandbox, keyed by
  its address on the sandbox bridge, for its CIDRs and, when its policy goes through the egress
  proxy, for closing its direct connections; set after every start (before anything of the
  sandbox's runs), dropped at stop and destroy, and rewritten by the reconcile pass;
- the egress proxy (apps/sandboxes/egress.py), which knows the sandbox by that address
  (`network_address`; a node's sandbox by its node and that address, through a back link:
  apps/sandboxes/backlinks.py) and reads its policy from the row on every connection.

Commands get HTTP(S)_PROXY and NO_PROXY (`proxy_env`) only when their sandbox's policy needs the
proxy.
"""

import ipaddress
import logging
import time
import urllib.parse

from django.conf import settings
from django.db import transaction

from apps.audit.services import record
from apps.orgs.network import effective, networks, proxied, restricted, stored, validate_network
from vibebox import exceptions as errors

from .. import states
from ..engine import sandbox_network_gateway
from ..models import Node, Sandbox, Status
from ..runtime import EgressRules, driver_for, firewall, get_driver
from ..specs import network_name

logger = logging.getLogger(__name__)

# States in which a sandbox's container may hold its address (and its rules must be in force).
HOLDS_ADDRESS = {Status.RUNNING, Status.PAUSED, Status.STARTING, Status.CREATING, Status.STOPPING}
_gateways: dict[str, str] = {}
_node_gateways: dict[tuple, tuple[float, str]] = {}  # (node pk, network) -> (when, its bridge's gateway)
NODE_GATEWAY_TTL = 60.0


def network_resolve(*, org, template, requested: dict | None) -> dict:
    """The policy of a new sandbox: the create's keys, else the template's, else the
    organization's default, else the platform's (internet on, no lists)."""
    return effective(getattr(org, "egress_network", None), getattr(template, "network", None), requested)


def policy_of(sandbox: Sandbox) -> dict:
    return stored(sandbox.network)


# ---- the mirror (apps/orgs/mirrors.py): reachable even without internet ----


def mirror_hosts(org) -> list[tuple[str, int]]:
    """(host, port) of the organization's package registry mirrors."""
    found = []
    for url in ((getattr(org, "registry_mirrors", None) or {}) if org is not None else {}).values():
        parsed = urllib.parse.urlsplit(str(url).removeprefix("sparse+"))
        if parsed.hostname:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            if (parsed.hostname.lower(), port) not in found:
                found.append((parsed.hostname.lower(), port))
    return found


def _mirror_networks(org) -> list[str]:
    found = []
    for host, _ in mirror_hosts(org):
        try:
            found.append(str(ipaddress.ip_network(host)))
        except ValueError:
            continue  # a name: reachable through the proxy
    return found


# ---- the kernel's part ----


def rules_for(sandbox: Sandbox, policy: dict | None = None) -> EgressRules | None:
    policy = policy or policy_of(sandbox)
    if not restricted(policy):
        return None
    allow = [str(net) for net in networks(policy["allow"])] + _mirror_networks(sandbox.org)
    return EgressRules(
        deny=tuple(str(net) for net in networks(policy["deny"])),
        allow=tuple(dict.fromkeys(allow)),
        closed=proxied(policy),
        dns=policy["internet"],
    )


def network_apply(sandbox: Sandbox, *, keep_previous: bool = False) -> None:
    """Puts the sandbox's policy in force for its container's current address (after a start,
    restart or resume, before anything of the sandbox's runs). Raises when a restricted policy
    could not be set (the caller stops the sandbox rather than run it unrestricted).
    `keep_previous`: its rules at an older address stay too (a restore's container set aside
    runs on until removed; the reconcile pass drops them later)."""
    fresh = Sandbox.objects.filter(pk=sandbox.pk).values_list("network", flat=True).first()
    if fresh is not None:
        sandbox.network = fresh  # a PATCH that raced in wins
    rules = rules_for(sandbox)
    try:
        driver = driver_for(sandbox)  # the sandbox's engine: this host's firewall, or its node's through the relay
    except errors.ApplicationError:
        if rules is not None:
            raise
        logger.warning("could not clear egress rules for %s: its engine is out of reach", sandbox.id)
        return
    if rules is not None and not (firewall_available() and driver.egress_available()):
        raise errors.EgressUnavailable()
    if rules is not None and sandbox.node_id is not None and rules.closed and not node_proxy_reachable():
        # Its commands would be sent to an egress proxy that a node's sandboxes cannot reach.
        raise errors.EgressUnavailable(
            "A sandbox on a node cannot have an egress policy that goes through the egress proxy while "
            "back links are off (VIBEBOX_NODE_BACK_LINKS=0)."
        )
    try:
        addresses = driver.egress_rules_set(sandbox.container_name, network_name(), rules, keep_previous=keep_previous)
    except errors.ApplicationError:
        if rules is not None:
            raise
        logger.warning("could not clear egress rules for %s", sandbox.id)
        return
    address = addresses[0] if addresses else ""
    if sandbox.network_address != address:
        Sandbox.objects.filter(pk=sandbox.pk).update(network_address=address)
        sandbox.network_address = address


def network_release(sandbox: Sandbox) -> None:
    """Drops the sandbox's rules (it stopped or is gone: its address goes to another). Never raises."""
    try:
        driver_for(sandbox).egress_rules_remove(sandbox.container_name, network_name())
    except errors.ApplicationError as exc:
        logger.warning("could not remove egress rules of %s: %s", sandbox.id, exc.message)
    Sandbox.objects.filter(pk=sandbox.pk).update(network_address="")
    sandbox.network_address = ""


def network_reconcile() -> int:
    """Rewrites every restricted sandbox's rules at its current address and drops the rest (a
    firewall reload, a crash, a container that died): the reconcile pass, on the local engine and
    on every prepared node not down (healthy or draining, through its relay). Answers how many."""
    if not firewall_available():
        return 0
    count = 0
    for node in [None, *Node.objects.exclude(state=Node.State.DOWN).exclude(relay_image="")]:
        try:
            count += _reconcile_engine(node)
        except errors.ApplicationError as exc:  # one node's failure does not stop the others'
            logger.warning("egress rules of %s not rewritten: %s", node.name if node else "local", exc.message)
    return count


def _reconcile_engine(node: Node | None) -> int:
    driver = get_driver(node)
    if node is not None and not driver.egress_available():
        return 0
    before = _restricted(node)
    driver.egress_rules_replace_all(network_name(), [(s.container_name, rules) for s, rules in before.values()])
    # A PATCH or a start that landed while the pass ran wrote its row before setting its rules,
    # which the pass may just have overwritten with what it read: set those once more now.
    after = _restricted(node)
    for pk in before.keys() | after.keys():
        if pk not in after or pk not in before or after[pk][1] != before[pk][1]:
            sandbox = (after.get(pk) or before[pk])[0]
            try:
                network_apply(sandbox)
            except errors.ApplicationError as exc:
                logger.warning("egress rules of %s not set again: %s", sandbox.id, exc.message)
    return len(before)


def _restricted(node: Node | None = None) -> dict[str, tuple[Sandbox, EgressRules]]:
    """One engine's sandboxes holding an address whose policy its kernel must enforce (None: the
    local engine's), with their rules."""
    found = {}
    for sandbox in Sandbox.objects.filter(status__in=HOLDS_ADDRESS, node=node).select_related("org", "node"):
        rules = rules_for(sandbox)
        if rules is not None:
            found[sandbox.pk] = (sandbox, rules)
    return found


def node_proxy_reachable() -> bool:
    """Whether a node's sandboxes can reach the egress proxy: through back links (docs/nodes.md,
    "The server's services from a node"), unless VIBEBOX_NODE_BACK_LINKS is 0."""
    return settings.VIBEBOX_NODE_BACK_LINKS > 0


def firewall_available() -> bool:
    """Whether this server can enforce restricted policies (the firewall on, iptables present)."""
    return firewall.available()  # the kernel side's own check


# ---- the API's part ----


def sandbox_network_update(*, sandbox: Sandbox, changes) -> Sandbox:
    """PATCH …/network: the keys given replace the sandbox's; in force before the answer (the
    kernel's rules, and the proxy reads the row on each connection). Audited."""
    partial = validate_network(changes, partial=True)
    before = policy_of(sandbox)
    policy = effective(before, partial)
    if restricted(policy) and not firewall_available():
        raise errors.EgressUnavailable()
    with transaction.atomic():
        updated = Sandbox.objects.filter(pk=sandbox.pk, status__in=list(states.UPDATE_FROM)).update(network=policy)
        if not updated:
            sandbox.refresh_from_db()
            raise errors.SandboxStateConflict(f"Cannot change the network of a sandbox that is {sandbox.status}.")
        record("sandbox.network_changed", target=sandbox, changes={"before": before, "network": policy})
    sandbox.refresh_from_db()
    if sandbox.status in HOLDS_ADDRESS:
        try:
            network_apply(sandbox)
        except errors.ApplicationError:
            # The kernel refused: the old policy back, in the row and (if it can) the kernel.
            Sandbox.objects.filter(pk=sandbox.pk).update(network=before)
            sandbox.network = before
            try:
                network_apply(sandbox)
            except errors.ApplicationError as exc:
                logger.error("could not restore the egress rules of %s: %s", sandbox.id, exc.message)
            raise
    return sandbox


def network_view(sandbox: Sandbox) -> dict:
    policy = policy_of(sandbox)
    return {**policy, "proxied": proxied(policy)}


# ---- the commands' part ----


def node_gateway(sandbox: Sandbox) -> str:
    """A node sandbox's way to the server's services: its bridge's gateway on the node, where the
    node's relay listens for the back links (the same ports as here). Kept a minute per node (a
    node prepared again may have made its network anew)."""
    key, now = (sandbox.node_id, network_name()), time.monotonic()
    found = _node_gateways.get(key)
    if found is None or now - found[0] > NODE_GATEWAY_TTL:
        found = (now, driver_for(sandbox).network_gateway(network_name()))
        _node_gateways[key] = found
    return found[1]


def proxy_url(sandbox: Sandbox | None = None) -> str:
    host = settings.VIBEBOX_EGRESS_PROXY_HOST
    if sandbox is not None and sandbox.node_id is not None:
        host = node_gateway(sandbox)
    elif not host or host in ("0.0.0.0", "::"):  # noqa: S104
        name = network_name()
        if name not in _gateways:
            _gateways[name] = sandbox_network_gateway()
        host = _gateways[name]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.VIBEBOX_EGRESS_PROXY_PORT}"


def proxy_env(sandbox: Sandbox) -> dict[str, str]:
    """HTTP(S)_PROXY and NO_PROXY (both spellings) for a command of a sandbox whose policy goes
    through the egress proxy; {} otherwise. The model gateway is on the proxy's address: NO_PROXY
    keeps it (and the sandbox's own loopback) direct."""
    if not proxied(policy_of(sandbox)):
        return {}
    url = proxy_url(sandbox)
    direct = ["localhost", "127.0.0.1", "::1", urllib.parse.urlsplit(url).hostname or ""]
    for host in (settings.VIBEBOX_GATEWAY_HOST, urllib.parse.urlsplit(settings.VIBEBOX_GATEWAY_URL).hostname):
        if host and host not in direct:  # the model gateway, however sandboxes are told to reach it
            direct.append(host)
    no_proxy = ",".join(host for host in direct if host)
    return {
        "HTTP_PROXY": url,
        "HTTPS_PROXY": url,
        "http_proxy": url,
        "https_proxy": url,
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


# ---- the proxy's part (apps/sandboxes/egress.py) ----


def sandbox_by_address(address: str, *, node_id: int | None = None) -> Sandbox | None:
    """The sandbox holding this address on the bridge of the local engine (`node_id` None) or of
    that node (addresses repeat across engines: a back link names its node, backlinks.py): the one
    started last, should a row whose container died behind VibeBox's back still claim it."""
    return (
        Sandbox.objects.filter(
            network_address=address, node_id=node_id, status__in=[Status.RUNNING, Status.CREATING, Status.STARTING]
        )
        .select_related("org")
        .order_by("-started_at")
        .first()
    )
