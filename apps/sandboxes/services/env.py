"""Sandbox environment variables: validated, encrypted at rest, secret ones never shown.

Stored in `Sandbox.env` as {NAME: {"value": <Fernet token>, "secret": bool}}. They are not
put into the container's configuration (where `docker inspect` would show them) but passed
to every exec, so changes apply to the next command without a restart.
"""

import re

from django.db import transaction

from apps.audit.services import record
from vibebox import exceptions as errors
from vibebox.crypto import decrypt, encrypt

from ..models import Sandbox
from .network import proxy_env

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_BYTES = 32 * 1024
MAX_VARIABLES = 200
MASK = "********"


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise errors.InvalidEnv(
            "Variable names are letters, digits and '_', not starting with a digit (no '=', NUL or newline).",
            details={"name": str(name)[:130]},
        )
    return name


def _normalise(name: str, raw) -> dict:
    """A request value ("text" or {"value": "text", "secret": true}) -> a stored entry."""
    validate_name(name)
    secret = False
    if isinstance(raw, dict):
        if set(raw) - {"value", "secret"} or "value" not in raw:
            raise errors.InvalidEnv(
                "A variable is a string or {'value': string, 'secret': bool}.", details={"name": name}
            )
        secret = bool(raw.get("secret", False))
        raw = raw["value"]
    if not isinstance(raw, str) or "\0" in raw or len(raw.encode()) > MAX_VALUE_BYTES:
        raise errors.InvalidEnv(
            f"Value of {name} must be a string without NUL, at most 32 KiB.", details={"name": name}
        )
    return {"value": encrypt(raw), "secret": secret}


def prepare_env(variables: dict) -> dict:
    """Validates and encrypts a whole map (for create and replace)."""
    if not isinstance(variables, dict):
        raise errors.InvalidEnv()
    if len(variables) > MAX_VARIABLES:
        raise errors.InvalidEnv(f"At most {MAX_VARIABLES} variables.")
    return {name: _normalise(name, raw) for name, raw in variables.items()}


def plain(sandbox: Sandbox) -> dict[str, str]:
    """Decrypted values, for passing to commands. Never returned by the API for secrets."""
    return {name: decrypt(entry["value"]) for name, entry in sandbox.env.items()}


def command_env(sandbox: Sandbox, *overrides: dict | None) -> dict[str, str]:
    """What a command in the sandbox sees: the template's defaults, the sandbox's variables, then
    each override in turn (a request's env wins over the sandbox's)."""
    env = {**sandbox.template.default_env, **_proxy_env(sandbox), **plain(sandbox)}
    for override in overrides:
        env.update(override or {})
    return env


# Where VibeBox's own commands find programs: the images put a directory of the sandbox user's
# first on their PATH (~/.local/bin, /opt/venv/bin), where an upload can put a `sh` or a `git`.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def internal_env(sandbox: Sandbox) -> dict[str, str]:
    """What VibeBox's own commands in the sandbox see (file listings, moves, disk usage, git,
    Claude's setup): the template's defaults with SYSTEM_PATH. The sandbox's variables are the key
    holder's to set with `sandboxes:write`; a PATH, LD_PRELOAD or BASH_ENV of theirs, or a program
    uploaded first on the image's PATH, would make our commands run theirs: code execution without
    `execute`."""
    return {**sandbox.template.default_env, **_proxy_env(sandbox), "PATH": SYSTEM_PATH}


def _proxy_env(sandbox: Sandbox) -> dict[str, str]:
    """The egress proxy's variables when the sandbox's policy needs it (services/network.py)."""
    return proxy_env(sandbox)


def secret_values(sandbox: Sandbox) -> list[str]:
    return [decrypt(e["value"]) for e in sandbox.env.values() if e.get("secret")]


def public(sandbox: Sandbox) -> dict[str, dict]:
    return {
        name: {"value": MASK if entry.get("secret") else decrypt(entry["value"]), "secret": bool(entry.get("secret"))}
        for name, entry in sorted(sandbox.env.items())
    }


def public_one(sandbox: Sandbox, name: str) -> dict:
    if name not in sandbox.env:
        raise errors.EnvVarNotFound(details={"name": name})
    return {"name": name, **public(sandbox)[name]}


def env_update(*, sandbox: Sandbox, changes: dict, replace: bool = False) -> Sandbox:
    """Sets (value), removes (None) or replaces all variables."""
    with transaction.atomic():
        current = Sandbox.objects.select_for_update().get(pk=sandbox.pk)
        env = {} if replace else dict(current.env)
        for name, raw in changes.items():
            if raw is None:
                validate_name(name)
                env.pop(name, None)
            else:
                env[name] = _normalise(name, raw)
        if len(env) > MAX_VARIABLES:
            raise errors.InvalidEnv(f"At most {MAX_VARIABLES} variables.")
        Sandbox.objects.filter(pk=sandbox.pk).update(env=env)
        # Names only, never values (secret or not).
        set_names = sorted(name for name, raw in changes.items() if raw is not None)
        removed = sorted(set(current.env) - set(env))
        record(
            "sandbox.env_changed", target=sandbox, changes={"set": set_names, "removed": removed, "replace": replace}
        )
    sandbox.refresh_from_db()
    return sandbox


def env_delete(*, sandbox: Sandbox, name: str) -> Sandbox:
    if name not in sandbox.env:
        raise errors.EnvVarNotFound(details={"name": name})
    return env_update(sandbox=sandbox, changes={name: None})


def redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text
