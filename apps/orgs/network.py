"""Egress policies (`network`): what a sandbox may connect to (docs/api.md, "Network policy";
docs/operations.md, "Egress policy").

A policy is `{"internet": bool, "allow": [entry], "deny": [entry]}`; an entry is a domain
(`api.github.com`), a wildcard (`*.npmjs.org`: any name below npmjs.org, not npmjs.org itself),
an IP address or a CIDR. `deny` wins over `allow`; `allow` matters only with `internet: false`.

Here (the lowest app that needs it: organizations and templates carry defaults) are the
validation, the precedence of the levels and the matching, all pure; the sandboxes app enforces.
"""

import ipaddress
import re

from vibebox import exceptions as errors

MAX_ENTRIES = 256
KEYS = ("internet", "allow", "deny")
PLATFORM_DEFAULT = {"internet": True, "allow": [], "deny": []}
ENTRY_CODE = "invalid_network_entry"  # the field problem's code (the error's is validation_error)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _entry(value) -> str | None:
    """The normalised entry (lowercase name without a trailing dot, a network in CIDR form), or
    None when it is not one."""
    if not isinstance(value, str) or not value or len(value) > 260:
        return None
    text = value.strip().lower()
    if "/" in text:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.removesuffix(".")
    wildcard = name.startswith("*.")
    labels = (name[2:] if wildcard else name).split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():  # 1.2.3 or 10.0.0.300: an address gone wrong, not a name
        return None
    return name


def validate_network(value, *, field: str = "network", partial: bool = False) -> dict:
    """A policy as the API, a template.yaml or an organization's default gives it, normalised.
    Only the keys given are returned (levels merge key by key: `effective`); 400
    `validation_error` naming the field otherwise."""

    def fail(where: str, message: str, code: str = "invalid"):
        raise errors.ValidationFailed(
            f"{where}: {message}", details={"fields": {where: [{"message": message, "code": code}]}}
        )

    if not isinstance(value, dict):
        fail(field, "an object with internet (true or false), allow and deny (lists of domains, IPs or CIDRs).")
    unknown = sorted(set(map(str, value)) - set(KEYS))
    if unknown:
        fail(f"{field}.{unknown[0]}", f"unknown key; known: {', '.join(KEYS)}.")
    policy: dict = {}
    if "internet" in value:
        if not isinstance(value["internet"], bool):
            fail(f"{field}.internet", "true or false.")
        policy["internet"] = value["internet"]
    for key in ("allow", "deny"):
        if key not in value:
            continue
        entries = value[key]
        if not isinstance(entries, list):
            fail(f"{field}.{key}", "a list of domains ('api.github.com', '*.npmjs.org'), IP addresses or CIDRs.")
        if len(entries) > MAX_ENTRIES:
            fail(f"{field}.{key}", f"at most {MAX_ENTRIES} entries.")
        normalised = []
        for index, entry in enumerate(entries):
            clean = _entry(entry)
            if clean is None:
                shown = str(entry)[:80]
                fail(
                    f"{field}.{key}",
                    f"entry {index} ({shown!r}) is not a domain, '*.domain', an IP address or a CIDR.",
                    ENTRY_CODE,
                )
            if clean not in normalised:
                normalised.append(clean)
        policy[key] = normalised
    if not partial:
        policy = {**PLATFORM_DEFAULT, **policy}
    return policy


def effective(*levels: dict | None) -> dict:
    """The policy from its levels, lowest first (platform < organization < template < create):
    each key is the highest level's that sets it."""
    policy = dict(PLATFORM_DEFAULT)
    for level in levels:
        for key in KEYS:
            if level and key in level:
                policy[key] = level[key]
    return {"internet": bool(policy["internet"]), "allow": list(policy["allow"]), "deny": list(policy["deny"])}


def stored(policy: dict | None) -> dict:
    """A sandbox's stored policy; rows from before policies have none: the platform's."""
    return effective(policy or {})


# ---- reading a policy ----


def networks(entries: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    found = []
    for entry in entries:
        try:
            found.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return found


def names(entries: list[str]) -> list[str]:
    return [entry for entry in entries if not _is_address(entry)]


def _is_address(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def name_matches(host: str, entries: list[str]) -> bool:
    host = host.lower().removesuffix(".")
    for entry in names(entries):
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def address_matches(address, entries: list[str]) -> bool:
    address = ipaddress.ip_address(address)
    return any(address.version == net.version and address in net for net in networks(entries))


def proxied(policy: dict) -> bool:
    """Whether the policy needs the egress proxy: without internet, or with names to deny (which
    only the proxy can tell). Its direct connections are closed then, but to allowed addresses."""
    return not policy["internet"] or bool(names(policy["deny"]))


def restricted(policy: dict) -> bool:
    """Whether the kernel has anything to do for it (a chain of its own)."""
    return proxied(policy) or bool(networks(policy["deny"]))
