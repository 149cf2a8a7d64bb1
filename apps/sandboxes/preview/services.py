"""Writes of preview URLs: a port's public flag (kept on the Sandbox, audited)."""

from django.db import transaction

from apps.audit.services import record

from ..models import Sandbox
from .ports import is_public, parse_port


def port_public_set(*, sandbox: Sandbox, port: int, public: bool) -> Sandbox:
    """Makes `port` of the sandbox open to anyone (`public`) or private again (the default: a
    preview token or the owner's session). Answers the sandbox as it is now."""
    port = parse_port(port)
    with transaction.atomic():
        locked = Sandbox.objects.select_for_update().get(pk=sandbox.pk)
        before = is_public(locked, port)
        flags = dict(locked.ports) if isinstance(locked.ports, dict) else {}
        if public:
            flags[str(port)] = {**(flags.get(str(port)) or {}), "public": True}
        else:
            flags.pop(str(port), None)
        if before != public:
            Sandbox.objects.filter(pk=sandbox.pk).update(ports=flags)
            record("sandbox.port_updated", target=locked, changes={"port": port, "public": [before, public]})
    sandbox.ports = flags
    return sandbox
