"""Setup and account commands: init, config, templates, template info, status, usage, keys."""

from __future__ import annotations

import os
from collections import Counter
from typing import Annotated, Any

import typer
from rich.text import Text

from .. import config, errors
from . import output
from .common import ERROR, PRODUCT, JsonFlag, UsageError, check_duration, client, stdin_is_tty

ENV_NAMES = {"api_url": "VIBEBOX_API_URL", "api_key": "VIBEBOX_API_KEY"}
config_app = typer.Typer(help="Read and change the config file (api_url, api_key, template, timeout).")
template_app = typer.Typer(
    help="Templates, and the template marketplace: submit, status, search, show, rate, yank...", no_args_is_help=True
)
keys_app = typer.Typer(help="Your API keys (needs the keys:manage scope).", no_args_is_help=True)


def mask(key: str | None) -> str:
    """`vb_live_abcd…` -> `vb_live_abcd****`: enough to recognise, not to use."""
    if not key:
        return ""
    return key[:12] + "****" if len(key) > 12 else "****"


def verify(url: str, key: str) -> None:
    """Checks the key against the server: AuthenticationError (exit 4) when it is refused. A key
    that works but lacks the `sandboxes:read` scope is accepted."""
    from ..client import VibeBox

    with VibeBox(api_key=key, base_url=url, max_retries=1) as vb:
        try:
            vb.list(limit=1)
        except errors.PermissionDeniedError as error:
            output.warn(f"the key works but cannot list sandboxes: {error.message}")


def init(
    url: Annotated[str | None, typer.Option("--url", help="The server, e.g. https://vibebox.example.com.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Your API key (vb_live_...).")] = None,
    template: Annotated[str | None, typer.Option("--template", help="Default template for `vibebox new`.")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Do not check the key with the server.")] = False,
) -> None:
    """Set up the CLI: ask for the server URL and API key (or take --url/--key), check the key, save the config.

    The config file is written readable only by you (mode 0600).
    """
    current = config.load_config()
    asked = url is None or key is None
    if url is None:
        default = current.get("api_url") or os.environ.get("VIBEBOX_API_URL") or config.DEFAULT_URL
        url = typer.prompt(f"{PRODUCT} server URL", default=default, err=True)
    if key is None:
        existing = current.get("api_key")
        label = "API key (Enter keeps the current one)" if existing else "API key"
        key = typer.prompt(label, hide_input=stdin_is_tty(), default=existing or None, show_default=False, err=True)
    if template is None and asked and stdin_is_tty():
        existing = current.get("template", "")
        template = typer.prompt(
            "Default template for `vibebox new` (optional)", default=existing, show_default=bool(existing), err=True
        )
    url = (url or "").strip().rstrip("/")
    key = (key or "").strip()
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"the URL must start with http:// or https://, got {url!r}")
    if not key:
        raise UsageError("an API key is needed")
    if not no_verify:
        with output.spinner(f"checking the key with {url}..."):
            verify(url, key)
    values = {**current, "api_url": url, "api_key": key}
    if template:
        values["template"] = template.strip()
    path = config.save_config(values)
    output.note(f"saved {path} (mode 0600)", style="green")
    for name in ENV_NAMES.values():
        if os.environ.get(name):
            output.warn(f"${name} is set: it takes precedence over the config file")


# Config


def effective(name: str, file: dict[str, str]) -> tuple[str | None, str]:
    """(value, where it comes from) of a setting as the commands see it."""
    env_name = ENV_NAMES.get(name)
    if env_name and os.environ.get(env_name):
        return os.environ[env_name], f"env {env_name}"
    if name in file:
        return file[name], "file"
    if name == "api_url":
        return config.DEFAULT_URL, "default"
    return None, "unset"


def check_key(name: str) -> None:
    if name not in config.KNOWN_KEYS:
        raise UsageError(f"unknown setting {name!r}; settings: {', '.join(config.KNOWN_KEYS)}")


@config_app.command("set")
def config_set(
    name: Annotated[str, typer.Argument(help="api_url, api_key, template or timeout.", show_default=False)],
    value: Annotated[str, typer.Argument(help="The new value.", show_default=False)],
) -> None:
    """Set a setting in the config file."""
    check_key(name)
    if name == "timeout":
        check_duration(value, "timeout")
    if name == "api_url" and not value.startswith(("http://", "https://")):
        raise UsageError("api_url must start with http:// or https://")
    values = config.load_config()
    values[name] = value.rstrip("/") if name == "api_url" else value
    path = config.save_config(values)
    output.note(f"set {name} in {path}")


@config_app.command("unset")
def config_unset(name: Annotated[str, typer.Argument(help="The setting to remove.", show_default=False)]) -> None:
    """Remove a setting from the config file."""
    check_key(name)
    values = config.load_config()
    if values.pop(name, None) is not None:
        config.save_config(values)
    output.note(f"unset {name}")


@config_app.command("get")
def config_get(
    name: Annotated[str, typer.Argument(help="The setting.", show_default=False)], json: JsonFlag = False
) -> None:
    """Print a setting's effective value (the environment wins over the file); exit 1 when unset."""
    check_key(name)
    value, source = effective(name, config.load_config())
    if json:
        output.print_json({"name": name, "value": value, "source": source})
    elif value is not None:
        output.line(value)
    if value is None:
        raise typer.Exit(ERROR)


@config_app.command("list")
def config_list(json: JsonFlag = False) -> None:
    """Show every setting, where it comes from, and the config file's path (the key is masked)."""
    file = config.load_config()
    rows = []
    for name in config.KNOWN_KEYS:
        value, source = effective(name, file)
        rows.append({"name": name, "value": mask(value) if name == "api_key" else value, "source": source})
    if json:
        output.print_json({"path": str(config.config_path()), "settings": rows})
        return
    output.table(["SETTING", "VALUE", "SOURCE"], [(r["name"], r["value"], r["source"]) for r in rows])
    output.note(f"config file: {config.config_path()}")


@config_app.command("path")
def config_path() -> None:
    """Print the config file's path ($VIBEBOX_CONFIG, else $XDG_CONFIG_HOME/vibebox/config.toml)."""
    output.line(str(config.config_path()))


# Templates


def _build_state(template: Any) -> str:
    """ready, building 40% (step 4 of 10), queued or failed; `-` from a server that does not say."""
    state = template.build_state or "-"
    progress = template.build_progress or {}
    if state == "building" and progress.get("steps"):
        return f"building {100 * int(progress.get('step', 0)) // int(progress['steps'])}%"
    return state


def _image_size(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1024**3:.1f} GB" if value >= 1024**3 else f"{value / 1024**2:.0f} MB"


def templates(json: JsonFlag = False) -> None:
    """List the templates sandboxes can be made from, with their build state and image size.

    A template that is still `building` (or `queued`) answers a create with a 503 until it is
    ready (`vibebox new <template> --wait` waits for it); `failed` says why in `vibebox template info`.
    """
    found = client().templates()
    if json:
        output.print_json(found)
        return
    output.table(
        ["NAME", "LANGUAGES", "STATE", "SIZE", "DESCRIPTION"],
        [
            (t.name, ", ".join(t.languages or [t.language]), _build_state(t), _image_size(t.image_size), t.description)
            for t in found
        ],
    )


@template_app.command("info")
def template_info(
    name: Annotated[str, typer.Argument(help="The template's name.", show_default=False)], json: JsonFlag = False
) -> None:
    """Show a template's details."""
    found = client().template(name)
    if json:
        output.print_json(found)
        return
    raw = found.raw
    ports: Any = raw.get("ports") or []
    output.fields(
        [
            ("name", found.name),
            ("aliases", ", ".join(found.aliases)),
            ("display name", found.display_name),
            ("description", found.description),
            ("version", found.version),
            ("image", found.image),
            ("languages", ", ".join(found.languages or [found.language])),
            ("package managers", ", ".join(found.package_managers)),
            ("state", _build_state(found)),
            ("build message", found.build_message),
            ("size", _image_size(found.image_size)),
            ("smoke", found.smoke),
            ("user", found.user),
            ("workdir", found.workdir),
            ("env", raw.get("defaultEnv")),
            ("ports", ", ".join(str(p.get("container", p)) if isinstance(p, dict) else str(p) for p in ports)),
            ("pre-installed", raw.get("preInstalled")),
        ]
    )


# Status and usage


def status(json: JsonFlag = False) -> None:
    """Show the server's health and how many of your sandboxes are in each state.

    Exits 1 when the server is not ready.
    """
    vb = client()
    health = vb.health()
    counts = Counter(s.status for s in vb.iter())
    ready = health.get("status") == "ok"
    if json:
        output.print_json(
            {"server": vb.base_url, "health": health, "sandboxes": dict(counts), "total": sum(counts.values())}
        )
    else:
        checks = health.get("checks") or {}
        failing = [name for name, check in checks.items() if not (isinstance(check, dict) and check.get("ok"))]
        state = "ok" if ready else f"unavailable ({', '.join(failing) or health.get('status_code')})"
        output.fields(
            [
                ("server", vb.base_url),
                ("status", Text(state, style="green" if ready else "red")),
                ("sandboxes", str(sum(counts.values()))),
                *((f"  {name}", str(count)) for name, count in sorted(counts.items())),
            ]
        )
    if not ready:
        raise typer.Exit(ERROR)


def keys_usage(json: JsonFlag = False) -> None:
    """Show each of your API keys' requests over the last 30 days."""
    vb = client()
    rows = []
    for key in vb.keys.list():
        used = vb.keys.usage(key.id)
        rows.append({"key": key, "usage": used})
    if json:
        output.print_json([{**r["usage"], "name": r["key"].name, "active": r["key"].active} for r in rows])
        return
    output.table(
        ["NAME", "ID", "PREFIX", "ACTIVE", "REQUESTS (30 DAYS)", "LAST USED"],
        [
            (
                r["key"].name,
                r["key"].id,
                r["key"].prefix,
                "yes" if r["key"].active else "no",
                r["usage"].get("total_requests", 0),
                output.ago(r["usage"].get("last_used_at")),
            )
            for r in rows
        ],
    )


# Keys


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="A name to recognise the key by.", show_default=False)],
    scopes: Annotated[
        str | None, typer.Option("--scopes", help="Comma-separated scopes (default: those of your key).")
    ] = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="Expire after this long: 30d, 12h.")] = None,
    rate_limit: Annotated[str | None, typer.Option("--rate-limit", help="e.g. 100/min.")] = None,
    test: Annotated[bool, typer.Option("--test", help="A test key (vb_test_...).")] = False,
    org: Annotated[
        str | None, typer.Option("--org", help="Slug of the organization it acts in (default: your key's).")
    ] = None,
    json: JsonFlag = False,
) -> None:
    """Create an API key; prints the key itself, shown this once only."""
    check_duration(expires_in, "--expires-in")
    scope_list = [s.strip() for s in scopes.split(",") if s.strip()] if scopes else None
    created = client().keys.create(
        name, org=org, scopes=scope_list, expires_in=expires_in, rate_limit=rate_limit, test=test or None
    )
    if json:
        output.print_json(created)
        return
    output.line(created.key or "")
    output.note(
        f"created {created.id} in {created.org} ({', '.join(created.scopes)}); copy the key now, it is not shown again"
    )


@keys_app.command("list")
def keys_list(json: JsonFlag = False) -> None:
    """List your API keys (never the keys themselves)."""
    found = client().keys.list()
    if json:
        output.print_json(found)
        return
    output.table(
        ["ID", "NAME", "ORG", "PREFIX", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "ACTIVE"],
        [
            (
                k.id,
                k.name,
                k.org,
                k.prefix,
                ",".join(k.scopes),
                output.ago(k.created_at),
                output.ago(k.expires_at) if k.expires_at else "never",
                output.ago(k.last_used_at),
                "yes" if k.active else "no",
            )
            for k in found
        ],
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).", show_default=False)], json: JsonFlag = False
) -> None:
    """Revoke an API key: it stops working at once."""
    client().keys.revoke(key_id)
    if json:
        output.print_json({"id": key_id, "revoked": True})
    else:
        output.line(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    panel = "Setup and account"
    app.command("init", rich_help_panel=panel)(init)
    app.add_typer(config_app, name="config", rich_help_panel=panel)
    app.command("templates", rich_help_panel=panel)(templates)
    app.add_typer(template_app, name="template", rich_help_panel=panel)
    app.command("status", rich_help_panel=panel)(status)
    keys_app.command("usage")(keys_usage)  # `vibebox usage` is the organization's usage and costs (billing.py)
    app.add_typer(keys_app, name="keys", rich_help_panel=panel)
