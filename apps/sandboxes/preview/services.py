"""Preview URLs' side shared by REST and GraphQL: a port's public flag (kept on the Sandbox,
audited), a port as the APIs answer it, and a signed URL for one."""

from django.db import transaction

from apps.audit.services import record
from vibebox import exceptions as errors
from vibebox.units import parse_duration

from ..models import Sandbox
from . import links, ports
from .ports import is_public, parse_port

URL_DEFAULT_SECONDS = 3600
URL_MAX_SECONDS = 7 * 86400


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


def port_answer(sandbox: Sandbox, info: ports.PortInfo, *, origin: str) -> dict:
    """A port as the APIs answer it (PortSerializer's fields); `origin`: the server's, for the path form."""
    return {
        "port": info.port,
        "listening": info.listening,
        "declared": info.declared,
        "public": info.public,
        "address": info.address,
        "description": info.description,
        "url": links.host_url(sandbox.pk, info.port),
        "pathUrl": links.path_url(sandbox.pk, info.port, origin=origin),
    }


def port_public_update(*, sandbox: Sandbox, port, public: bool, origin: str) -> dict:
    """port_public_set, answered as the port is now (what listens there read best-effort)."""
    port = parse_port(port)
    sandbox = port_public_set(sandbox=sandbox, port=port, public=public)
    try:
        found = ports.listening(sandbox)
    except errors.ApplicationError:  # the flag is set; what listens is only unknown
        found = ports.Listening(address="")
    return port_answer(sandbox, ports.port_info(sandbox, port, found), origin=origin)


def preview_url(*, sandbox: Sandbox, port, expires_in=None, form: str | None = None, origin: str) -> dict:
    """A signed, expiring URL for the port (PortUrlSerializer's fields): `expires_in` seconds or
    '30m' (default 1 h, at most 7 days), `form` host (default) or path."""
    port = parse_port(port)
    try:
        seconds = URL_DEFAULT_SECONDS if expires_in in (None, "") else parse_duration(expires_in)
    except ValueError as exc:
        raise errors.InvalidDuration(f"expiresIn: {exc}", details={"field": "expiresIn"}) from None
    if not 1 <= seconds <= URL_MAX_SECONDS:
        raise errors.InvalidDuration(
            "expiresIn is from 1 second to 7 days.", details={"field": "expiresIn", "max": URL_MAX_SECONDS}
        )
    form = form or "host"
    if form not in ("host", "path"):
        raise errors.ValidationFailed(details={"fields": {"form": ["host or path."]}})
    signed = links.signed_url(sandbox.pk, port, form=form, seconds=seconds, origin=origin)
    return {
        "port": port,
        "url": signed.url,
        "token": signed.token,
        "expiresAt": signed.expires_at,
        "public": ports.is_public(sandbox, port),
    }
