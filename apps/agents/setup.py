"""Enabling Claude Code on a sandbox: checks the binary, gives the sandbox a gateway token
(never the real Anthropic key), writes Claude's settings; and its status."""

import hashlib
import hmac
import json
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.services import record
from apps.keys.models import ApiKey
from apps.keys.scopes import EXECUTE, SANDBOXES_READ, SANDBOXES_WRITE
from apps.keys.services import api_key_create, api_keys_revoke_for_sandbox
from apps.marketplace.template_keys import PERMISSION_MODES
from apps.sandboxes.engine import sandbox_network_gateway
from apps.sandboxes.services.env import env_update
from apps.sandboxes.services.exec import require_running, run_internal
from apps.sandboxes.services.network import node_gateway
from vibebox import crypto
from vibebox import exceptions as errors

from .models import ClaudeAsk, ClaudeSetup
from .usage import totals as usage_totals

TOKEN_PREFIX = "vbgw_"  # noqa: S105  (a prefix, not a secret)
MCP_SCOPES = [SANDBOXES_READ, SANDBOXES_WRITE, EXECUTE]  # what the sandbox's MCP tools use

# Reports the binary, the user's home and Claude's config dir; writes the settings VibeBox
# needs when they are absent (a person's own edits are kept). $1: settings JSON.
PROBE = r"""
command -v claude >/dev/null 2>&1 || { echo "missing"; exit 0; }
config=${CLAUDE_CONFIG_DIR:-$HOME/.claude}
mkdir -p "$config" "$HOME/.vibebox"
[ -f "$config/settings.json" ] || printf '%s\n' "$1" > "$config/settings.json"
[ -f "$config/.claude.json" ] || printf '%s\n' '{"hasCompletedOnboarding": true}' > "$config/.claude.json"
# Interactive `claude` in a terminal then takes the gateway token without asking ($2: its tail).
if command -v jq >/dev/null 2>&1; then
    tmp=$(mktemp)
    jq --arg k "$2" '.hasCompletedOnboarding = true
        | .customApiKeyResponses.approved = ((.customApiKeyResponses.approved // []) + [$k] | unique)' \
        "$config/.claude.json" > "$tmp" && cat "$tmp" > "$config/.claude.json"
    rm -f "$tmp"
fi
printf 'version=%s\nhome=%s\nconfig=%s\n' "$(claude --version 2>/dev/null | head -n 1)" "$HOME" "$config"
"""

WRITE = r"""umask 077; mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1"
"""

CLAUDE_SETTINGS = {
    "autoUpdates": False,
    "includeCoAuthoredBy": False,
    "env": {"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
}


def token_hash(token: str) -> str:
    key = settings.VIBEBOX_ENCRYPTION_KEY.encode()
    return hmac.new(key, b"gateway:" + token.encode(), hashlib.sha256).hexdigest()


def gateway_url(sandbox=None) -> str:
    """The gateway's address as sandboxes reach it (`sandbox` on a node: its bridge's gateway there,
    where the node's relay takes it to this server's gateway: docs/nodes.md, "The server's services
    from a node")."""
    if sandbox is not None and sandbox.node_id is not None:
        return f"http://{node_gateway(sandbox)}:{settings.VIBEBOX_GATEWAY_PORT}"
    if settings.VIBEBOX_GATEWAY_URL:
        return settings.VIBEBOX_GATEWAY_URL
    host = settings.VIBEBOX_GATEWAY_HOST
    if not host or host in ("0.0.0.0", "::"):  # noqa: S104
        host = sandbox_network_gateway()
    return f"http://{host}:{settings.VIBEBOX_GATEWAY_PORT}"


def mcp_config_path(setup: ClaudeSetup) -> str:
    return f"{setup.home.rstrip('/')}/.vibebox/mcp.json"


def _probe(sandbox, token: str) -> dict:
    argv = ("/bin/sh", "-c", PROBE, "sh", json.dumps(CLAUDE_SETTINGS), token[-20:])
    result = run_internal(sandbox, argv, timeout=60)
    text = result.stdout.decode(errors="replace")
    if result.exit_code != 0:
        raise errors.RuntimeFailure(
            "Checking for Claude Code failed.", details={"stderr": result.stderr.decode(errors="replace")[-500:]}
        )
    if text.strip() == "missing":
        raise errors.ClaudeUnavailable(
            f"Template {sandbox.template.name!r} has no Claude Code; use node-22-claude-code.",
            details={"template": sandbox.template.name},
        )
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def claude_enable(*, sandbox, api_key=None, anthropic_api_key: str = "", mcp: bool = False) -> tuple[ClaudeSetup, bool]:
    """Idempotent: enabling again rotates the gateway token. Answers (setup, newly enabled)."""
    require_running(sandbox)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    found = _probe(sandbox, token)
    base_url = gateway_url(sandbox)
    with transaction.atomic():
        setup = ClaudeSetup.objects.select_for_update().filter(sandbox=sandbox).first()
        created = setup is None
        setup = setup or ClaudeSetup(sandbox=sandbox)
        setup.api_key = api_key
        setup.version = found.get("version", "").split(" ")[0]
        setup.home = found.get("home") or "/home/" + (sandbox.template.user or "agent")
        setup.token_hash = token_hash(token)
        setup.upstream_key = crypto.encrypt(anthropic_api_key) if anthropic_api_key else ""
        setup.mcp = mcp
        # Enabling again replaces the MCP key (made for the new caller), or drops it without MCP.
        mcp_key, secret = _mint_mcp_key(sandbox, api_key) if mcp else (None, "")
        api_keys_revoke_for_sandbox(sandbox_id=sandbox.id, keep=mcp_key)
        setup.mcp_key = crypto.encrypt(secret) if secret else ""
        setup.save()
        record("claude.enabled", target=sandbox, changes={"mcp": mcp, "ownAnthropicKey": bool(anthropic_api_key)})
        env_update(
            sandbox=sandbox,
            changes={"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": {"value": token, "secret": True}},
        )
    servers = template_mcp_servers(sandbox)
    if mcp or servers:
        if mcp:
            servers["vibebox"] = {
                "type": "http",
                "url": f"{base_url}/mcp",
                "headers": {"Authorization": f"Bearer {token}"},
            }
        config = {"mcpServers": servers}
        run_internal(
            sandbox, ("/bin/sh", "-c", WRITE, "sh", mcp_config_path(setup), json.dumps(config, indent=2)), timeout=30
        )
    return setup, created


def template_mcp_servers(sandbox) -> dict:
    """The MCP servers the template runs inside the sandbox (template.yaml `claude.mcpServers`,
    validated by apps/marketplace/template_keys.py), VibeBox's own left out (enable's `mcp`)."""
    servers = (sandbox.template.claude or {}).get("mcpServers") or {}
    return {
        name: {"type": "stdio", "command": found["command"], "args": found["args"], "env": found["env"]}
        for name, found in servers.items()
        if name != "vibebox"
    }


def claude_auto_start(*, sandbox, api_key=None) -> ClaudeSetup | None:
    """At create (the sandboxes app's sandbox_created): a template with `claude.autoStart` gets
    Claude Code enabled as `POST …/claude/enable` would with the creating key (its rights bound
    the MCP key), with VibeBox's MCP server when the template lists `vibebox`."""
    config = sandbox.template.claude or {}
    if not config.get("autoStart"):
        return None
    found, _ = claude_enable(sandbox=sandbox, api_key=api_key, mcp="vibebox" in (config.get("mcpServers") or {}))
    return found


def _mint_mcp_key(sandbox, api_key: ApiKey | None) -> tuple[ApiKey, str]:
    """The VibeBox key the gateway's MCP server acts with for this sandbox; never enters it.

    Never broader than the calling key: of the scopes the tools use, those the caller has (a
    caller without `execute` gives Claude MCP tools that answer insufficient_scope for commands;
    enable itself needs only `sandboxes:write`), a test key for a test key, the caller's rate limit.
    It expires with the sandbox (or with the caller, if sooner) and is bound to the sandbox, so
    destroying it revokes the key. A signed-in user (no key) is limited by the sandbox alone.
    """
    scopes = [scope for scope in MCP_SCOPES if api_key is None or scope in api_key.scopes]
    expires_at = sandbox.expires_at
    if api_key is not None and api_key.expires_at is not None:
        expires_at = min(filter(None, [expires_at, api_key.expires_at]))
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.SandboxStateConflict(
            "The sandbox's time is up: extend it (timeout) before enabling Claude.",
            details={"expiresAt": sandbox.expires_at.isoformat() if sandbox.expires_at else None},
        )
    return api_key_create(
        user=sandbox.owner,
        name=f"claude-mcp {sandbox.id}",
        scopes=scopes,
        expires_at=expires_at,
        test=api_key.is_test if api_key is not None else False,
        creator=api_key,
        sandbox_id=sandbox.id,
    )


def setup_get(sandbox) -> ClaudeSetup:
    setup = ClaudeSetup.objects.filter(sandbox=sandbox).first()
    if setup is None:
        raise errors.ClaudeNotEnabled(details={"sandbox": sandbox.id})
    return setup


UNSET = object()


def claude_setup_update_from(*, sandbox, data: dict) -> ClaudeSetup:
    """claude_setup_update from the validated body of a PATCH of `…/claude/status`
    (api.serializers.ClaudeSetupUpdateSerializer): REST's and GraphQL's. Only the fields given change."""
    given = {"model": "model", "permission_mode": "permissionMode", "anthropic_api_key": "anthropicApiKey"}
    return claude_setup_update(
        sandbox=sandbox, mode=data.get("mode"), **{name: data[field] for name, field in given.items() if field in data}
    )


def claude_setup_update(
    *, sandbox, mode: str | None = None, model=UNSET, permission_mode=UNSET, anthropic_api_key=UNSET
) -> ClaudeSetup:
    """Changes what a PATCH of `…/claude/status` (and the dashboard's panel) may change without
    enabling again: the collaboration mode, the asks' default model and permission mode ("" or
    None: the template's), and whose Anthropic key pays (a key: the caller's own, stored
    encrypted; "" or None: the operator's). MCP servers are changed by enabling again (the
    sandbox's mcp.json holds the gateway token, which only enable makes). Works on a stopped
    sandbox too: nothing runs in it."""
    if mode is not None and mode not in ClaudeSetup.Mode.values:
        raise errors.ValidationFailed(f"mode is one of {', '.join(ClaudeSetup.Mode.values)}.", details={"mode": mode})
    if permission_mode not in (UNSET, None, "") and permission_mode not in PERMISSION_MODES:
        raise errors.ValidationFailed(
            f"permissionMode is one of {', '.join(PERMISSION_MODES)}.", details={"permissionMode": permission_mode}
        )
    if model not in (UNSET, None, "") and (model.startswith("-") or "\0" in model or len(model) > 100):
        raise errors.ValidationFailed("model is a model name, e.g. claude-sonnet-4-5.")
    with transaction.atomic():
        setup = ClaudeSetup.objects.select_for_update().filter(sandbox=sandbox).first()
        if setup is None:
            raise errors.ClaudeNotEnabled(details={"sandbox": sandbox.id})
        changes = {}
        if mode is not None and mode != setup.mode:
            changes["mode"] = [setup.mode, mode]
            setup.mode = mode
        if model is not UNSET and (model or "") != setup.model:
            changes["model"] = [setup.model or None, model or None]
            setup.model = model or ""
        if permission_mode is not UNSET and (permission_mode or "") != setup.permission_mode:
            changes["permissionMode"] = [setup.permission_mode or None, permission_mode or None]
            setup.permission_mode = permission_mode or ""
        if anthropic_api_key is not UNSET:
            had = bool(setup.upstream_key)
            setup.upstream_key = crypto.encrypt(anthropic_api_key) if anthropic_api_key else ""
            if anthropic_api_key or had:  # a new own key is a change even when one was set
                changes["modelKey"] = ["own" if had else "operator", "own" if anthropic_api_key else "operator"]
        if changes:
            setup.save(update_fields=["mode", "model", "permission_mode", "upstream_key"])
            record("claude.updated", target=sandbox, changes=changes)
    return setup


def mcp_server_names(sandbox, setup: ClaudeSetup | None) -> list[str]:
    """The MCP servers Claude is given in this sandbox: VibeBox's (enable's `mcp`) and the template's."""
    names = ["vibebox"] if setup is not None and setup.mcp else []
    return names + sorted(template_mcp_servers(sandbox))


def setup_by_token(token: str) -> ClaudeSetup | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    return ClaudeSetup.objects.select_related("sandbox", "api_key").filter(token_hash=token_hash(token)).first()


def touch(setup: ClaudeSetup) -> None:
    ClaudeSetup.objects.filter(pk=setup.pk).update(last_activity_at=timezone.now())


def claude_status(sandbox) -> dict:
    """Whether Claude is enabled in the sandbox and what it has done (rendered by the API's
    ClaudeStatusSerializer, read by the dashboard)."""
    setup = ClaudeSetup.objects.filter(sandbox=sandbox).first()
    if setup is None:
        return {"enabled": False, "version": None, "running_asks": [], "last_activity_at": None, "mcp": False}
    defaults = sandbox.template.claude or {}
    running = list(
        ClaudeAsk.objects.filter(sandbox=sandbox, status=ClaudeAsk.Status.RUNNING).values_list("id", flat=True)
    )
    return {
        "enabled": True,
        "version": setup.version,
        "running_asks": running,
        "last_activity_at": max(filter(None, [setup.last_activity_at, setup.enabled_at])),
        "enabled_at": setup.enabled_at,
        "mcp": setup.mcp,
        "mcp_servers": mcp_server_names(sandbox, setup),
        "own_key": bool(setup.upstream_key),
        "mode": setup.mode,
        "model": setup.model or None,
        "permission_mode": setup.permission_mode or None,
        # What an ask that names neither gets (asks.py): the setup's, else the template's.
        "effective_model": setup.model or defaults.get("model") or None,
        "effective_permission_mode": setup.permission_mode
        or (defaults.get("permissions") or {}).get("mode")
        or "acceptEdits",
        "sessions": sandbox.claude_sessions.count(),
        "usage": usage_totals(sandbox.model_usage.all()),
    }
